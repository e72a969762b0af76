"""Shared fixtures and helpers: the seed-7907 data, its EM fit (once a session), random mixtures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from em_reference import GaussianMixtureEM, VariationalGaussianMixture, seed7907

HASKELL_CSV = Path(__file__).parent / "data" / "seed7907_haskell.csv"


def random_mixture(
    rng: np.random.Generator, n_components: int, n_features: int, spread: float = 6.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (K,), means (K, D), covariances (K, D, D) drawn at random."""
    weights = rng.dirichlet(np.full(n_components, 3.0))
    means = rng.normal(scale=spread, size=(n_components, n_features))
    factors = rng.normal(size=(n_components, n_features, n_features))
    covariances = factors @ factors.transpose(0, 2, 1) + 0.5 * np.eye(n_features)
    return weights, means, covariances


@pytest.fixture(scope="session")
def seed_data() -> tuple[np.ndarray, np.ndarray]:
    """The seed-7907 points (500, 2) and true labels (500,)."""
    return seed7907.load()


@pytest.fixture(scope="session")
def seed_em(seed_data) -> GaussianMixtureEM:
    """EM fitted on seed-7907 from the seed program's initial values."""
    X, _ = seed_data
    return GaussianMixtureEM(seed7907.N_COMPONENTS, init=seed7907.INITIAL).fit(X)


