"""Sampling the mixture with NUTS: start at the EM estimate, time the compile, fix the labelling."""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
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
from models.compiled_nuts import MASS_MATRICES as NUTPIE_MASS_MATRICES
from models.compiled_nuts import start_density
from models.labels import relabel_posterior
from models.mixture import check_compatible, model_prior, observed_data
from models.nuts_setup import (
    DensityGradient,
    NutsRun,
    choose_mass_matrix,
    exact_numerics,
    nuts_step,
)
from models.posterior_density import PosteriorDensity, kernels_cached
from models.predictions import log_likelihood_group, predictive_group

SAMPLERS = ("nutpie", "pymc")
"""The NUTS implementations: nutpie's (compiled, in Rust) or PyMC's (in Python)."""

SAMPLER = "nutpie"
"""The default NUTS for `build_model`'s models: nutpie calling the hand-written density, with
no Python between draws (3.3 times the ESS per second of PyMC's NUTS over the same density,
benchmarks/README.md). Other models and PyTensor backends need PyMC's."""

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
    sampler: str | None = None,
    backend: str | None = BACKEND,
    mass_matrix: str | None = None,
    predictions: bool = True,
) -> DataTree:
    """Sample the model with NUTS; the DataTree of draws, log-likelihoods and predictions.

    Groups: posterior (weights, means, covariances and the free variables, in the reference's
    component order), sample_stats, observed_data, log_likelihood (pointwise, every draw, for
    LOO) and posterior_predictive (`models.stored.PREDICTIVE_DRAWS` evenly spaced draws per
    chain), the last two in float32 (`models.stored.STORED_DTYPE`). `reference` (a fitted
    GaussianMixtureEM, MixtureParameters or mapping) fixes the labelling; without one, EM is
    fitted with k-means++ restarts seeded by random_seed.
    Every chain starts near the reference, at a draw from the Laplace approximation there (see
    `models.nuts_setup`).

    `sampler` chooses the NUTS implementation (`SAMPLERS`): None is nutpie's, in Rust, calling
    the hand-written density (`models.compiled_nuts`), for `build_model`'s models with backend
    None, and PyMC's otherwise. `backend` None evaluates the hand-written density (recorded as
    "posterior_density"); "numba", "c", ... compile the model's graph with that PyTensor backend
    and sample with PyMC (see `BACKEND`). `mass_matrix` chooses the adapted mass matrix: with
    nutpie "low-rank" (None: a diagonal from draws and gradients with a low-rank correction,
    which follows the posterior correlations of weights, means and covariance factors; on
    seed-7907 about twice the ESS per second of nutpie's plain "diag") or "diag"; with PyMC
    "full" or "diag", None meaning "full" up to `models.nuts_setup.DENSE_MAX_SIZE` free
    parameters.

    The posterior attrs record `compile_seconds` (setting NUTS up: the density compiled or loaded
    from the cache, the starts), `sampling_seconds` (tuning and drawing), `relabelled_draws`
    (draws that had to be permuted to the reference labelling; 0 means no label switching),
    `random_seed`, `sampler`, `backend` and `mass_matrix`. The same random_seed gives the same
    draws, whatever `cores`. `cores=None` runs one chain per CPU core (PyMC's own default counts
    half the cores, which on a 2-core machine samples the chains one after another); with PyMC,
    chains sampled in parallel get one BLAS thread each (benchmarks/README.md).
    `predictions=False` leaves out the log_likelihood and posterior_predictive groups (the
    report needs them).
    """
    with _sampling(
        model,
        draws,
        tune,
        chains,
        random_seed,
        reference,
        progressbar,
        cores,
        target_accept,
        sampler,
        backend,
        mass_matrix,
        predictions,
    ) as result:
        return result()


@contextmanager
def posterior_in_background(model: pm.Model, **options: Any) -> Iterator[Callable[[], DataTree]]:
    """`sample_posterior(model, **options)`, its chains sampling while the caller goes on.

    Yields a call that waits for the DataTree. With nutpie the set-up is done before the yield
    and the chains run in nutpie's threads, so that work in the caller's thread (NumPy on one
    core, say) overlaps them; leaving the block before the result stops them. With PyMC
    everything is done before the yield.
    """
    bound = inspect.signature(sample_posterior).bind(model, **options)
    bound.apply_defaults()
    with _sampling(**bound.arguments) as result:
        yield result


