"""The hand-written log density (models.posterior_density) against the PyMC model it stands for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.blocking import DictToArrayBijection
from pymc.distributions.transforms import CholeskyCorrTransform

from em_reference import GaussianMixtureEM, MixtureParameters
from models.mixture import build_model, shared_data_values, value_point
from models.posterior_density import PosteriorDensity, correlation_index, value_names
from models.sampling import FIRST_COMPILE_NOTICE, DensityRecord

ROOT = Path(__file__).resolve().parents[1]

PRIORS = [
    ("default", {}),
    ("default", {"eta": 3.5, "mean_scale": 4.0, "sd_scale": 0.7}),
    ("gauss-wishart", {}),
    (
        "gauss-wishart",
        {
            "weight_concentration_prior": 0.2,
            "mean_precision_prior": 3.0,
            "degrees_of_freedom_prior": 6.5,
            "mean_prior": [0.5, -1.0, 2.0, 0.0],
        },
    ),
]
SHAPES = [(1, 1), (1, 3), (2, 2), (2, 3), (3, 4), (4, 2)]
"""(D, K) pairs: one dimension and one component included, and every spiral fill up to 4."""


def data(n_features: int, n_points: int = 60, seed: int = 0) -> np.ndarray:
    """Points (n, D) with columns of different scales and centres."""
    rng = np.random.default_rng(seed)
    scales = np.array([1.0, 3.0, 0.5, 2.0])[:n_features]
    centres = np.array([0.0, 1.0, -2.0, 5.0])[:n_features]
    return rng.normal(size=(n_points, n_features)) * scales + centres


def make_model(n_features: int, n_components: int, prior: str, settings: dict) -> pm.Model:
    """A build_model model of the given shape and prior (the mean prior cut to D entries)."""
    settings = dict(settings)
    if "mean_prior" in settings:
        settings["mean_prior"] = settings["mean_prior"][:n_features]
    return build_model(data(n_features), n_components, prior=prior, **settings)


def pymc_logp_dlogp(model: pm.Model):
    """PyMC's own log density and gradient of the model, built in Python mode (no compiler)."""
    with pytensor.config.change_flags(cxx=""):
        function = model.logp_dlogp_function(ravel_inputs=True, mode="FAST_COMPILE")
    function.set_extra_values({})
    return function


def random_points(model: pm.Model, count: int, seed: int) -> list[np.ndarray]:
    """Points (p,) scattered around the model's initial point in the unconstrained space."""
    rng = np.random.default_rng(seed)
    start = DictToArrayBijection.map(model.initial_point()).data
    return [start + rng.normal(scale=0.8, size=start.size) for _ in range(count)]


@pytest.mark.parametrize(("prior", "settings"), PRIORS)
@pytest.mark.parametrize(("n_features", "n_components"), SHAPES)
def test_value_and_gradient_are_pymcs(n_features, n_components, prior, settings):
    model = make_model(n_features, n_components, prior, settings)
    theirs = pymc_logp_dlogp(model)
    ours = PosteriorDensity(model)
    assert ours.names == value_names(prior == "gauss-wishart", n_features)
    for point in random_points(model, 4, seed=n_features * 10 + n_components):
        logp, gradient = theirs(point)
        our_logp, our_gradient = ours(point)
        assert our_gradient.shape == gradient.shape
        np.testing.assert_allclose(our_logp, logp, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(our_gradient, gradient, rtol=1e-10, atol=1e-9)


def test_gradient_is_the_derivative_of_the_value():
    # Independent of PyMC: central differences of our own log density.
    model = make_model(3, 3, "default", {})
    density = PosteriorDensity(model)
    point = random_points(model, 1, seed=5)[0]
    _, gradient = density(point)
    step = 1e-6
    numeric = [
        (density(point + step * unit)[0] - density(point - step * unit)[0]) / (2 * step)
        for unit in np.eye(point.size)
    ]
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("prior", "settings"), [PRIORS[0], PRIORS[3]])
@pytest.mark.parametrize("n_features", [1, 2, 3])
def test_recorded_variables_are_pymcs(n_features, prior, settings):
    model = make_model(n_features, 3, prior, settings)
    recorded = model.unobserved_value_vars
    with pytensor.config.change_flags(cxx=""):
        theirs = model.compile_fn(
            recorded,
            inputs=model.value_vars,
            point_fn=False,
            mode="FAST_COMPILE",
            on_unused_input="ignore",
        )
    record = DensityRecord(PosteriorDensity(model), [var.name for var in recorded])
    for point in random_points(model, 3, seed=n_features):
        values = DictToArrayBijection.rmap(
            DictToArrayBijection.map(model.initial_point())._replace(data=point)
        )
        for var, ours, expected in zip(
            recorded, record(*values.values()), theirs(*values.values()), strict=True
        ):
            np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-14, err_msg=var.name)


@pytest.mark.parametrize("prior", ["default", "gauss-wishart"])
def test_draws_at_once_are_the_draws_one_by_one(prior):
    model = make_model(3, 2, prior, {})
    density = PosteriorDensity(model)
    points = np.stack(random_points(model, 6, seed=3)).reshape(2, 3, -1)  # (chain, draw, p)
    together = density.constrained(points)
    for chain, draw in np.ndindex(2, 3):
        alone = density.constrained(points[chain, draw])
        assert alone.keys() == together.keys()
        for name, value in alone.items():
            np.testing.assert_allclose(together[name][chain, draw], value, rtol=1e-14, atol=0)


