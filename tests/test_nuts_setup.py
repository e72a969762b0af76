"""NUTS set-up: Laplace covariance, chain starts and the mass-matrix choice (no sampling)."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pytensor
import pytest
from pymc.blocking import DictToArrayBijection, RaveledVars

from em_reference import GaussianMixtureEM, sample_mixture, seed7907
from models import build_model
from models.nuts_setup import (
    START_SCALE,
    ExactNUTS,
    chain_start,
    choose_mass_matrix,
    free_size,
    laplace_cholesky,
    nuts_step,
)


def gaussian_gradient(mean: np.ndarray, covariance: np.ndarray):
    """Gradient of log N(x | mean, covariance)."""
    precision = np.linalg.inv(covariance)
    return lambda x: -precision @ (x - mean)


def test_laplace_covariance_of_a_gaussian_is_its_covariance():
    rng = np.random.default_rng(3)
    factor = rng.normal(size=(5, 5))
    covariance = factor @ factor.T + 5 * np.eye(5)
    mean = rng.normal(size=5)
    lower = laplace_cholesky(gaussian_gradient(mean, covariance), mean)
    np.testing.assert_allclose(lower @ lower.T, covariance, rtol=1e-6)
    assert np.allclose(lower, np.tril(lower))


def test_laplace_covariance_is_none_away_from_a_maximum():
    def saddle(x):  # log density x0^2 - x1^2: a minimum along x0
        return np.array([2 * x[0], -2 * x[1]])

    assert laplace_cholesky(saddle, np.zeros(2)) is None
    assert laplace_cholesky(lambda x: np.full(2, np.nan), np.zeros(2)) is None


def centre_of(values: np.ndarray) -> RaveledVars:
    """A raveled point with one variable "x"."""
    return DictToArrayBijection.map({"x": values})


def test_a_start_is_a_scaled_laplace_draw_or_a_uniform_jitter():
    centre = centre_of(np.zeros(3))
    spread = np.diag([1.0, 2.0, 3.0])
    draws = np.array(
        [
            chain_start(lambda x: 0.0, centre, spread, np.random.default_rng(seed))["x"]
            for seed in range(2000)
        ]
    )
    np.testing.assert_allclose(draws.std(axis=0), START_SCALE * np.diag(spread), rtol=0.1)
    jitter = chain_start(lambda x: 0.0, centre, None, np.random.default_rng(0))["x"]
    assert np.all(np.abs(jitter) <= 1.0)
    again = chain_start(lambda x: 0.0, centre, spread, np.random.default_rng(7))["x"]
    np.testing.assert_array_equal(again, draws[7])


def test_a_start_avoids_points_of_zero_density_and_says_when_it_cannot():
    centre = centre_of(np.zeros(1))

    def positive_only(x):
        return 0.0 if x[0] > 0 else -np.inf

    start = chain_start(positive_only, centre, np.eye(1), np.random.default_rng(0))
    assert start["x"][0] > 0
    with pytest.raises(ValueError, match="no start with a finite log density"):
        chain_start(lambda x: -np.inf, centre, np.eye(1), np.random.default_rng(0))


def test_seed7907_starts_are_finite_distinct_and_near_the_em_estimate(seed_data, seed_em):
    model = build_model(seed_data[0], n_components=3)
    starts, step = nuts_step(model, seed_em.parameters_, [1, 2, 3], "full", None, 0.8)
    assert len(starts) == 3 and free_size(model) == 17
    logp = model.compile_logp()
    for start in starts:
        assert np.isfinite(logp(start))
        means = start["means"]
        # posterior sds of the means are ~0.1: a start 2 sds out is well within 1 of EM's
        assert np.max(np.abs(means - seed_em.means_)) < 1.0
    assert not np.array_equal(starts[0]["means"], starts[1]["means"])
    again, _ = nuts_step(model, seed_em.parameters_, [1, 2, 3], "full", None, 0.8)
    np.testing.assert_array_equal(again[2]["means"], starts[2]["means"])
    assert type(step.potential).__name__ == "QuadPotentialFullAdapt"


def test_large_data_starts_stay_inside_the_narrow_posterior():
    true = seed7907.TRUE
    X, _ = sample_mixture(20_000, true.weights, true.means, true.covariances, seed=1)
    em = GaussianMixtureEM(3, init=seed7907.INITIAL).fit(X)
    model = build_model(X, n_components=3)
    starts, step = nuts_step(model, em.parameters_, [5], "diag", None, 0.8)
    # posterior sds of the means are ~0.02 here; PyMC's U(-1, 1) jitter would move them by ~0.5
    assert np.max(np.abs(starts[0]["means"] - em.means_)) < 0.2
    assert type(step.potential).__name__ == "QuadPotentialDiagAdapt"


def test_default_mass_matrix_is_dense_for_small_models_and_diagonal_for_large(seed_data):
    assert choose_mass_matrix(build_model(seed_data[0], n_components=3), None) == "full"
    X = np.random.default_rng(0).normal(size=(50, 16))
    large = build_model(X, n_components=8)
    assert free_size(large) == 7 + 128 + 128 + 8 * 120
    assert choose_mass_matrix(large, None) == "diag"
    assert choose_mass_matrix(large, "full") == "full"
    with pytest.raises(ValueError, match="mass_matrix must be one of"):
        choose_mass_matrix(large, "dense")


def _state(obj, prefix: str = "") -> dict:
    """An object's numbers and settings by dotted name, nested objects opened, rngs left out."""
    state = {}
    for key, value in vars(obj).items():
        if isinstance(value, np.random.Generator):
            continue
        if hasattr(value, "__dict__") and not isinstance(value, type):
            state |= _state(value, f"{prefix}{key}.")
        else:
            state[prefix + key] = value
    return state


