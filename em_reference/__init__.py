"""From-scratch EM and VB for Gaussian mixtures (NumPy only) and the seed program's exact data."""

from em_reference import seed7907
from em_reference.em import GaussianMixtureEM, NotFittedError, check_data
from em_reference.generator import sample_mixture
from em_reference.likelihood import mixture_log_density, precisions_cholesky
from em_reference.parameters import MixtureParameters
from em_reference.variational import VariationalGaussianMixture

__all__ = [
    "GaussianMixtureEM",
    "MixtureParameters",
    "NotFittedError",
    "VariationalGaussianMixture",
    "check_data",
    "mixture_log_density",
    "precisions_cholesky",
    "sample_mixture",
    "seed7907",
]
