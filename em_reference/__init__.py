"""From-scratch EM and VB for Gaussian mixtures (NumPy only), EM's uncertainty, the seed's data."""

from em_reference import bootstrap, seed7907, uncertainty, validation
from em_reference.base import ConvergenceWarning, DegenerateFitError, NotFittedError
from em_reference.bootstrap import BootstrapResult
from em_reference.gaussian_mixture import GaussianMixtureEM
from em_reference.generator import sample_mixture
from em_reference.likelihood import mixture_log_density, precisions_cholesky
from em_reference.parameters import MixtureArrays, MixtureParameters
from em_reference.uncertainty import INTERVAL_PROB, ParameterIntervals
from em_reference.validation import check_data
from em_reference.variational import VariationalGaussianMixture

__all__ = [
    "INTERVAL_PROB",
    "BootstrapResult",
    "ConvergenceWarning",
    "DegenerateFitError",
    "GaussianMixtureEM",
    "MixtureArrays",
    "MixtureParameters",
    "NotFittedError",
    "ParameterIntervals",
    "VariationalGaussianMixture",
    "bootstrap",
    "check_data",
    "mixture_log_density",
    "precisions_cholesky",
    "sample_mixture",
    "seed7907",
    "uncertainty",
    "validation",
]
