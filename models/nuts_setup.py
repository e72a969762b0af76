"""Setting NUTS up: one log density and gradient, a start per chain, the adapted mass matrix.

The log density is `models.posterior_density`'s for `build_model`'s models, PyTensor's compile of
the model's graph otherwise (`log_density_function`).

Chains start near the reference estimate (EM), drawn from the Laplace approximation there: the
normal distribution with the inverse of the negative Hessian of the log density as covariance,
in the unconstrained space, widened by `START_SCALE`. PyMC's own start, the reference plus
U(-1, 1) jitter, lands far outside the posterior once there are thousands of points (its sds
shrink like 1/sqrt(n)), and a dense mass matrix adapted over that transient is a poor one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import cloudpickle
import numpy as np
import pymc as pm
import pytensor
from pymc.blocking import DictToArrayBijection, RaveledVars
from pymc.pytensorf import resolve_backend_compile_kwargs
from pymc.step_methods.hmc import quadpotential

from em_reference import MixtureParameters
from models import numba_products  # noqa: F401  (registers Numba's np.dot for matrix products)
from models.mixture import model_prior, value_point
from models.posterior_density import PosteriorDensity

MASS_MATRICES = ("full", "diag")
"""The mass matrices NUTS can adapt while tuning: dense ("full") or diagonal ("diag")."""

DENSE_MAX_SIZE = 200
"""Most free parameters for the dense defaults: mass matrix and Laplace starts (K=3, D=2: 17).

The dense mass matrix gives a mixture's NUTS several times the ESS per second of a diagonal one
(benchmarks/README.md), because weights, means and covariance factors are correlated a posteriori.
PyMC refactors the dense matrix at every tuning step (cubic in the size) and the Hessian takes
2 gradients per parameter, so beyond this size the defaults are the diagonal matrix and PyMC's
jitter.
"""

START_SCALE = 2.0
"""Laplace starts are drawn with this many times the approximation's standard deviations, so
that chains start overdispersed and R-hat can still tell if they have not mixed."""

HESSIAN_STEP = 1e-5
"""Step of the central differences of the gradient that give the Hessian."""

START_TRIES = 10
"""Draws tried per chain before giving up on finding a start with finite log density."""

EXACT_FLAGS = {"numba__fastmath": False}
"""PyTensor flags for every function NUTS runs, so that the same seed gives the same draws.

