"""NUTS for many data sets of one shape: the model is built once and the data swapped in.

A simulation study samples the same mixture model on hundreds of replicate data sets of one size.
`SharedDataSampler` builds `build_model(X, K, shared_data=True)` once and loads the hand-written
density's Numba kernels (`models.posterior_density`); for each data set it only calls
`pm.set_data`, reads the density's data and prior scales from the model again, and samples.
`cached_sampler` keeps one per (n, D, K) in the process (a Dask worker reuses it for every
replicate it runs). Chains run one after another in this process (a Dask worker may not fork),
by the loop `pm.sample` runs for one chain: `setup_chain`, tuning, `stop_tuning`, draws.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
from pymc.blocking import DictToArrayBijection

from em_reference import MixtureParameters
from em_reference.validation import check_integer
from models.labels import component_orders
from models.mixture import build_model, shared_data_values
from models.nuts_setup import DensityGradient, choose_mass_matrix, nuts_step_at
from models.posterior_density import PosteriorDensity

RECORDED = ("weights", "means", "covariances")
"""The quantities kept from every draw."""


@dataclass(frozen=True)
class NutsDraws:
    """Draws pooled over chains, in the reference's component order, and how the run went.

    weights (S, K), means (S, K, D), covariances (S, K, D, D), S = chains x draws;
    relabelled_draws: draws permuted to match the reference (0: no label switching);
    divergences: divergent transitions after tuning; sampling_seconds: tuning and drawing.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    relabelled_draws: int
    divergences: int
    sampling_seconds: float


class SharedDataSampler:
    """The default mixture model for data of shape (n, D) at K, built once for all data sets.

    NUTS evaluates the model's hand-written density (`models.posterior_density`), read again
    from the model after each `pm.set_data`.
    """

    def __init__(self, X: np.ndarray, n_components: int) -> None:
        started = time.perf_counter()
        self.model = build_model(X, n_components, shared_data=True)
        self.shape = (X.shape[0], X.shape[1], n_components)
        self.mass_matrix = choose_mass_matrix(self.model, None)
        self.density = PosteriorDensity(self.model)
        self.density(np.zeros(self.density.size))  # compiles, or loads from Numba's cache
        self.compile_seconds = time.perf_counter() - started

    def sample(
        self,
        X: np.ndarray,
        reference: Any,
        draws: int,
        tune: int,
        chains: int,
        random_seed: int,
        target_accept: float = 0.8,
    ) -> NutsDraws:
        """NUTS on data X (n, D) from the reference estimate (which also fixes the labelling).

        Chains start as `models.sampling.sample_posterior` starts them (Laplace draws around the
        reference, one seed each from random_seed), so the same random_seed gives the same draws.
        """
        draws = check_integer("draws", draws, 1)
        tune = check_integer("tune", tune, 0)
        chains = check_integer("chains", chains, 1)
        X = np.asarray(X, dtype=np.float64)
        if X.shape[:2] != self.shape[:2]:
            raise ValueError(f"X must have shape {self.shape[:2]} for this sampler, got {X.shape}")
        reference = MixtureParameters.from_any(reference)
        pm.set_data(shared_data_values(X), model=self.model)
        self.density = PosteriorDensity(self.model)
        chain_rngs = np.random.default_rng(random_seed).spawn(chains)
        chain_seeds = [int(rng.integers(2**30)) for rng in chain_rngs]
        centre = self.density.raveled_point(reference)
        starts, step = nuts_step_at(
            self.model,
            DensityGradient(self.density),
            centre,
            chain_seeds,
            self.mass_matrix,
            target_accept,
        )
        started = time.perf_counter()
        recorded: list[list[np.ndarray]] = [[] for _ in RECORDED]
        divergences = 0
        for start, rng in zip(starts, chain_rngs, strict=True):
            divergences += self._chain(step, start, rng, tune, draws, recorded)
        seconds = time.perf_counter() - started
        weights, means, covariances = (np.stack(values) for values in recorded)
        orders = component_orders(means, reference)  # (S, K)
        relabelled = int(np.sum(np.any(orders != np.arange(orders.shape[1]), axis=1)))
        weights = np.take_along_axis(weights, orders, axis=1)
        means = np.take_along_axis(means, orders[:, :, None], axis=1)
        covariances = np.take_along_axis(covariances, orders[:, :, None, None], axis=1)
        return NutsDraws(weights, means, covariances, relabelled, divergences, seconds)

    def _chain(
        self,
        step: pm.NUTS,
        start: dict[str, np.ndarray],
        rng: np.random.Generator,
        tune: int,
        draws: int,
        recorded: list[list[np.ndarray]],
    ) -> int:
        """One chain (PyMC's `_iter_sample` loop); appends its kept draws, returns divergences."""
        step.setup_chain(rng, tune, draws)
        step.tune = bool(tune)
        step.reset_tuning()
        step.iter_count = 0
        point, divergences = start, 0
        for i in range(tune + draws):
            if i == tune:
                step.stop_tuning()
            point, stats = step.step(point)
            if i >= tune:
                divergences += int(stats[0]["diverging"])
                draw = self.density.constrained(DictToArrayBijection.map(point).data)
                for values, name in zip(recorded, RECORDED, strict=True):
                    values.append(draw[name])
        return divergences


_SAMPLERS: dict[tuple[int, int, int], SharedDataSampler] = {}
"""This process's samplers by (n, D, K)."""


def cached_sampler(X: np.ndarray, n_components: int) -> tuple[SharedDataSampler, bool]:
    """The process's sampler for data of X's shape at K, and whether it was built just now."""
    key = (int(X.shape[0]), int(X.shape[1]), int(n_components))
    if key in _SAMPLERS:
        return _SAMPLERS[key], False
    sampler = SharedDataSampler(X, n_components)
    _SAMPLERS[key] = sampler
    return sampler, True