def test_the_step_is_pymc_init_nuts_adapt_full_from_our_starts(seed_data, seed_em):
    # nuts_step rebuilds init_nuts's "adapt_full" branch from PyMC internals so that the logp
    # and gradient compile once for the Laplace starts and NUTS alike. If PyMC changes that
    # branch (the potential's class, mean, initial covariance, adaptation window, or what the
    # step keeps), this test fails and nuts_step must follow.
    from pymc.sampling.mcmc import init_nuts

    model = build_model(seed_data[0], n_components=3)
    starts, ours = nuts_step(model, seed_em.parameters_, [1, 2], "full", None, 0.8)
    _, theirs = init_nuts(
        init="adapt_full",
        chains=2,
        initvals=starts,
        model=model,
        random_seed=[1, 2],
        progressbar=False,
        target_accept=0.8,
    )
    assert type(ours.potential) is type(theirs.potential)
    mine, pymc_state = _state(ours.potential), _state(theirs.potential)
    assert mine.keys() == pymc_state.keys()
    for key, value in pymc_state.items():
        if isinstance(value, np.ndarray | float):  # PyMC averages the starts repeated: last bits
            np.testing.assert_allclose(mine[key], value, rtol=1e-12, err_msg=key)
        else:
            assert mine[key] == value, key
    for name in ("target_accept", "max_treedepth", "step_size", "Emax", "adapt_step_size"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert vars(ours.step_adapt) == vars(theirs.step_adapt)


def _fastmath(step) -> object:
    """The fastmath option the step's compiled logp+gradient was linked with."""
    return step._logp_dlogp_func._pytensor_function.vm.jit_fn.targetoptions["fastmath"]


def test_the_step_and_each_chain_process_copy_compile_without_fastmath(seed_data, seed_em):
    # pm.sample pickles the step for each chain process, where unpickling links the function
    # again under that process's flags; fastmath there would make a first (compiling) run's
    # draws differ from a cached run's. The copy here is loaded with fastmath on by default.
    model = build_model(seed_data[0], n_components=3)
    _, step = nuts_step(model, seed_em.parameters_, [1, 2], "full", "numba", 0.8)
    with pytensor.config.change_flags(numba__fastmath=True):
        copy = cloudpickle.loads(cloudpickle.dumps(step, protocol=-1))
    assert isinstance(copy, ExactNUTS)
    assert _fastmath(step) is False and _fastmath(copy) is False
    point = DictToArrayBijection.map(model.initial_point()).data
    logp, gradient = step._logp_dlogp_func(point)
    copy_logp, copy_gradient = copy._logp_dlogp_func(point)
    assert logp == copy_logp
    np.testing.assert_array_equal(gradient, copy_gradient)
    assert pytensor.config.numba__fastmath is True  # the default is left as it was
