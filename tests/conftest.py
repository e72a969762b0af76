"""Shared fixtures and helpers: the seed-7907 data, its EM fit (once a session), random mixtures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from em_reference import GaussianMixtureEM, seed7907

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
