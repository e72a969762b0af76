"""The seed-7907 dataset and the seed program's EM run: the one source of truth for its constants.

The seed program draws 500 bivariate points from a 3-component mixture (`TRUE`) with its LCG
started at 7907, runs EM once from `INITIAL`, and publishes `PUBLISHED` (3 decimals) with a
clustering accuracy of 99.4 % (497 of 500 points).
"""

from __future__ import annotations

import numpy as np

from em_reference.generator import sample_mixture
from em_reference.parameters import MixtureParameters

SEED = 7907
N_POINTS = 500
N_COMPONENTS = 3

TRUE = MixtureParameters(
    weights=[0.26, 0.41, 0.33],
    means=[[-1.0, 0.2], [2.2, 5.3], [5.8, -2.8]],
    covariances=[[[2.0, 1.0], [1.0, 1.4]], [[0.8, -1.3], [-1.3, 3.4]], [[1.6, 0.1], [0.1, 1.7]]],
)
"""The mixture the seed program samples from."""

INITIAL = MixtureParameters(
    weights=[0.6, 0.26, 0.14],
    means=[[6.2, 0.0], [3.7, -2.4], [10.0, 6.1]],
    covariances=[[[3.0, 0.0], [0.0, 0.1]], [[0.5, -2.2], [-2.2, 10.0]], [[2.7, 0.6], [0.6, 5.2]]],
)
"""The seed program's EM starting point (ordered so the estimates come out in the true order)."""

PUBLISHED = MixtureParameters(
    weights=[0.262, 0.412, 0.326],
    means=[[-1.062, 0.088], [2.316, 5.168], [5.74, -2.851]],
    covariances=[
        [[2.467, 1.257], [1.257, 1.643]],
        [[0.784, -1.356], [-1.356, 3.599]],
        [[1.828, -0.032], [-0.032, 1.552]],
    ],
)
"""The seed program's published EM estimates, rounded to `PUBLISHED_DECIMALS` decimals."""

PUBLISHED_DECIMALS = 3
PUBLISHED_ACCURACY = 0.994
PUBLISHED_CORRECT = 497

# The seed program's EM settings.
TOL = 1e-5
MAX_ITER = 100
REG_COVAR = 1e-6


def load() -> tuple[np.ndarray, np.ndarray]:
    """The 500 seed-7907 points X (500, 2) and their true component labels (500,)."""
    return sample_mixture(N_POINTS, TRUE.weights, TRUE.means, TRUE.covariances, seed=SEED)