@pytest.mark.parametrize("prior", ["default", "gauss-wishart"])
@pytest.mark.parametrize("n_features", [1, 2, 3])
def test_raveled_point_is_pymcs_value_point(n_features, prior):
    X = data(n_features, n_points=200, seed=2)
    model = build_model(X, 3, prior=prior)
    estimate = GaussianMixtureEM(3, max_iter=1000, random_state=0).fit(X)
    density = PosteriorDensity(model)
    ours = density.raveled_point(estimate)
    theirs = DictToArrayBijection.map(value_point(model, estimate))
    assert ours.point_map_info == theirs.point_map_info
    np.testing.assert_allclose(ours.data, theirs.data, rtol=1e-12, atol=1e-12)
    back = density.constrained(ours.data)
    np.testing.assert_allclose(back["weights"], estimate.weights_, rtol=1e-12)
    np.testing.assert_allclose(back["covariances"], estimate.covariances_, rtol=1e-10)
    wrong = MixtureParameters.from_any(GaussianMixtureEM(2, max_iter=1000, random_state=0).fit(X))
    with pytest.raises(ValueError, match=r"2 components in .* but the model has 3"):
        density.raveled_point(wrong)


@pytest.mark.parametrize("n_features", [2, 3, 4, 5])
def test_correlation_index_is_pymcs_spiral_fill(n_features):
    size = n_features * (n_features - 1) // 2
    values = np.arange(1.0, size + 1.0)
    transform = CholeskyCorrTransform(n_features)
    with pytensor.config.change_flags(cxx=""):
        filled = transform._fill_triangular_spiral(pt.as_tensor(values), unit_diag=True).eval(
            mode="FAST_COMPILE"
        )
    index = correlation_index(n_features)
    rows, cols = np.tril_indices(n_features - 1)
    np.testing.assert_array_equal(values[index[rows + 1, cols]], filled[rows, cols])


def test_a_shared_data_model_is_read_again_after_set_data():
    model = build_model(data(2, seed=0), 3, shared_data=True)
    other = data(2, seed=1) * 2.0 + 1.0
    pm.set_data(shared_data_values(other), model=model)
    point = random_points(model, 1, seed=0)[0]
    logp, gradient = pymc_logp_dlogp(model)(point)
    ours = PosteriorDensity(model)
    np.testing.assert_array_equal(ours.X, other)
    np.testing.assert_allclose(ours(point)[0], logp, rtol=1e-12)
    np.testing.assert_allclose(ours(point)[1], gradient, rtol=1e-10, atol=1e-9)


def test_flat_and_foreign_models_are_refused():
    with pytest.raises(ValueError, match="not made by build_model, or has flat priors"):
        PosteriorDensity(build_model(data(2), 3, flat=True))
    with pm.Model() as foreign:
        pm.Normal("x")
    with pytest.raises(ValueError, match="not made by build_model"):
        PosteriorDensity(foreign)


SCALE_VALUES = {"default": "standard_deviations_log__", "gauss-wishart": "wishart_chi2_log__"}
"""Each prior's log-scale value variable: exp of a very negative entry underflows to 0."""


@pytest.mark.parametrize("prior", ["default", "gauss-wishart"])
@pytest.mark.parametrize("entries", ["all", "one"])
def test_a_scale_that_underflows_gives_minus_infinity_and_a_rejecting_status(prior, entries, capfd):
    # n == K (issue 23, case 11): NUTS reached log scales whose exp is 0, where the kernels
    # divided by zero; Numba raised ZeroDivisionError inside the C callback, printed a
    # traceback per call and left the log density unset (nutpie then failed or crashed).
    model = build_model(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), 3, prior=prior)
    density = PosteriorDensity(model)
    place, _ = density.layout[SCALE_VALUES[prior]]
    point = np.zeros(density.size)
    point[place if entries == "all" else place.start] = -1500.0
    gradient, value = np.empty(density.size), np.full((), 7.0)
    status = density.callback.ctypes(
        density.size,
        point.ctypes.data,
        gradient.ctypes.data,
        value.ctypes.data,
        density.table_address,
    )
    assert status in (3, 4)  # nutpie's codes for a point it rejects (a divergence), not a crash
    assert value == -np.inf
    assert density(point)[0] == -np.inf
    assert np.isfinite(density(np.zeros(density.size))[0])
    assert capfd.readouterr().err == ""


COLD_SCRIPT = """
import numpy as np
from models.mixture import build_model
from models.posterior_density import PosteriorDensity, kernels_cached
from models.sampling import announce_first_compile
from tests.test_posterior_density import data, random_points
print(kernels_cached())
for prior in ("default", "gauss-wishart"):
    announce_first_compile()
    model = build_model(data(2), 3, prior=prior)
    density = PosteriorDensity(model)
    for point in random_points(model, 3, seed=1):
        logp, gradient = density(point)
        print(float(logp).hex(), *[float(g).hex() for g in gradient])
print(kernels_cached())
"""


def test_a_first_compile_and_a_cached_run_give_the_same_bits(tmp_path):
    # Same seed, same numbers: a run that compiles the kernels (an empty Numba cache) and runs
    # that load them from the cache must agree to the last bit.
    environment = os.environ | {"NUMBA_CACHE_DIR": str(tmp_path)}
    done = [
        subprocess.run(
            [sys.executable, "-c", COLD_SCRIPT],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        )
        for _ in range(2)
    ]
    # The one-line notice: once in the compiling run (which compiles one kernel per model), never
    # in the cached one.
    assert [run.stderr.count(FIRST_COMPILE_NOTICE) for run in done] == [1, 0]
    runs = [run.stdout.split("\n") for run in done]
    assert runs[0][0] == "False" and runs[0][-2] == "True"  # compiled in the first run
    assert runs[1][0] == "True"  # loaded from the cache in the second
    assert runs[0][1:-2] == runs[1][1:-2]
    assert len(runs[0][1:-2]) == 6