@contextmanager
def _sampling(
    model: pm.Model,
    draws: int,
    tune: int,
    chains: int,
    random_seed: int | None,
    reference: Any,
    progressbar: bool,
    cores: int | None,
    target_accept: float,
    sampler: str | None,
    backend: str | None,
    mass_matrix: str | None,
    predictions: bool,
) -> Iterator[Callable[[], DataTree]]:
    """Check the options, set NUTS up and start it; yield a call that finishes the DataTree."""
    draws = check_integer("draws", draws, 1)
    tune = check_integer("tune", tune, 0)
    chains = check_integer("chains", chains, 1)
    cores = min(chains, os.cpu_count() or 1) if cores is None else cores
    random_seed = _check_seed(random_seed)
    sampler = choose_sampler(model, sampler, backend)
    if sampler == "nutpie":
        mass_matrix = choose_nutpie_mass_matrix(mass_matrix)
    else:
        mass_matrix = choose_mass_matrix(model, mass_matrix)
    parameters = reference_parameters(model, reference, random_seed)
    run = NutsRun(draws, tune, chains, cores, random_seed, target_accept, mass_matrix, progressbar)
    recorded = dict(random_seed=random_seed, sampler=sampler, mass_matrix=mass_matrix)

    def finish(idata: DataTree, compile_seconds: float, used_backend: str) -> DataTree:
        _check_complete(idata, chains, draws)
        posterior, relabelled = relabel_posterior(idata.posterior.to_dataset(), parameters)
        posterior.attrs.update(
            compile_seconds=compile_seconds,
            sampling_seconds=float(idata.posterior.attrs["sampling_seconds"]),
            relabelled_draws=relabelled,
            backend=used_backend,
            **recorded,
        )
        idata["posterior"] = posterior
        return add_predictions(idata, random_seed) if predictions else idata

    if progressbar:
        announce_first_compile()
    if sampler == "pymc":
        done = finish(*_sample_pymc(model, parameters, backend, run))
        yield lambda: done
        return
    running = start_density(model, parameters, run)
    try:
        yield lambda: finish(running.result(), running.setup_seconds, DENSITY_BACKEND)
    finally:
        running.cancel()


def choose_sampler(model: pm.Model, sampler: str | None, backend: str | None) -> str:
    """The NUTS implementation: sampler itself, or nutpie where it can run (see `SAMPLER`)."""
    if sampler is None:
        return SAMPLER if backend is None and model_prior(model) is not None else "pymc"
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS} or None, got {sampler!r}")
    if sampler == "nutpie" and (backend is not None or model_prior(model) is None):
        raise ValueError(
            "sampler 'nutpie' runs the hand-written density of build_model's models with "
            "backend None; use sampler 'pymc' for a PyTensor backend or another model"
        )
    return sampler


def choose_nutpie_mass_matrix(mass_matrix: str | None) -> str:
    """The mass matrix nutpie adapts: mass_matrix itself, or "low-rank" (see `sample_posterior`)."""
    if mass_matrix is None:
        return "low-rank"
    if mass_matrix not in NUTPIE_MASS_MATRICES:
        raise ValueError(
            f"mass_matrix must be one of {tuple(NUTPIE_MASS_MATRICES)} or None with sampler "
            f"'nutpie', got {mass_matrix!r}"
        )
    return mass_matrix


def _sample_pymc(
    model: pm.Model, parameters: MixtureParameters, backend: str | None, run: NutsRun
) -> tuple[DataTree, float, str]:
    """PyMC's NUTS: the DataTree `pm.sample` returns, the set-up time and the backend's name."""
    compile_kwargs = resolve_backend_compile_kwargs(backend, None)
    # One seed per chain for its start, drawn as pm.sample draws its own.
    chain_rngs = np.random.default_rng(run.random_seed).spawn(run.chains)
    chain_seeds = [int(rng.integers(2**30)) for rng in chain_rngs]
    started = time.perf_counter()
    with no_c_compiler(backend):
        starts, step = nuts_step(
            model, parameters, chain_seeds, run.mass_matrix, backend, run.target_accept
        )
    trace = recording_trace(model, step._logp_dlogp_func, starts[0])
    compile_seconds = time.perf_counter() - started
    with (
        exact_numerics(),
        no_c_compiler(backend),
        threadpool_limits(limits=1 if run.cores > 1 else None, user_api="blas"),
    ):
        idata = pm.sample(
            run.draws,
            tune=run.tune,
            chains=run.chains,
            cores=run.cores,
            step=step,
            initvals=starts,
            trace=trace,
            random_seed=run.random_seed,
            progressbar=run.progressbar,
            model=model,
            compute_convergence_checks=False,
            compile_kwargs=compile_kwargs,
        )
    idata.posterior.attrs["sampling_seconds"] = float(idata.posterior.attrs["sampling_time"])
    if isinstance(step._logp_dlogp_func, DensityGradient):
        used_backend = DENSITY_BACKEND
    else:
        used_backend = type(get_mode(compile_kwargs.get("mode")).linker).__name__
    return idata, compile_seconds, used_backend


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


def add_predictions(idata: DataTree, random_seed: int) -> DataTree:
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
