"""Sampling the mixture with NUTS: start at the EM estimate, time the compile, fix the labelling."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import pymc as pm
import pytensor
from pymc.backends.ndarray import NDArray
from pymc.pytensorf import resolve_backend_compile_kwargs
from pytensor.compile.mode import get_mode
from threadpoolctl import threadpool_limits
from xarray import DataTree

from em_reference import GaussianMixtureEM, MixtureParameters
from em_reference.validation import check_integer
from models.labels import relabel_posterior
from models.mixture import check_compatible, observed_data
from models.nuts_setup import DensityGradient, choose_mass_matrix, exact_numerics, nuts_step
from models.posterior_density import PosteriorDensity, kernels_cached
from models.predictions import log_likelihood_group, predictive_group

BACKEND: str | None = None
"""How NUTS evaluates the log density: None is the hand-written density of
`models.posterior_density` for `build_model`'s models (PyTensor's default, Numba, for others);
a PyTensor backend ("numba", "c", ...) compiles the model's graph instead.

PyTensor's Numba compiles hundreds of functions per model on an empty cache; its C backend
samples far slower here (PyTensor cannot link it to a BLAS). All of them compile without
fastmath, so the run that first compiles (a new machine or cache) gives the same draws as later
runs that load the compiled code from the cache.
"""

DENSITY_BACKEND = "posterior_density"
"""The `backend` a posterior records when NUTS evaluated `models.posterior_density`."""

FIRST_COMPILE_NOTICE = (
    "Compiling the models' log density with Numba: a one-off wait of about 15 s on a new "
    "machine or compile cache; later runs load it from the cache."
)
"""One line on stderr before a set-up that compiles the density from an empty Numba cache."""

REFERENCE_RESTARTS = 10
"""k-means++ restarts of the EM fit made when no reference is given."""


def sample_posterior(
    model: pm.Model,
    draws: int = 1000,
    tune: int = 1000,
    chains: int = 4,
    random_seed: int | None = 0,
    reference: Any = None,
    progressbar: bool = True,
    *,
    cores: int | None = None,
    target_accept: float = 0.8,
    backend: str | None = BACKEND,
    mass_matrix: str | None = None,
    predictions: bool = True,
) -> DataTree:
    """Sample the model with NUTS; the DataTree of draws, log-likelihoods and predictions.

    Groups: posterior (weights, means, covariances and the free variables, in the reference's
    component order), sample_stats, observed_data, log_likelihood (pointwise, every draw, for
    LOO) and posterior_predictive (`models.predictions.PREDICTIVE_DRAWS` evenly spaced draws per
    chain), the last two in float32 (`models.predictions.STORED_DTYPE`). `reference` (a fitted
    GaussianMixtureEM, MixtureParameters or mapping) fixes the labelling; without one, EM is
    fitted with k-means++ restarts seeded by random_seed.
    Every chain starts near the reference, at a draw from the Laplace approximation there (see
    `models.nuts_setup`).

    The posterior attrs record `compile_seconds` (building NUTS: the logp and gradient compile,
    the starts and the function that records each draw),
    `sampling_seconds` (PyMC's time for the tuning and drawing loop), `relabelled_draws` (draws
    that had to be permuted to the reference labelling; 0 means no label switching),
    `random_seed` and `backend`. The same random_seed gives the same draws, whatever `cores`.
    `cores=None` runs one chain per CPU core (PyMC's own default counts half the cores, which on
    a 2-core machine samples the chains one after another); chains sampled in parallel get one
    BLAS thread each, since the likelihood's matrix product is threaded at large n and the
    processes' threads would fight for the cores (benchmarks/README.md has both measurements);
    `backend` None evaluates the hand-written density (recorded as "posterior_density"); "numba",
    "c", ... compile the model's graph with that PyTensor backend (see `BACKEND`).
    `mass_matrix` "full" or "diag" chooses the adapted NUTS mass matrix; None means "full" up to
    `models.nuts_setup.DENSE_MAX_SIZE` free parameters, "diag" beyond (recorded as `mass_matrix`).
    `predictions=False` leaves out the log_likelihood and posterior_predictive groups (the
    report needs them).
    """
    draws = check_integer("draws", draws, 1)
    tune = check_integer("tune", tune, 0)
    chains = check_integer("chains", chains, 1)
    cores = min(chains, os.cpu_count() or 1) if cores is None else cores
    random_seed = _check_seed(random_seed)
    mass_matrix = choose_mass_matrix(model, mass_matrix)
    parameters = reference_parameters(model, reference, random_seed)
    compile_kwargs = resolve_backend_compile_kwargs(backend, None)
    # One seed per chain for its start, drawn as pm.sample draws its own.
    chain_rngs = np.random.default_rng(random_seed).spawn(chains)
    chain_seeds = [int(rng.integers(2**30)) for rng in chain_rngs]

    if progressbar:
        announce_first_compile()
    started = time.perf_counter()
    with no_c_compiler(backend):
        starts, step = nuts_step(
            model, parameters, chain_seeds, mass_matrix, backend, target_accept
        )
    trace = recording_trace(model, step._logp_dlogp_func, starts[0])
    compile_seconds = time.perf_counter() - started

    with (
        exact_numerics(),
        no_c_compiler(backend),
        threadpool_limits(limits=1 if cores > 1 else None, user_api="blas"),
    ):
        idata = pm.sample(
            draws,
            tune=tune,
            chains=chains,
            cores=cores,
            step=step,
            initvals=starts,
            trace=trace,
            random_seed=random_seed,
            progressbar=progressbar,
            model=model,
            compute_convergence_checks=False,
            compile_kwargs=compile_kwargs,
        )
    _check_complete(idata, chains, draws)
    posterior, relabelled = relabel_posterior(idata.posterior.to_dataset(), parameters)
    posterior.attrs.update(
        compile_seconds=compile_seconds,
        sampling_seconds=float(idata.posterior.attrs["sampling_time"]),
        relabelled_draws=relabelled,
        random_seed=random_seed,
        backend=(
            DENSITY_BACKEND
            if isinstance(step._logp_dlogp_func, DensityGradient)
            else type(get_mode(compile_kwargs.get("mode")).linker).__name__
        ),
        mass_matrix=mass_matrix,
    )
    idata["posterior"] = posterior
    if not predictions:
        return idata
    return _add_predictions(idata, random_seed)


def no_c_compiler(backend: str | None) -> AbstractContextManager:
    """PyTensor without a C compiler inside, unless backend is "c".

    PyMC builds its one-off helpers (the model's initial point, each chain's start) in
    FAST_COMPILE mode, which on an empty compile cache compiles a dozen C modules with g++,
    seconds each; without a compiler PyTensor runs them in Python, with the same values.
    """
    return contextlib.nullcontext() if backend == "c" else pytensor.config.change_flags(cxx="")


class SharedFunctionTrace(NDArray):
    """PyMC's in-memory trace, whose per-chain copies share one compiled recording function.

    `pm.sample` otherwise compiles the function that turns each draw's value variables into the
    recorded ones (weights, covariances, ...) once per chain, although it is the same function;
    the copy it makes of a `trace` argument shares the sample arrays, so copies are made here.
    """

    def __copy__(self) -> NDArray:
        return NDArray(
            model=self.model,
            vars=self.vars,
            fn=self.fn,
            var_shapes=self.var_shapes,
            var_dtypes=self.var_dtypes,
        )


def recording_trace(model: pm.Model, logp_dlogp: Any, start: dict[str, np.ndarray]) -> NDArray:
    """The trace `pm.sample` fills, recording every variable of each draw from its value point.

    With the hand-written density (a `DensityGradient`) the values are computed in NumPy by the
    density's `constrained`; otherwise PyTensor compiles the model's recording function once.
    """
    if isinstance(logp_dlogp, DensityGradient):
        recorded = model.unobserved_value_vars
        record = DensityRecord(logp_dlogp.density, [var.name for var in recorded])
        return SharedFunctionTrace(model=model, vars=recorded, fn=record, test_point=start)
    with exact_numerics():
        return SharedFunctionTrace(model=model, test_point=start)


class DensityRecord:
    """PyMC's recording function for a `PosteriorDensity`: value variables in, recorded out."""

    def __init__(self, density: PosteriorDensity, names: list[str]) -> None:
        self.density = density
        self.names = names

    def __call__(self, *values: np.ndarray, **named: np.ndarray) -> list[np.ndarray]:
        """The recorded variables (in `names` order) at the value variables.

        PyMC passes those in `value_vars` order, or by name.
        """
        values += tuple(named[name] for name in self.density.names if name in named)
        point = np.concatenate([np.ravel(value) for value in values])
        constrained = self.density.constrained(point)
        return [constrained[name] for name in self.names]


