"""NUTS by nutpie over the hand-written density (`models.compiled_nuts`): the default sampler."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from arviz_stats import ess, mcse

from em_reference import MixtureParameters
from models import build_model, sample_posterior
from models.compiled_nuts import STAT_NAMES
from models.posterior_density import PosteriorDensity

pytestmark = pytest.mark.sampling

COMPARED = ("weights", "means", "covariances")


def short_run(model, reference, **options):
    """A short NUTS run of model (2 chains x 300 draws), labelled like reference."""
    settings = dict(draws=300, tune=300, chains=2, random_seed=3, reference=reference)
    return sample_posterior(model, progressbar=False, **{**settings, **options})


def test_the_default_sampler_is_nutpie_over_the_density(seed_posterior):
    attrs = seed_posterior.posterior.attrs
    assert (attrs["sampler"], attrs["backend"], attrs["mass_matrix"]) == (
        "nutpie",
        "posterior_density",
        "low-rank",
    )
    stats = seed_posterior.sample_stats
    assert set(STAT_NAMES.values()) <= set(stats.data_vars)
    assert stats["diverging"].dtype == bool
    assert stats["lp"].shape == (4, 1000)
    assert set(seed_posterior.posterior.data_vars) == {
        "weights",
        "means",
        "standard_deviations",
        "correlation_cholesky",
        "covariances",
    }


def test_each_draws_lp_is_the_density_at_its_recorded_variables(seed_data, seed_posterior):
    """The recorded lp, recomputed from the recorded weights, means and covariances.

    Checks that the draws were turned into the model's variables (and relabelled) without
    losing their correspondence with the points nutpie sampled.
    """
    density = PosteriorDensity(build_model(seed_data[0], n_components=3))
    posterior = seed_posterior.posterior
    for chain, draw in [(0, 0), (1, 517), (3, 999)]:
        at = posterior.isel(chain=chain, draw=draw)
        parameters = MixtureParameters(
            at["weights"].values, at["means"].values, at["covariances"].values
        )
        point = density.raveled_point(parameters).data
        expected = float(seed_posterior.sample_stats["lp"].isel(chain=chain, draw=draw))
        # the log density is invariant to the components' order, so relabelling is allowed
        assert float(density(point)[0]) == pytest.approx(expected, rel=1e-10)


def test_the_same_seed_gives_the_same_draws_whatever_the_cores(seed_data, seed_em):
    model = build_model(seed_data[0], n_components=3)
    one = short_run(model, seed_em, cores=1)
    two = short_run(model, seed_em, cores=2)
    other = short_run(model, seed_em, cores=2, random_seed=4)
    for name in COMPARED:
        assert np.array_equal(one.posterior[name].values, two.posterior[name].values), name
    assert not np.array_equal(one.posterior["means"].values, other.posterior["means"].values)


def test_nutpie_and_pymc_sample_the_same_posterior(seed_data, seed_em):
    """Posterior means of every scalar agree within 4.5 combined Monte Carlo standard errors.

    Same model, same density, two NUTS implementations: a gap beyond Monte Carlo error would
    mean one of them samples something else (for 33 scalars at 4.5 MCSE a false alarm has
    probability about 2e-4).
    """
    model = build_model(seed_data[0], n_components=3)
    nutpie = short_run(model, seed_em, draws=1000, tune=500, chains=2)
    pymc = short_run(model, seed_em, draws=1000, tune=500, chains=2, sampler="pymc")
    assert pymc.posterior.attrs["sampler"] == "pymc"
    for name in COMPARED:
        gap = nutpie.posterior[name].mean(("chain", "draw")) - pymc.posterior[name].mean(
            ("chain", "draw")
        )
        error = np.sqrt(_mcse(nutpie, name) ** 2 + _mcse(pymc, name) ** 2)
        z = np.abs(gap / error).values
        assert np.nanmax(z) < 4.5, (name, z)
    for tree in (nutpie, pymc):
        assert float(ess(tree.posterior["means"], method="bulk").min()) > 200


def _mcse(tree: xr.DataTree, name: str) -> xr.DataArray:
    """Monte Carlo standard error of the posterior mean of every scalar of a variable."""
    values = tree.posterior[name]
    if name == "covariances":  # the two off-diagonal entries are one scalar: keep the lower
        values = values.where(values["dim"] >= values["dim_bis"])
    return mcse(values, method="mean")


def test_sampler_choices_are_checked(seed_data, seed_em):
    model = build_model(seed_data[0], n_components=3)
    with pytest.raises(ValueError, match="sampler must be one of"):
        short_run(model, seed_em, sampler="stan")
    with pytest.raises(ValueError, match="use sampler 'pymc' for a PyTensor backend"):
        short_run(model, seed_em, sampler="nutpie", backend="numba")
    with pytest.raises(ValueError, match="with sampler 'nutpie'"):
        short_run(model, seed_em, mass_matrix="full")
    flat = build_model(seed_data[0], n_components=3, flat=True)
    with pytest.raises(ValueError, match="use sampler 'pymc' for a PyTensor backend or another"):
        short_run(flat, seed_em, sampler="nutpie")


def test_the_diagonal_mass_matrix_on_request(seed_data, seed_em):
    model = build_model(seed_data[0], n_components=3)
    idata = short_run(model, seed_em, mass_matrix="diag", predictions=False)
    assert idata.posterior.attrs["mass_matrix"] == "diag"
    assert set(idata.children) == {"posterior", "sample_stats", "observed_data"}
    assert int(idata.sample_stats["diverging"].sum()) == 0
    assert float(ess(idata.posterior["means"], method="bulk").min()) > 100
