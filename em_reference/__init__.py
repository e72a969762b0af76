"""From-scratch EM for Gaussian mixtures (NumPy only) and the seed program's exact data."""

from em_reference import seed7907
from em_reference.em import (
    ConvergenceWarning,
    DegenerateFitError,
    GaussianMixtureEM,
    NotFittedError,
    check_data,
)
from em_reference.generator import sample_mixture
from em_reference.likelihood import mixture_log_density, precisions_cholesky
from em_reference.parameters import MixtureParameters

__all__ = [
    "ConvergenceWarning",
    "DegenerateFitError",
    "GaussianMixtureEM",
    "MixtureParameters",
    "NotFittedError",
    "check_data",
    "mixture_log_density",
    "precisions_cholesky",
    "sample_mixture",
    "seed7907",
]