def q_moments(fit: VariationalGaussianMixture) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mean and SD under q of weights (K,), means (K, D) and covariances (K, D, D).

    Dirichlet(alpha) weights; mu_k's marginal is a Student t with covariance
    W_k^-1 / (beta_k (nu_k - D - 1)); Sigma_k ~ inverse Wishart(Psi = W_k^-1, nu_k), with
    mean Psi / (nu - D - 1) and Var(Sigma_ij) = ((nu - D + 1) Psi_ij^2 + (nu - D - 1) Psi_ii
    Psi_jj) / ((nu - D) (nu - D - 1)^2 (nu - D - 3)).
    """
    alpha, beta, nu = fit.weight_concentration_, fit.mean_precision_, fit.degrees_of_freedom_
    d = fit.means_.shape[1]
    total = alpha.sum()
    weights = (alpha / total, np.sqrt(alpha * (total - alpha) / (total**2 * (total + 1))))
    psi = np.linalg.inv(fit.scale_cholesky_ @ np.swapaxes(fit.scale_cholesky_, 1, 2))
    diagonal = np.diagonal(psi, axis1=1, axis2=2)  # (K, D)
    means = (fit.means_, np.sqrt(diagonal / (beta * (nu - d - 1))[:, None]))
    a = (nu - d)[:, None, None]
    variance = ((a + 1) * psi**2 + (a - 1) * diagonal[:, :, None] * diagonal[:, None, :]) / (
        a * (a - 1) ** 2 * (a - 3)
    )
    covariances = (psi / (a - 1), np.sqrt(variance))
    return {"weights": weights, "means": means, "covariances": covariances}


# ---------------------------------------------------------------------------------------------
# The gmm-compare command (analysis/): run it as a user does, once per session where expensive.

GMM_COMPARE = Path(sys.executable).with_name("gmm-compare")
SMALL_RUN = ("--draws", "100", "--tune", "100", "--chains", "2", "--seed", "3")


@pytest.fixture(scope="session")
def run_gmm_compare():
    """Run the installed `gmm-compare` console script; returns the CompletedProcess."""

    def run(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(GMM_COMPARE), *(str(a) for a in args)],
            capture_output=True,
            text=True,
            cwd=cwd,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def seed_report_run(tmp_path_factory, run_gmm_compare) -> tuple[Path, subprocess.CompletedProcess]:
    """`gmm-compare` with small draw counts in a fresh folder: (report folder, the run)."""
    cwd = tmp_path_factory.mktemp("seed_report")
    result = run_gmm_compare(*SMALL_RUN, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return cwd / "reports" / "seed7907", result


@pytest.fixture(scope="session")
def seed_posterior(seed_data, seed_em):
    """NUTS posterior of the seed-7907 mixture (4 chains x 1000 draws), labelled like seed_em.

    Sampled once per session (about half a minute); a DataTree from `models.sample_posterior`.
    """
    from models import build_model, sample_posterior

    X, _ = seed_data
    model = build_model(X, n_components=seed7907.N_COMPONENTS)
    return sample_posterior(
        model, draws=1000, tune=1000, chains=4, random_seed=0, reference=seed_em, progressbar=False
    )


# ---------------------------------------------------------------------------------------------
# A posterior without sampling: for tests of what is built from a DataTree (tables, rendering).


def seed7907_results(settings: Any, posterior: Any, gauss_wishart: Any) -> Any:
    """seed-7907's Results: both EM runs, their uncertainty under settings, VB, and the given
    (fake) posteriors of the two NUTS runs."""
    from analysis.datasets import load_dataset
    from analysis.em_fits import fit_em
    from analysis.pipeline import results_from, run_uncertainty, run_vb

    dataset = load_dataset("seed7907")
    fits = fit_em(dataset, 3, random_seed=0)
    uncertainty = run_uncertainty(dataset, fits, settings)
    vb = run_vb(dataset, fits)
    return results_from(dataset, fits, uncertainty, posterior, settings, vb, gauss_wishart)


def fake_posterior(
    X: np.ndarray,
    parameters,
    chains: int = 4,
    draws: int = 250,
    random_seed: int = 0,
    names: tuple[str, ...] | None = None,
):
    """A DataTree shaped like `models.sample_posterior`'s, from NumPy draws around parameters.

    Independent draws scattered around a MixtureParameters (weights from a Dirichlet centred on
    them, means with small normal noise, covariances scaled by a factor near 1), with the
    observed data X (n, D), no divergences, timings of one second, and the log_likelihood and
    posterior_predictive groups computed from the draws as the sampler's are. `names` (D,) label
    the `dim` coordinate as a CSV's header does (0..D-1 without).
    """
    import xarray as xr

    from models.predictions import log_likelihood_group, predictive_group

    rng = np.random.default_rng(random_seed)
    k, d = parameters.means.shape
    shape = (chains, draws)
    weights = rng.dirichlet(2000 * parameters.weights, size=shape)
    means = parameters.means + 0.05 * rng.standard_normal((*shape, k, d))
    scale = rng.gamma(400.0, 1 / 400.0, size=(*shape, k, 1, 1))
    covariances = parameters.covariances * scale
    coords = {
        "chain": np.arange(chains),
        "draw": np.arange(draws),
        "component": np.arange(k),
        "dim": np.arange(d) if names is None else list(names),
        "dim_bis": np.arange(d) if names is None else list(names),
        "point": np.arange(X.shape[0]),
    }
    sample = ("chain", "draw")
    posterior = xr.Dataset(
        {
            "weights": ((*sample, "component"), weights),
            "means": ((*sample, "component", "dim"), means),
            "covariances": ((*sample, "component", "dim", "dim_bis"), covariances),
        },
        coords={name: coords[name] for name in (*sample, "component", "dim", "dim_bis")},
        attrs={"sampling_seconds": 1.0, "compile_seconds": 1.0, "mass_matrix": "full"},
    )
    observed = xr.Dataset(
        {"X": (("point", "dim"), X)}, coords={"point": coords["point"], "dim": coords["dim"]}
    )
    stats = xr.Dataset(
        {"diverging": (sample, np.zeros(shape, dtype=bool))},
        coords={name: coords[name] for name in sample},
    )
    return xr.DataTree.from_dict(
        {
            "posterior": posterior,
            "sample_stats": stats,
            "observed_data": observed,
            "log_likelihood": log_likelihood_group(posterior, observed),
            "posterior_predictive": predictive_group(posterior, observed, rng),
        }
    )


@pytest.fixture(scope="session")
def seed_fake_posterior(seed_data, seed_em):
    """A fake posterior (4 chains x 250 draws) around the seed program's EM fit on seed-7907."""
    X, _ = seed_data
    return fake_posterior(X, seed_em.parameters_)


@pytest.fixture(scope="session")
def seed_fake_gauss_wishart(seed_data, seed_em):
    """A fake posterior of NUTS under VB's priors: 4 chains x 250 draws (the main run's sizes,
    as `analysis.settings.GAUSS_WISHART_SHARE` = 1 gives), other draws than seed_fake_posterior's.
    """
    X, _ = seed_data
    return fake_posterior(X, seed_em.parameters_, draws=250, random_seed=1)
