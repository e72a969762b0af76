"""The checks the pipeline makes on the data before any work: components against points, scale."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from analysis.collapse import collinear_columns
from analysis.datasets import Dataset
from analysis.settings import REG_COVAR
from models.stored import STORED_DTYPE

MIN_VARIANCE = 100 * REG_COVAR
"""Smallest column variance accepted: reg_covar then adds at most 1 % to it."""
DATA_POWERS = {"em": 4, "vb": 4}
"""The highest power of the data each method's computation takes, so values up to the root of
float64's largest number of that degree are safe (found by experiment on seed42 scaled by 10^e,
the first RuntimeWarning at about these roots). EM: its information standard errors hold the
covariance of a covariance estimate, a fourth power (overflow from 1e79); VB: its q's scale
matrices, and the spread of its covariance draws (the summaries standardise the draws first, so
no higher power is formed). No determinant is formed (log-determinants come from Cholesky
factors), so the bound does not depend on D."""

PREDICTIVE_REACH = 10.0
"""How far, as a multiple of the data's largest absolute value, posterior predictive draws may
reach: a draw lies within a few component SDs of a component mean, each at most that value."""


def check_components(dataset: Dataset, n_components: int, methods: Collection[str] = ()) -> None:
    """Raise ValueError unless 1 <= K <= n, NUTS (if in methods) has enough points, `check_scale`.

    EM and VB take any K <= n: EM's reg_covar and VB's Wishart prior keep every covariance
    positive definite (a component on too few points is reported as collapsed); NUTS has no such
    floor, see `full_covariance_points`.
    """
    if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"the number of components must be an integer >= 1, got {n_components!r}")
    if dataset.n_points < n_components:
        raise ValueError(
            f"{dataset.name} has {dataset.n_points} points, fewer than the "
            f"{n_components} components asked for"
        )
    shortfall = too_few_points(dataset.n_points, dataset.n_features, n_components)
    if "nuts" in methods and shortfall is not None:
        raise ValueError(
            f"{dataset.name}: NUTS is not run on so few points: {shortfall}; fit fewer "
            "components or leave NUTS out"
        )
    check_scale(dataset, methods)
    check_vb_defined(dataset, methods)


def check_vb_defined(dataset: Dataset, methods: Collection[str]) -> None:
    """Raise ValueError when VB is among methods and the data's columns are collinear.

    VB's default Wishart prior is scaled by the data's covariance, singular for collinear
    columns, and so is then every component's posterior scale matrix: VB cannot start. EM and
    NUTS still run, and their collapse onto the data's subspace is named in the report.
    """
    if "vb" not in methods:
        return
    groups = collinear_columns(dataset.X, dataset.dim_coords)
    if groups:
        raise ValueError(
            f"{dataset.name}: columns {', '.join(map(str, groups[0]))} are collinear (one is a "
            "linear combination of the others), so VB's data-scaled prior is singular: drop one "
            "of them, or leave VB out (--methods em,nuts)"
        )


def full_covariance_points(n_features: int, n_components: int) -> int:
    """The fewest points for K components with full covariances in D dimensions: K (D + 1).

    A full D x D covariance is non-singular only when fitted to at least D + 1 points (D + 1
    points span a D-dimensional simplex). With fewer than K (D + 1) points some component holds
    fewer: EM's covariance for it is the reg_covar floor (so its log-likelihood, BIC and ICL
    measure the floor), and NUTS's posterior funnels toward a singular covariance, its mean onto
    a point and its scales toward 0, where they underflow and no chain can start or move (n == K
    gave "All initialization points failed").
    """
    return n_components * (n_features + 1)


def too_few_points(n_points: int, n_features: int, n_components: int) -> str | None:
    """Why n points in D dimensions are too few for K full covariances, or None if enough."""
    needed = full_covariance_points(n_features, n_components)
    if n_points >= needed:
        return None
    return (
        f"K = {n_components} components in D = {n_features} dimensions need at least "
        f"K (D + 1) = {needed} points (D + 1 per full covariance), the data have {n_points}"
    )


def scale_limits(n_points: int, methods: Collection[str] = ()) -> list[tuple[float, str]]:
    """The largest absolute values accepted in n points for a run of methods, each with why.

    EM always runs (`DATA_POWERS`). With NUTS the posterior predictive draws are stored in
    float32 (`models.stored.STORED_DTYPE`) and the predictive check's density estimate sums
    n of their squares in float32, so n (PREDICTIVE_REACH x the largest value)^2 must stay
    finite (seed42, n = 300: a RuntimeWarning from 1e18).
    """
    power = max(DATA_POWERS[name] for name in {"em", *methods} if name in DATA_POWERS)
    bound = float(np.finfo(np.float64).max) ** (1.0 / power)
    limits = [(bound, f"float64 arithmetic: the fit's {power}th powers overflow above {bound:.3g}")]
    if "nuts" in methods:
        stored = float(np.sqrt(np.finfo(STORED_DTYPE).max / n_points) / PREDICTIVE_REACH)
        limits.append(
            (
                stored,
                f"NUTS's float32 predictive draws: the sum of the squares of {n_points} of "
                f"them overflows above {stored:.3g}",
            )
        )
    return limits


def check_scale(dataset: Dataset, methods: Collection[str] = ()) -> None:
    """Raise ValueError unless the data's scale suits EM's absolute reg_covar and the arithmetic.

    Estimates are not rescaled silently: the published seed-7907 table depends on reg_covar
    being absolute, so data whose columns vary by less than `MIN_VARIANCE` (reg_covar would bias
    the covariances) or hold values beyond `scale_limits` (the methods' powers of them
    overflow) are refused with the advice to rescale them.
    """
    largest = float(np.max(np.abs(dataset.X)))
    for bound, reason in scale_limits(dataset.n_points, methods):
        if largest > bound:
            raise ValueError(
                f"{dataset.name} has values as large as {largest:.3g}, too large for {reason}: "
                f"rescale the data, e.g. divide it by {10 ** np.floor(np.log10(largest)):.0e}"
            )
    spreads = standard_deviations(dataset.X)
    small = np.flatnonzero(spreads**2 < MIN_VARIANCE)
    if small.size:
        j = int(small[0])
        raise ValueError(
            f"{dataset.name}: column {j + 1} varies too little (standard deviation "
            f"{spreads[j]:.3g}, variance below {MIN_VARIANCE:g}): EM adds {REG_COVAR:g} to every "
            "variance, which would bias the estimates; rescale the data (multiply it by a power "
            "of 10) or drop a constant column"
        )


def standard_deviations(X: np.ndarray, ddof: int = 0) -> np.ndarray:
    """Each column's standard deviation (D,), from the column over its largest absolute value.

    Dividing first keeps the squares of tiny values (1e-300) from underflowing to zero and those
    of huge ones (a covariance draw of data near the scale limit) from overflowing.
    """
    largest = np.max(np.abs(X), axis=0)
    unit = np.where(largest > 0, largest, 1.0)
    return (X / unit).std(axis=0, ddof=ddof) * unit
