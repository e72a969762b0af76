"""What the machine can hold: the memory a run may plan for, and the counts that fit in it.

Every count the command takes (draws, tuning steps, chains, bootstrap replicates, points,
components, study replicates, workers) is bounded twice. Before any data is read, by what one
unit of it costs at the least (`most_units`): a value no machine could hold (10^20 replicates,
2^63 draws) is refused by the parser. Once the data is known, by `run_bytes`, the one estimate of
what a run holds at its peak (EM's arrays, the bootstrap's replicates, the posterior with its
pointwise log-likelihood and predictive draws), checked against `memory_budget` before any work
(`check_run_memory`), naming the option to lower and its largest allowed value.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from models.stored import PREDICTIVE_DRAWS, STORED_DTYPE

MEMORY_SHARE = 0.5
"""The share of the machine's physical memory a run may plan to fill; the rest is for the
libraries, the sampler's and Dask's processes and whatever else runs on the machine."""
FLOAT_BYTES = 8
"""The least one unit of any count costs: one float64 (a draw, a point, a component, ...)."""
REPLICATE_BYTES = 2**14
"""A study replicate's bookkeeping while the study runs: its Dask task on the scheduler and its
future on the client (a few KB each), with room to spare."""
WORKER_BYTES = 2**29
"""A Dask worker process of the study, its replicate's arrays apart: Python, NumPy, PyMC and
nutpie imported (the command's own process, with them, measured about 400 MB)."""
EM_ARRAYS = 4
"""(n, K) float64 arrays EM holds at once: log densities, responsibilities and their copies."""
SAMPLE_STATS = 32
"""float64 values nutpie keeps per draw besides the parameters (tree depth, energy, step size,
...), rounded up."""
BOOTSTRAP_OVERHEAD = 2**10
"""Bytes of Python objects around one bootstrap replicate's parameters (its result record)."""


def memory_budget() -> int:
    """Bytes a run may plan to hold: MEMORY_SHARE of the machine's physical memory."""
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * MEMORY_SHARE)


def most_units(unit_bytes: int = FLOAT_BYTES) -> int:
    """The largest count whose units, `unit_bytes` each, fit in the budget."""
    return memory_budget() // unit_bytes


def describe_budget() -> str:
    """The budget in words, for messages: 'gmm-compare plans for at most 12.3 GB, half ...'."""
    return (
        f"gmm-compare plans for at most {memory_budget() / 1e9:.3g} GB, "
        f"{MEMORY_SHARE:.0%} of this machine's memory"
    )


@dataclass(frozen=True)
class RunSize:
    """What a run's memory depends on: the data's n, D, K and the counts of the methods run."""

    n_points: int
    n_features: int
    n_components: int
    draws: int = 0
    chains: int = 0
    bootstrap: int = 0
    nuts: bool = False
    twin: bool = False
    """Whether NUTS also samples the model under VB's priors (its posterior only is kept)."""
    workers: int = 0
    """A study's Dask worker processes, each running one replicate at a time (0: not a study)."""
    replicates: int = 0
    """A study's replicates, each a task and a future while the study runs."""


def run_bytes(size: RunSize) -> int:
    """Bytes a run holds at its peak beyond the libraries: EM, bootstrap, posterior(s).

    The posterior holds, per chain and draw, the parameters (weights K, means K D, covariances
    K D^2), the free ones the sampler moves and its statistics in float64, and the pointwise
    log-likelihood, n values computed in float64 and kept in float32; the predictive check adds
    up to PREDICTIVE_DRAWS replicated data sets (n, D) per chain. A study holds one run per
    worker, the workers themselves and its replicates' bookkeeping.
    """
    n, d, k = size.n_points, size.n_features, size.n_components
    em = FLOAT_BYTES * (n * d + EM_ARRAYS * n * k)
    bootstrap = size.bootstrap * (FLOAT_BYTES * _parameters(size)[0] + BOOTSTRAP_OVERHEAD)
    one_run = em + bootstrap + (_posterior_bytes(size) if size.nuts else 0)
    study = size.workers * WORKER_BYTES + size.replicates * REPLICATE_BYTES
    return max(1, size.workers) * one_run + study


def _parameters(size: RunSize) -> tuple[int, int]:
    """The parameters a draw holds, stored and free: (K + K D + K D^2, K - 1 + K D + K D (D+1)/2).

    Stored: weights, means, covariances; free: the ones the sampler moves.
    """
    d, k = size.n_features, size.n_components
    return k + k * d + k * d * d, (k - 1) + k * d + k * d * (d + 1) // 2


def _posterior_bytes(size: RunSize) -> int:
    """Bytes of the posterior(s) of one run, with the log-likelihood and predictive draws."""
    n, d = size.n_points, size.n_features
    stored = STORED_DTYPE().itemsize
    per_draw = FLOAT_BYTES * (sum(_parameters(size)) + SAMPLE_STATS)
    samples = size.chains * size.draws
    posterior = samples * (per_draw + (FLOAT_BYTES + stored) * n)
    predictive = size.chains * min(PREDICTIVE_DRAWS, size.draws) * n * d * (FLOAT_BYTES + stored)
    twin = samples * per_draw if size.twin else 0
    return posterior + predictive + twin


def check_run_memory(size: RunSize, options: Mapping[str, str]) -> None:
    """ValueError naming the option to lower, its value and its limit, when a run cannot fit.

    `options` maps RunSize fields to the option that sets them (e.g. {"draws": "--draws"}),
    tried in that order: the first whose lowering alone makes the run fit is named, with the
    largest value that fits the others as given.
    """
    budget = memory_budget()
    need = run_bytes(size)
    if need <= budget:
        return
    for field, option in options.items():
        asked = getattr(size, field)
        least = 0 if field == "bootstrap" else 1

        def fits(value: int, field: str = field) -> bool:
            return run_bytes(replace(size, **{field: value})) <= budget

        if asked > least and fits(least):
            raise ValueError(
                f"{option} {asked} is more than this machine can hold with the other settings: "
                f"at most {largest(fits, least, asked)} (this run would need about "
                f"{need / 1e9:.3g} GB; {describe_budget()})"
            )
    raise ValueError(
        f"this run would need about {need / 1e9:.3g} GB with {size.n_points} points of "
        f"dimension {size.n_features} and {size.n_components} components; {describe_budget()}"
    )


def largest(fits: Callable[[int], bool], low: int, high: int) -> int:
    """The largest value in low..high that fits, by bisection; fits(low) holds, fits is monotone."""
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low
