"""NUTS efficiency: min bulk ESS over weights, means and covariances per second.

Each run happens in a fresh subprocess (`python -m benchmarks.nuts FORMULATION ...` prints one
JSON line), so compilation is measured as a user meets it and no run inherits another's state;
the same worker runs in another environment to try other NUTS samplers. Every formulation starts
its chains at the EM estimate (one mode, no label switching), with the same draws, tuning, chains
and seed. "Sampling" seconds are PyMC's own `sampling_time` (tuning + draws); "total" seconds are
the wall time of building the model and `pm.sample`, compilation included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from em_reference import GaussianMixtureEM, MixtureParameters, sample_mixture, seed7907

FORMULATIONS = ("ours", "tutorial", "vectorised")
MASS_MATRICES = {
    "default": ("low-rank", "diag"),
    "default-pymc": ("full", "diag"),
    "pymc": ("diag", "full"),
    "nutpie": ("diag", "low-rank"),
    "numpyro": ("diag", "full"),
}
"""Mass matrices each sampler can adapt; the first is its default (the project's, for "default").

"default" is the project's `models.sample_posterior` (nutpie over the hand-written density),
"default-pymc" the same with `sampler="pymc"` (PyMC's NUTS over it, or over PyTensor's compile
of the model with a backend).

"full" is a dense matrix, "low-rank" nutpie's diagonal plus low-rank update from the gradients."""
PROJECT_SAMPLERS = {"default": None, "default-pymc": "pymc"}
"""The rows that sample with `models.sample_posterior`, and the `sampler` each asks it for."""
SUMMARY_VARIABLES = ("weights", "means", "covariances")
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class NutsSettings:
    """What every formulation is asked to do."""

    draws: int = 1000
    tune: int = 1000
    chains: int = 2
    seed: int = 7907
    n_points: int = 500


def dataset(n_points: int) -> np.ndarray:
    """n points from the seed-7907 mixture with the seed LCG (n = 500 is seed-7907 itself)."""
    true = seed7907.TRUE
    X, _ = sample_mixture(n_points, true.weights, true.means, true.covariances, seed=seed7907.SEED)
    return X


def em_estimate(X: np.ndarray) -> MixtureParameters:
    """EM from the seed program's start: where every chain starts."""
    return GaussianMixtureEM(3, init=seed7907.INITIAL).fit(X).parameters_


def build(formulation: str, X: np.ndarray) -> tuple[Any, Callable[[MixtureParameters], dict]]:
    """The model of one formulation and its initial-values function."""
    from benchmarks import nuts_models

    if formulation == "ours":
        from models import mixture

        return mixture.build_model(X, 3), mixture.parameter_point
    if formulation == "tutorial":
        return nuts_models.tutorial_model(X, 3)
    if formulation == "vectorised":
        return nuts_models.vectorised_model(X, 3)
    raise ValueError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")


def min_bulk_ess(posterior: Any) -> float:
    """Smallest bulk ESS over every scalar of weights, means and covariances."""
    import arviz_stats

    smallest = np.inf
    for name in SUMMARY_VARIABLES:
        values = np.asarray(posterior[name].values)
        scalars = values.reshape(values.shape[0], values.shape[1], -1)
        ess = arviz_stats.ess(scalars, method="bulk", chain_axis=0, draw_axis=1)
        smallest = min(smallest, float(np.nanmin(ess)))
    return smallest


def gradient_seconds(
    model: Any, point: dict[str, np.ndarray], density: bool = False, calls: int = 50
) -> float:
    """Median wall time of one logp-and-gradient evaluation at point: the hand-written density
    of `models.posterior_density` if density, else PyMC's compile (Numba by default).

    point gives the free variables untransformed, as the initial-values functions do. The
    function is built after the timed sampling run (a compile-cache hit).
    Not `timing.interleaved`: its garbage collection before every call leaves the caches cold
    (about 380 us per call instead of 46 us on seed-7907).
    """
    from pymc.blocking import DictToArrayBijection
    from pymc.initial_point import make_initial_point_fn

    values = make_initial_point_fn(model=model, overrides=point, jitter_rvs=set())(0)
    position = DictToArrayBijection.map({v.name: values[v.name] for v in model.value_vars}).data
    if density:
        from models.posterior_density import PosteriorDensity

        logp_dlogp = PosteriorDensity(model)
    else:
        logp_dlogp = model.logp_dlogp_function(ravel_inputs=True)
        logp_dlogp.set_extra_values({})
    logp_dlogp(position)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        logp_dlogp(position)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def sample_stat_total(tree: Any, name: str) -> float | None:
    """Sum of one sample statistic over chains and draws, if the sampler records it."""
    try:
        stats = tree["sample_stats"]
        return float(np.asarray(stats[name].values).sum()) if name in stats else None
    except KeyError:
        return None


def run_formulation(
    formulation: str,
    sampler: str,
    settings: NutsSettings,
    backend: str | None = None,
    mass_matrix: str | None = None,
) -> dict[str, Any]:
    """Build, sample and summarise one formulation; plain values for JSON.

    sampler "default" is the project's own path, `models.sample_posterior` (ours only); the
    others call `pm.sample(nuts_sampler=...)`. backend None is the path's own default;
    mass_matrix None is the sampler's default (see `MASS_MATRICES`).
    """
    mass_matrix = mass_matrix or MASS_MATRICES[sampler][0]
    if mass_matrix not in MASS_MATRICES[sampler]:
        raise ValueError(f"{sampler} adapts a mass matrix in {MASS_MATRICES[sampler]}")
    X = dataset(settings.n_points)
    start_params = em_estimate(X)
    begin = time.perf_counter()
    model, initvals = build(formulation, X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if sampler in PROJECT_SAMPLERS:
            tree = _sample_default(
                model, start_params, settings, backend, mass_matrix, PROJECT_SAMPLERS[sampler]
            )
        else:
            start = initvals(start_params)
            tree = _sample_with(model, start, sampler, settings, backend, mass_matrix)
    total = time.perf_counter() - begin
    from models.sampling import DENSITY_BACKEND

    posterior = tree["posterior"]
    attrs = posterior.attrs
    density = attrs.get("backend") == DENSITY_BACKEND
    gradient = gradient_seconds(model, initvals(start_params), density)
    sampling = float(attrs.get("sampling_seconds", attrs.get("sampling_time", np.nan)))
    ess = min_bulk_ess(posterior)
    return {
        "formulation": formulation,
        "sampler": sampler,
        "backend": attrs.get("backend", backend) or "pytensor default",
        "mass_matrix": mass_matrix,
        "settings": asdict(settings),
        "min_bulk_ess": ess,
        "sampling_seconds": sampling,
        "total_seconds": total,
        "ess_per_sampling_second": ess / sampling,
        "ess_per_total_second": ess / total,
        "gradient_seconds": gradient,
        "gradient_evaluations": sample_stat_total(tree, "n_steps"),
        "divergences": sample_stat_total(tree, "diverging"),
    }


def _sample_default(
    model: Any,
    reference: MixtureParameters,
    settings: NutsSettings,
    backend: str | None,
    mass_matrix: str,
    sampler: str | None,
) -> Any:
    """models.sample_posterior with the benchmark's draws, chains and seed."""
    from models import sample_posterior

    options = {} if backend is None else {"backend": backend}
    return sample_posterior(
        model,
        sampler=sampler,
        mass_matrix=mass_matrix,
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        random_seed=settings.seed,
        reference=reference,
        progressbar=False,
        cores=settings.chains,
        predictions=False,  # like pm.sample in the other rows: draws and sample stats only
        **options,
    )


SAMPLER_OPTIONS = {
    ("pymc", "full"): {"init": "jitter+adapt_full"},
    ("nutpie", "low-rank"): {"nuts_sampler_kwargs": {"low_rank_modified_mass_matrix": True}},
    ("numpyro", "full"): {"nuts_sampler_kwargs": {"dense_mass": True}},
}
"""pm.sample's options asking each sampler for a mass matrix other than its default."""


def _sample_with(
    model: Any,
    initvals: dict,
    sampler: str,
    settings: NutsSettings,
    backend: str | None,
    mass_matrix: str,
) -> Any:
    """pm.sample with one NUTS implementation, every chain starting at initvals."""
    import pymc as pm
    from pymc.pytensorf import resolve_backend_compile_kwargs

    compile_kwargs = resolve_backend_compile_kwargs(backend, None) if sampler == "pymc" else None
    options = SAMPLER_OPTIONS.get((sampler, mass_matrix), {})
    with model:
        return pm.sample(
            draws=settings.draws,
            tune=settings.tune,
            chains=settings.chains,
            cores=settings.chains,
            random_seed=settings.seed,
            initvals=initvals,
            nuts_sampler=sampler,
            progressbar=False,
            compute_convergence_checks=False,
            compile_kwargs=compile_kwargs,
            **options,
        )


def run_in_subprocess(
    formulation: str,
    sampler: str,
    settings: NutsSettings,
    backend: str | None = None,
    mass_matrix: str | None = None,
    python: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 1500,
) -> dict[str, Any]:
    """run_formulation in a fresh Python process; on failure, a row that records the error."""
    command = [*(python or [sys.executable]), "-m", "benchmarks.nuts", formulation, sampler]
    command += [f"--{key.replace('_', '-')}={value}" for key, value in asdict(settings).items()]
    command += [] if backend is None else [f"--backend={backend}"]
    command += [] if mass_matrix is None else [f"--mass-matrix={mass_matrix}"]
    failed = {
        "formulation": formulation,
        "sampler": sampler,
        "backend": backend,
        "mass_matrix": mass_matrix,
    }
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=environment, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {**failed, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {**failed, "error": tail[:300]}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    """Worker entry point: run one formulation with one sampler and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("formulation", choices=FORMULATIONS)
    parser.add_argument("sampler", choices=(*PROJECT_SAMPLERS, "pymc", "nutpie", "numpyro"))
    parser.add_argument("--backend", default=None, help="PyTensor backend: c or numba")
    parser.add_argument("--mass-matrix", default=None, help="full, diag or low-rank")
    for key, value in asdict(NutsSettings()).items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    args = vars(parser.parse_args(argv))
    settings = NutsSettings(**{key: args[key] for key in asdict(NutsSettings())})
    row = run_formulation(
        args["formulation"], args["sampler"], settings, args["backend"], args["mass_matrix"]
    )
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
