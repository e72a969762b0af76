"""The `gmm-compare` command line (for now: the seed program's EM run, reproduced)."""

from __future__ import annotations

import sys

import numpy as np

from em_reference import GaussianMixtureEM, seed7907


def main(argv: list[str] | None = None) -> int:
    """Fit EM from the seed program's initial values on seed-7907 and print the estimates."""
    X, labels = seed7907.load()
    fit = GaussianMixtureEM(seed7907.N_COMPONENTS, init=seed7907.INITIAL).fit(X)
    accuracy = float(np.mean(fit.predict(X) == labels))
    with np.printoptions(precision=3, suppress=True):
        print(f"weights     {fit.weights_}")
        print(f"means       {fit.means_.tolist()}")
        print(f"covariances {np.round(fit.covariances_, 3).tolist()}")
    print(f"iterations {fit.n_iter_}, log-likelihood {fit.log_likelihood_:.4f}, "
          f"accuracy {accuracy:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
