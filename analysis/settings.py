"""The run's settings and the report's constants, each with one home.

The interval probability is em_reference's; EM's tolerance, iteration limit and covariance
regularisation are GaussianMixtureEM's defaults, read from its signature so text quoting them
cannot drift from what EM does.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from em_reference import INTERVAL_PROB, GaussianMixtureEM

__all__ = [
    "DEFAULT_BOOTSTRAP",
    "EM_MAX_ITER",
    "EM_TOL",
    "GAUSS_WISHART_SHARE",
    "INTERVAL_PROB",
    "METHODS",
    "REG_COVAR",
    "SELECTION_CHAINS",
    "SELECTION_DRAWS",
    "SELECTION_METHODS",
    "SELECTION_TUNE",
    "UNCERTAIN_BELOW",
    "VB_DRAWS",
    "RunSettings",
    "gauss_wishart_sizes",
    "interval_percent",
]

DEFAULT_BOOTSTRAP = 999
"""EM's nonparametric bootstrap replicates per run unless asked otherwise (0: none)."""

METHODS = ("em", "vb", "nuts")
"""The methods a comparison runs by default (and all it can run); EM always, as the reference."""
METHODS_BEFORE_VB = ("em", "nuts")
"""What a saved run without a recorded `methods` ran: VB joined the comparison later."""

SELECTION_METHODS = METHODS
"""The methods `select` can run: EM (BIC, ICL), VB (ELBO) and NUTS (PSIS-LOO)."""

VB_DRAWS = 20_000
"""Independent draws from VB's q for its means, SDs and intervals (Monte Carlo error ~0.5 %)."""

GAUSS_WISHART_SHARE = 1
"""NUTS under VB's priors keeps 1 / this of the main run's draws and tuning steps (same chains).

All of them: with a quarter (4 x 250 after 250 tuning steps) or a half, R-hat under VB's priors
came out at 1.0125 and 1.0100 on seed-7907 (a warning on every default run, from tuning too
short for the dense mass matrix and R-hat's own noise), with all of them 1.003; it costs about
5 s more than a quarter. A larger share trades that for speed on large data.
"""

SELECTION_DRAWS = 500
SELECTION_TUNE = 500
SELECTION_CHAINS = 2
"""NUTS's size per K when choosing K: 2 chains x 500 draws after 500 tuning steps."""

UNCERTAIN_BELOW = 0.9
"""A point is uncertain when the probability of its most probable component is below this."""

_EM_DEFAULTS = inspect.signature(GaussianMixtureEM).parameters
EM_TOL: float = _EM_DEFAULTS["tol"].default
"""EM stops when the total log-likelihood improves by less than this."""
EM_MAX_ITER: int = _EM_DEFAULTS["max_iter"].default
"""EM stops after this many iterations."""
REG_COVAR: float = _EM_DEFAULTS["reg_covar"].default
"""EM's absolute covariance regularisation (the seed program's)."""


def interval_percent() -> str:
    """The interval probability as the report prints it, e.g. '94 %'."""
    return f"{INTERVAL_PROB:.0%}".replace("%", " %")


@dataclass(frozen=True)
class RunSettings:
    """How the run was made: K, seed, sampler sizes, EM's bootstrap replicates, methods run.

    `bootstrap` 0 means none; `methods` is a subset of METHODS that includes "em".
    Saved under the key "seed" (em.json, comparison.json) for `random_seed`, as files written
    before the rename have it; files written before the bootstrap lack "bootstrap" (read as 0),
    and files written before VB lack "methods" (read as METHODS_BEFORE_VB).
    """

    n_components: int
    random_seed: int
    draws: int
    tune: int
    chains: int
    bootstrap: int = DEFAULT_BOOTSTRAP
    methods: tuple[str, ...] = METHODS

    def __post_init__(self) -> None:
        unknown = [name for name in self.methods if name not in METHODS]
        if unknown or "em" not in self.methods:
            raise ValueError(
                f"methods must be a subset of {','.join(METHODS)} that includes em (EM fixes the "
                f"component order and starts VB and NUTS), got {','.join(self.methods)!r}"
            )
        object.__setattr__(self, "methods", tuple(m for m in METHODS if m in self.methods))

    def runs(self, method: str) -> bool:
        """Whether the method ("em", "vb" or "nuts") is part of this run."""
        return method in self.methods

    def as_dict(self) -> dict[str, Any]:
        """Plain values as the saved files hold them."""
        return {
            "n_components": self.n_components,
            "seed": self.random_seed,
            "draws": self.draws,
            "tune": self.tune,
            "chains": self.chains,
            "bootstrap": self.bootstrap,
            "methods": list(self.methods),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunSettings:
        """Rebuild from `as_dict` output; TypeError naming a missing or unknown key."""
        keys = {"n_components", "seed", "draws", "tune", "chains"}
        if not keys <= set(values) <= keys | {"bootstrap", "methods"}:
            raise TypeError(
                f"settings must have the keys {sorted(keys)} (and optionally 'bootstrap' and "
                f"'methods'), got {sorted(values)}"
            )
        return cls(
            n_components=values["n_components"],
            random_seed=values["seed"],
            draws=values["draws"],
            tune=values["tune"],
            chains=values["chains"],
            bootstrap=values.get("bootstrap", 0),
            methods=tuple(values.get("methods", METHODS_BEFORE_VB)),
        )


def gauss_wishart_sizes(settings: RunSettings) -> tuple[int, int, int]:
    """(draws, tune, chains) of the NUTS run under VB's priors: a share of the main run's."""
    return (
        max(1, settings.draws // GAUSS_WISHART_SHARE),
        settings.tune // GAUSS_WISHART_SHARE,
        settings.chains,
    )
