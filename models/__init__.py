"""The Bayesian twin of the EM reference: a PyMC Gaussian mixture sampled with NUTS."""

from models.diagnostics import Diagnostics, diagnose
from models.labels import relabel_posterior
from models.membership import Membership, posterior_membership
from models.mixture import (
    OBSERVED,
    build_model,
    log_likelihood_at,
    parameter_point,
)
from models.sampling import sample_posterior
from models.storage import load_posterior, save_posterior

__all__ = [
    "OBSERVED",
    "Diagnostics",
    "Membership",
    "build_model",
    "diagnose",
    "load_posterior",
    "log_likelihood_at",
    "parameter_point",
    "posterior_membership",
    "relabel_posterior",
    "sample_posterior",
    "save_posterior",
]
