"""How sure EM is, for the reference run: information SEs, Wald and bootstrap intervals.

Computed once per run (em_reference's observed information and nonparametric bootstrap) and
saved in em.json as summaries (standard errors, interval bounds, replicate counts; never the
replicates), so a report is rebuilt without recomputing. A singular information or a bootstrap
with too few usable replicates is recorded as a problem, shown among the report's warnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.em_fits import EMFit
from em_reference.uncertainty import MixtureArrays


def _arrays(values: dict[str, Any] | None, fixed_weight: float) -> MixtureArrays | None:
    """MixtureArrays from their JSON lists, or None; a null weight list is K = 1's fixed one."""
    if values is None:
        return None
    weights = [fixed_weight] if values["weights"] is None else values["weights"]
    return MixtureArrays(
        np.asarray(weights, dtype=np.float64),
        *(np.asarray(values[key], dtype=np.float64) for key in ("means", "covariances")),
    )


def _lists(arrays: MixtureArrays | None) -> dict[str, list | None] | None:
    """MixtureArrays as JSON lists, or None; K = 1's weight, fixed at 1, has none (null)."""
    if arrays is None:
        return None
    return arrays.as_dict() | ({"weights": None} if arrays.weights.shape == (1,) else {})


FIXED_WEIGHT = {
    "standard_errors": 0.0,
    "wald_low": 1.0,
    "wald_high": 1.0,
    "bootstrap_standard_errors": 0.0,
    "bootstrap_low": 1.0,
    "bootstrap_high": 1.0,
}
"""Each set of standard errors or bounds, with what it holds for the weight of K = 1 (1 exactly,
not estimated: SE 0, bounds 1), which em.json writes as null rather than as an interval."""


@dataclass(frozen=True)
class EMUncertainty:
    """EM's standard errors and intervals for the reference run, each set None when unknown.

    standard_errors, wald_low, wald_high: from the observed information (delta method; Wald
    intervals of INTERVAL_PROB formed on an unconstrained scale). bootstrap_*: SEs and
    percentile bounds over `n_boot` nonparametric replicates, of which n_failed were left out,
    n_relabelled were permuted to match and n_unconverged hit max_iter. problems: why a set is
    missing, one line each.
    """

    standard_errors: MixtureArrays | None
    wald_low: MixtureArrays | None
    wald_high: MixtureArrays | None
    n_boot: int
    bootstrap_standard_errors: MixtureArrays | None
    bootstrap_low: MixtureArrays | None
    bootstrap_high: MixtureArrays | None
    n_failed: int
    n_relabelled: int
    n_unconverged: int
    problems: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for em.json."""
        arrays = {name: _lists(getattr(self, name)) for name in FIXED_WEIGHT}
        counts = {
            name: getattr(self, name)
            for name in ("n_boot", "n_failed", "n_relabelled", "n_unconverged")
        }
        return arrays | counts | {"problems": list(self.problems)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EMUncertainty:
        """Rebuild from `as_dict` output."""
        arrays = {name: _arrays(values[name], fixed) for name, fixed in FIXED_WEIGHT.items()}
        return cls(
            **arrays,
            n_boot=int(values["n_boot"]),
            n_failed=int(values["n_failed"]),
            n_relabelled=int(values["n_relabelled"]),
            n_unconverged=int(values["n_unconverged"]),
            problems=tuple(str(p) for p in values["problems"]),
        )

    @classmethod
    def unknown(cls, problem: str) -> EMUncertainty:
        """No uncertainty at all, and why (e.g. an em.json saved before it was computed)."""
        return cls(None, None, None, 0, None, None, None, 0, 0, 0, (problem,))


def em_uncertainty(X: np.ndarray, run: EMFit, n_boot: int, random_seed: int) -> EMUncertainty:
    """The run's information SEs and Wald intervals, and `n_boot` bootstrap replicates on X (n, D).

    The bootstrap is nonparametric, seeded by random_seed, in this process (n_jobs=1), so the
    same run gives the same numbers; n_boot = 0 skips it.
    """
    estimator = run.estimator()
    problems = []
    standard_errors = wald_low = wald_high = None
    try:
        standard_errors = estimator.standard_errors(X)
        wald = estimator.wald_intervals(X)
        wald_low, wald_high = wald.lower, wald.upper
    except ValueError as error:
        problems.append(f"EM standard errors: {error}")
    counts = (0, 0, 0)
    boot_se = boot_low = boot_high = None
    if n_boot > 0:
        result = estimator.bootstrap(X, n_boot, "nonparametric", random_seed, n_jobs=1)
        counts = (result.n_failed, result.n_relabelled, result.n_unconverged)
        try:
            boot_se = result.standard_errors()
            intervals = result.intervals()
            boot_low, boot_high = intervals.lower, intervals.upper
        except ValueError as error:
            problems.append(f"EM bootstrap: {error}")
        if result.n_failed:
            problems.append(
                f"EM bootstrap: {result.n_failed} of {n_boot} replicates failed and are left out"
            )
    return EMUncertainty(
        standard_errors,
        wald_low,
        wald_high,
        n_boot,
        boot_se,
        boot_low,
        boot_high,
        *counts,
        tuple(problems),
    )