def announce_first_compile() -> None:
    """Say FIRST_COMPILE_NOTICE on stderr when the density's kernels are not in Numba's cache.

    Once per process: a main run compiles one kernel in each of its two NUTS runs.
    """
    if not kernels_cached() and not _ANNOUNCED:
        print(FIRST_COMPILE_NOTICE, file=sys.stderr, flush=True)
        _ANNOUNCED.append(True)


_ANNOUNCED: list[bool] = []
"""Not empty once FIRST_COMPILE_NOTICE has been said in this process."""


def reference_parameters(model: pm.Model, reference: Any, random_seed: int) -> MixtureParameters:
    """The estimate that fixes the labelling: `reference`, or an EM fit to the model's data."""
    if reference is None:
        n_components = len(model.coords["component"])
        reference = GaussianMixtureEM(
            n_components, n_init=REFERENCE_RESTARTS, random_state=random_seed
        ).fit(observed_data(model))
    parameters = MixtureParameters.from_any(reference)
    check_compatible(model, parameters)
    return parameters


def _add_predictions(idata: DataTree, random_seed: int) -> DataTree:
    """Add the log_likelihood (every draw) and posterior_predictive (thinned) groups to idata.

    Both are computed in NumPy from the posterior draws (see `models.predictions`), the
    predictive draws from a random stream of their own.
    """
    posterior = idata.posterior.to_dataset()
    observed = idata.observed_data.to_dataset()
    idata["log_likelihood"] = log_likelihood_group(posterior, observed)
    rng = np.random.default_rng([random_seed, 1])
    idata["posterior_predictive"] = predictive_group(posterior, observed, rng)
    return idata


def _check_complete(idata: DataTree, chains: int, draws: int) -> None:
    """Raise KeyboardInterrupt again if PyMC returned fewer chains or draws than asked for.

    PyMC's sampling loops catch KeyboardInterrupt and return the draws made so far; a
    truncated posterior must never pass for the one that was asked for.
    """
    got = (int(idata.posterior.sizes["chain"]), int(idata.posterior.sizes["draw"]))
    if got != (chains, draws):
        raise KeyboardInterrupt(
            f"sampling was interrupted: {got[0]} chains of {got[1]} draws, not {chains} of {draws}"
        )


def _check_seed(random_seed: Any) -> int:
    """An integer seed: random_seed itself, or a fresh one when None (it is recorded)."""
    if random_seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    return check_integer("random_seed", random_seed, 0)
