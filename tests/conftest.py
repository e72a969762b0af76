"""Shared fixtures: the seed-7907 data and the seed program's EM fit, computed once a session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from em_reference import GaussianMixtureEM, seed7907

HASKELL_CSV = Path(__file__).parent / "data" / "seed7907_haskell.csv"


@pytest.fixture(scope="session")
def seed_data() -> tuple[np.ndarray, np.ndarray]:
    """The seed-7907 points (500, 2) and true labels (500,)."""
    return seed7907.load()


@pytest.fixture(scope="session")
def seed_em(seed_data) -> GaussianMixtureEM:
    """EM fitted on seed-7907 from the seed program's initial values."""
    X, _ = seed_data
    return GaussianMixtureEM(seed7907.N_COMPONENTS, init=seed7907.INITIAL).fit(X)