With Numba's fastmath flags (PyTensor's default) LLVM may reassociate sums and fuse
multiply-adds differently when it compiles a function together with freshly compiled callees
than when it links callees loaded from the cache: the log density of a first (compiling) run
then differs by one ulp at about 1 % of points from a later run's, and NUTS's accept decisions
flip now and then, so the chains part. Without fastmath both are bit-identical.
"""

Gradient = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class NutsRun:
    """What one NUTS run is asked for, checked: both samplers take it.

    chains of `draws` draws after `tune` tuning steps, `cores` of them at once, seeded by
    random_seed; the mass matrix to adapt (the sampler's own names) and the target acceptance.
    """

    draws: int
    tune: int
    chains: int
    cores: int
    random_seed: int
    target_accept: float
    mass_matrix: str
    progressbar: bool


def exact_numerics() -> AbstractContextManager:
    """Compile PyTensor functions inside this context with `EXACT_FLAGS`."""
    return pytensor.config.change_flags(**EXACT_FLAGS)


class ExactNUTS(pm.NUTS):
    """PyMC's NUTS whose pickled copies are relinked under `EXACT_FLAGS` where they are loaded.

    `pm.sample` sends each chain process a pickled step; unpickling a PyTensor function links
    it again with that process's PyTensor flags, which would bring fastmath back.
    """

    def __reduce__(self) -> tuple[Callable[[bytes], ExactNUTS], tuple[bytes]]:
        return _load_exact_step, (cloudpickle.dumps(self.__dict__, protocol=-1),)


def _load_exact_step(state: bytes) -> ExactNUTS:
    """An `ExactNUTS` from its pickled attributes, its functions linked under `EXACT_FLAGS`."""
    with exact_numerics():
        attributes = cloudpickle.loads(state)
    step = object.__new__(ExactNUTS)  # BlockedStep.__new__ wants a model context
    step.__dict__.update(attributes)
    return step


def choose_mass_matrix(model: pm.Model, mass_matrix: str | None) -> str:
    """The mass matrix to adapt: mass_matrix itself, or the default for the model's size."""
    if mass_matrix is None:
        return "full" if free_size(model) <= DENSE_MAX_SIZE else "diag"
    if mass_matrix not in MASS_MATRICES:
        raise ValueError(f"mass_matrix must be one of {MASS_MATRICES} or None, got {mass_matrix!r}")
    return mass_matrix


def free_size(model: pm.Model) -> int:
    """Number of scalars NUTS moves: the size of all value variables (unconstrained)."""
    shapes = model.eval_rv_shapes()
    return sum(int(np.prod(shapes[value.name])) for value in model.value_vars)


def nuts_step(
    model: pm.Model,
    reference: MixtureParameters,
    chain_seeds: Sequence[int],
    mass_matrix: str,
    backend: str | None,
    target_accept: float,
) -> tuple[list[dict[str, np.ndarray]], pm.NUTS]:
    """A start per chain (one per seed) and the NUTS step, logp and gradient built once.

    The step is what `pymc.sampling.mcmc.init_nuts(init="adapt_full" or "adapt_diag",
    initvals=starts)` builds, rebuilt here from the same PyMC internals (`DictToArrayBijection`,
    `quadpotential`) so that the function evaluated for the Laplace starts is the one NUTS uses
    (`log_density_function(model, backend)`); tests/test_nuts_setup.py checks it against
    `init_nuts` itself.
    """
    logp_dlogp = log_density_function(model, backend)
    if isinstance(logp_dlogp, DensityGradient):
        centre = logp_dlogp.density.raveled_point(reference)
    else:
        centre = DictToArrayBijection.map(value_point(model, reference))
    return nuts_step_at(model, logp_dlogp, centre, chain_seeds, mass_matrix, target_accept)


def log_density_function(model: pm.Model, backend: str | None) -> Any:
    """The log density and gradient of the raveled value variables (p,) that NUTS evaluates.

    With backend None, a `build_model` model gets the hand-written density of
    `models.posterior_density` (nothing for PyTensor to compile); any other model, or a named
    backend ("numba", "c", ...), PyTensor's compile of the model's graph (`compile_logp_dlogp`).
    """
    if backend is None and model_prior(model) is not None:
        return DensityGradient(PosteriorDensity(model))
    return compile_logp_dlogp(model, resolve_backend_compile_kwargs(backend, None))


class DensityGradient:
    """A `PosteriorDensity` dressed as the PyMC `ValueGradFunction` NUTS takes as logp_dlogp_func.

    PyMC's leapfrog integrator calls `_pytensor_function(point)` directly, and its step asks for
    `_extra_vars_shared`, `_raveled_inputs` and `dtype`; a build_model model has no extra
    variables to set.
    """

    _raveled_inputs = True
    dtype = "float64"

    def __init__(self, density: PosteriorDensity) -> None:
        self.density = density
        self._pytensor_function = density
        self._extra_vars_shared: dict[str, Any] = {}
        self.trust_input = True

    def __call__(self, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The log density and its gradient (p,) at point (p,)."""
        return self.density(point)

    def set_extra_values(self, values: dict[str, Any]) -> None:
        """Nothing to set: the model has no variables outside the raveled point."""


def compile_logp_dlogp(model: pm.Model, compile_kwargs: dict[str, Any]) -> Any:
    """The model's compiled log density and gradient of the raveled value variables (p,).

    Compiled under `EXACT_FLAGS`.
    """
    with exact_numerics():
        logp_dlogp = model.logp_dlogp_function(ravel_inputs=True, **compile_kwargs)
    logp_dlogp.trust_input = True
    logp_dlogp.set_extra_values({})
    return logp_dlogp


def nuts_step_at(
    model: pm.Model,
    logp_dlogp: Any,
    centre: RaveledVars,
    chain_seeds: Sequence[int],
    mass_matrix: str,
    target_accept: float,
) -> tuple[list[dict[str, np.ndarray]], pm.NUTS]:
    """`nuts_step` from an already compiled logp_dlogp and the raveled reference point centre.

    Nothing is compiled here, so a model whose data are swapped in (`pm.set_data`) reuses one
    compiled function for every data set.
    """
    spread = None
    if centre.data.size <= DENSE_MAX_SIZE:
        spread = laplace_cholesky(lambda x: logp_dlogp(x)[1], centre.data)
    rngs = [np.random.default_rng(seed) for seed in chain_seeds]
    starts = [chain_start(lambda x: logp_dlogp(x)[0], centre, spread, rng) for rng in rngs]
    mean = np.mean([DictToArrayBijection.map(start).data for start in starts], axis=0)
    size = mean.size
    with warnings.catch_warnings():
        # PyMC flags its dense adaptation as experimental; the tests check its draws converge.
        warnings.filterwarnings("ignore", "QuadPotentialFullAdapt is an experimental feature")
        if mass_matrix == "full":
            potential = quadpotential.QuadPotentialFullAdapt(
                size, mean, np.eye(size), 10, rng=chain_seeds[0]
            )
        else:
            potential = quadpotential.QuadPotentialDiagAdapt(
                size, mean, np.ones(size), 10, rng=chain_seeds[0]
            )
    step = ExactNUTS(
        model=model,
        potential=potential,
        logp_dlogp_func=logp_dlogp,
        initial_point=starts[0],
        rng=chain_seeds[0],
        target_accept=target_accept,
    )
    return starts, step


def laplace_cholesky(gradient: Gradient, centre: np.ndarray) -> np.ndarray | None:
    """Cholesky factor (p, p) of the Laplace covariance at centre (p,), or None if there is none.

    The covariance is the inverse of the negative Hessian of the log density, which central
    differences of the gradient give; None when that matrix is not positive definite (the
    centre is not at a maximum) or not finite.
    """
    size = centre.size
    hessian = np.empty((size, size))
    for column, offset in enumerate(np.eye(size) * HESSIAN_STEP):
        hessian[:, column] = (gradient(centre + offset) - gradient(centre - offset)) / (
            2 * HESSIAN_STEP
        )
    precision = -(hessian + hessian.T) / 2
    if not np.all(np.isfinite(precision)):
        return None
    try:
        np.linalg.cholesky(precision)  # raises unless positive definite
        return np.linalg.cholesky(np.linalg.inv(precision))
    except np.linalg.LinAlgError:
        return None


def chain_start(
    log_density: Callable[[np.ndarray], float],
    centre: RaveledVars,
    spread: np.ndarray | None,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """A start (value variables by name) where the log density is finite (see `start_point`)."""
    point = start_point(log_density, centre.data, spread, rng)
    return DictToArrayBijection.rmap(RaveledVars(point, centre.point_map_info))


def start_point(
    log_density: Callable[[np.ndarray], float],
    centre: np.ndarray,
    spread: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """A raveled start (p,) where the log density is finite.

    The start is centre (p,) plus START_SCALE x a Laplace draw (spread is the covariance's
    Cholesky factor (p, p)), or plus U(-1, 1) jitter, as PyMC does, when spread is None.
    """
    for _ in range(START_TRIES):
        if spread is None:
            offset = rng.uniform(-1.0, 1.0, centre.size)
        else:
            offset = START_SCALE * (spread @ rng.standard_normal(centre.size))
        point = centre + offset
        if np.isfinite(log_density(point)):
            return point
    raise ValueError(
        f"no start with a finite log density found in {START_TRIES} draws around the reference "
        "estimate; check that it is a valid estimate for this model"
    )
