"""The Bayesian twin of the EM reference: a PyMC Gaussian mixture sampled with NUTS.

The names below are loaded on first use (SPEC 1's lazy loading), so that importing one light
submodule (`models.storage`, which the report's files go through) does not import PyMC,
nutpie and ArviZ's statistics: the main job imports those while its bootstrap runs beside it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.diagnostics import Diagnostics, diagnose
    from models.labels import relabel_posterior
    from models.membership import Membership, posterior_membership
    from models.mixture import OBSERVED, build_model, log_likelihood_at, parameter_point
    from models.sampling import sample_posterior
    from models.storage import load_posterior, save_posterior

_SUBMODULES = {
    "Diagnostics": "diagnostics",
    "diagnose": "diagnostics",
    "relabel_posterior": "labels",
    "Membership": "membership",
    "posterior_membership": "membership",
    "OBSERVED": "mixture",
    "build_model": "mixture",
    "log_likelihood_at": "mixture",
    "parameter_point": "mixture",
    "sample_posterior": "sampling",
    "load_posterior": "storage",
    "save_posterior": "storage",
}
"""Each public name and the submodule that defines it."""

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


def __getattr__(name: str) -> Any:
    """The public name from its submodule, imported on first use."""
    if name not in _SUBMODULES:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"models.{_SUBMODULES[name]}"), name)


def __dir__() -> list[str]:
    """The public names, with the module's own."""
    return sorted([*globals(), *__all__])
