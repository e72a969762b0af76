"""The bootstrap of an EM fit: nonparametric, parametric and weighted-likelihood replicates.

Every replicate is refitted by EM from the estimate and its components matched to the
estimate's (an assignment problem on the distances between means); replicates whose EM failed,
that needed relabelling, or that stopped at max_iter are counted in the result, never hidden.
Replicate j draws from the j-th child of SeedSequence(random_state), so the result is the same
whatever the number of worker processes.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import pairwise, permutations
from typing import Any

import numpy as np

from em_reference.gaussian_mixture import run_em
from em_reference.likelihood import precisions_cholesky
from em_reference.parameters import MixtureParameters
from em_reference.uncertainty import (
    INTERVAL_PROB,
    MixtureArrays,
    ParameterIntervals,
    normal_quantile,
)
from em_reference.validation import check_data, check_integer

BOOTSTRAP_METHODS = ("nonparametric", "parametric", "weighted")
CHUNKS_PER_JOB = 4
"""Bootstrap replicates go to the workers in this many chunks per process, for load balance."""

# ---------------------------------------------------------------------------------------------
# Matching a replicate's components to the original ones


def matching_costs(means: np.ndarray, reference: MixtureParameters) -> np.ndarray:
    """Costs (K, K): squared Mahalanobis distance of replicate mean j from reference mean k.

    cost[k, j] is measured in component k's metric, for replicate means (K, D): the criterion
    `models` uses to match NUTS draws to the EM estimate.
    """
    precision_chol = precisions_cholesky(reference.covariances)  # (K, D, D)
    difference = means[None, :, :] - reference.means[:, None, :]  # (k, j, D)
    projected = np.einsum("kjd,kde->kje", difference, precision_chol)
    return np.sum(projected**2, axis=-1)


def assignment(cost: np.ndarray) -> np.ndarray:
    """The order (K,) minimising sum_k cost[k, order[k]] (K, K): the Hungarian method, O(K^3).

    Shortest augmenting paths with row potentials u and column potentials v (1-based columns,
    column 0 a sentinel); owner[j] is the row currently assigned to column j.
    """
    size = cost.shape[0]
    diagonal = np.arange(size)
    if np.array_equal(np.argmin(cost, axis=1), diagonal):
        return diagonal  # every row's minimum on the diagonal: no order costs less
    u = np.zeros(size + 1)
    v = np.zeros(size + 1)
    owner = np.zeros(size + 1, dtype=np.int64)
    for row in range(1, size + 1):
        owner[0] = row
        column = 0
        slack = np.full(size + 1, np.inf)
        previous = np.zeros(size + 1, dtype=np.int64)
        used = np.zeros(size + 1, dtype=bool)
        while owner[column] != 0:
            used[column] = True
            current = owner[column]
            free = ~used[1:]
            reduced = cost[current - 1] - u[current] - v[1:]
            better = free & (reduced < slack[1:])
            slack[1:][better] = reduced[better]
            previous[1:][better] = column
            candidates = np.where(free, slack[1:], np.inf)
            nxt = int(np.argmin(candidates)) + 1
            delta = candidates[nxt - 1]
            u[owner[used]] += delta
            v[used] -= delta
            slack[~used] -= delta
            column = nxt
        while column != 0:  # flip the augmenting path
            back = previous[column]
            owner[column] = owner[back]
            column = back
    order = np.empty(size, dtype=np.int64)
    order[owner[1:] - 1] = np.arange(size)
    return order


def brute_force_assignment(cost: np.ndarray) -> np.ndarray:
    """The same optimum as `assignment` by trying all K! orders (a check for small K)."""
    best = min(permutations(range(cost.shape[0])), key=lambda p: cost[range(len(p)), p].sum())
    return np.array(best, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# The bootstrap


@dataclass(frozen=True)
class BootstrapResult:
    """Refitted parameters of the replicates that succeeded, in the original component order.

    weights (B, K), means (B, K, D), covariances (B, K, D, D) with B = n_boot - n_failed.
    n_failed: replicates whose EM failed (a component collapsed), left out of the arrays;
    n_relabelled: replicates whose components had to be permuted to match the estimate;
    n_unconverged: replicates that reached max_iter (kept).
    """

    method: str
    estimate: MixtureParameters
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    n_boot: int
    n_failed: int
    n_relabelled: int
    n_unconverged: int

    def standard_errors(self) -> MixtureArrays:
        """Standard deviations over the replicates (ddof 1): weights (K,), means, covariances."""
        if self.weights.shape[0] < 2:
            raise ValueError(
                f"standard errors need 2 or more replicates, have {self.weights.shape[0]}"
            )
        return MixtureArrays(
            *(
                np.std(values, axis=0, ddof=1)
                for values in (self.weights, self.means, self.covariances)
            )
        )

    def intervals(self, prob: float = INTERVAL_PROB) -> ParameterIntervals:
        """Percentile intervals: the (1 - prob) / 2 and (1 + prob) / 2 quantiles of replicates."""
        normal_quantile(prob)  # validates prob
        bounds = [
            MixtureArrays(
                *(
                    np.quantile(values, q, axis=0)
                    for values in (self.weights, self.means, self.covariances)
                )
            )
            for q in (0.5 - 0.5 * prob, 0.5 + 0.5 * prob)
        ]
        return ParameterIntervals(bounds[0], bounds[1], prob)


@dataclass(frozen=True)
class _BootstrapTask:
    """Everything a worker process needs to refit replicates (picklable)."""

    X: np.ndarray
    method: str
    estimate: MixtureParameters
    sampler: Any  # a fitted GaussianMixtureEM without callback, for parametric draws
    max_iter: int
    tol: float
    reg_covar: float


@dataclass(frozen=True)
class _Replicate:
    """One replicate's outcome: parameters in the estimate's order, or None if EM failed."""

    parameters: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    relabelled: bool = False
    converged: bool = True


def _refit(task: _BootstrapTask, seed: np.random.SeedSequence) -> _Replicate:
    """Draw one replicate from its own seed, refit EM from the estimate, match components."""
    rng = np.random.default_rng(seed)
    n_points = task.X.shape[0]
    start = (task.estimate.weights, task.estimate.means, task.estimate.covariances)
    settings = (task.max_iter, task.tol, task.reg_covar)
    try:
        if task.method == "nonparametric":
            run = run_em(task.X[rng.integers(n_points, size=n_points)], start, *settings)
        elif task.method == "parametric":
            drawn, _ = task.sampler.sample(n_points, random_state=rng)
            run = run_em(drawn, start, *settings)
        else:
            sample_weight = n_points * rng.dirichlet(np.ones(n_points))
            run = run_em(task.X, start, *settings, sample_weight=sample_weight)
    except (ValueError, np.linalg.LinAlgError):
        return _Replicate(None)
    fitted = run.state
    order = assignment(matching_costs(fitted.means, task.estimate))
    relabelled = bool(np.any(order != np.arange(order.size)))
    parameters = (fitted.weights[order], fitted.means[order], fitted.covariances[order])
    return _Replicate(parameters, relabelled, run.converged)


def _refit_chunk(task: _BootstrapTask, seeds: list[np.random.SeedSequence]) -> list[_Replicate]:
    """`_refit` for a chunk of replicates, in order (one call per worker task)."""
    return [_refit(task, seed) for seed in seeds]


def _check_jobs(n_jobs: Any) -> int:
    """Worker processes from n_jobs: a positive count, or -1 for every core."""
    if isinstance(n_jobs, int | np.integer) and not isinstance(n_jobs, bool) and n_jobs == -1:
        return os.cpu_count() or 1
    try:
        return check_integer("n_jobs", n_jobs)
    except ValueError:
        raise ValueError(f"n_jobs must be a positive integer or -1, got {n_jobs!r}") from None


def _seeds(random_state: Any, n_boot: int) -> list[np.random.SeedSequence]:
    """One child SeedSequence per replicate, so replicate j is the same however work is split."""
    if isinstance(random_state, np.random.SeedSequence):
        root = random_state
    elif random_state is None or (
        isinstance(random_state, int | np.integer) and not isinstance(random_state, bool)
    ):
        root = np.random.SeedSequence(random_state)
    else:
        raise ValueError(
            f"random_state must be an int, a numpy SeedSequence or None, got {random_state!r}"
        )
    return root.spawn(n_boot)


def bootstrap(
    estimator: Any,
    X: Any,
    n_boot: int = 999,
    method: str = "nonparametric",
    random_state: Any = 0,
    n_jobs: int = 1,
) -> BootstrapResult:
    """Bootstrap replicates of a fitted GaussianMixtureEM's parameters on its data X (n, D).

    method: "nonparametric" (n points drawn with replacement), "parametric" (n points drawn from
    the fitted mixture by its `sample`) or "weighted" (every point weighted by n times a
    Dirichlet(1, ..., 1) draw, the weighted likelihood maximised). Each replicate is refitted by
    EM from the estimate with the estimator's max_iter, tol and reg_covar, and its components
    matched to the estimate's. Replicate j uses the j-th child of SeedSequence(random_state),
    so results do not depend on n_jobs (worker processes; -1: every core).
    """
    if method not in BOOTSTRAP_METHODS:
        raise ValueError(f"method must be one of {BOOTSTRAP_METHODS}, got {method!r}")
    n_boot = check_integer("n_boot", n_boot)
    jobs = _check_jobs(n_jobs)
    estimate = estimator.parameters_
    X = check_data(X, estimate.n_features)
    sampler = None
    if method == "parametric":
        sampler = copy.copy(estimator)
        sampler.callback = None  # a callback need not be picklable, and sampling never calls it
    task = _BootstrapTask(
        X, method, estimate, sampler, estimator.max_iter, estimator.tol, estimator.reg_covar
    )
    seeds = _seeds(random_state, n_boot)
    replicates = _run_replicates(task, seeds, jobs)
    return _collect(task, replicates)


def _run_replicates(
    task: _BootstrapTask, seeds: list[np.random.SeedSequence], jobs: int
) -> list[_Replicate]:
    """Every replicate's outcome, in seed order; chunks spread over `jobs` processes."""
    if jobs == 1:
        return _refit_chunk(task, seeds)
    n_chunks = min(len(seeds), jobs * CHUNKS_PER_JOB)
    bounds = np.linspace(0, len(seeds), n_chunks + 1).astype(int)
    chunks = [seeds[start:stop] for start, stop in pairwise(bounds)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = pool.map(_refit_chunk, [task] * len(chunks), chunks)
        return [replicate for chunk in results for replicate in chunk]


def _collect(task: _BootstrapTask, replicates: list[_Replicate]) -> BootstrapResult:
    """Stack the successful replicates and count the failed, relabelled and unconverged ones."""
    kept = [replicate for replicate in replicates if replicate.parameters is not None]
    n_components, n_features = task.estimate.means.shape
    stacked = [
        np.array([replicate.parameters[i] for replicate in kept]).reshape(len(kept), *shape)
        for i, shape in enumerate(
            ((n_components,), (n_components, n_features), (n_components, n_features, n_features))
        )
    ]
    return BootstrapResult(
        method=task.method,
        estimate=task.estimate,
        weights=stacked[0],
        means=stacked[1],
        covariances=stacked[2],
        n_boot=len(replicates),
        n_failed=len(replicates) - len(kept),
        n_relabelled=sum(replicate.relabelled for replicate in kept),
        n_unconverged=sum(not replicate.converged for replicate in kept),
    )
