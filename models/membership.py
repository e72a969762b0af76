"""Posterior cluster membership: responsibilities averaged over the posterior draws."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from xarray import DataTree

from models.mixture import OBSERVED
from models.predictions import component_arrays, mean_responsibilities


@dataclass(frozen=True)
class Membership:
    """Posterior probabilities of each component for each point, and the most probable label.

    probabilities (n, K): r_ik averaged over draws; labels (n,): argmax_k; top_probability (n,):
    the probability of that label. Labels are in the posterior's component order (the EM
    reference's, for `sample_posterior` output).
    """

    probabilities: np.ndarray
    labels: np.ndarray
    top_probability: np.ndarray

    def __post_init__(self) -> None:
        for name in ("probabilities", "labels", "top_probability"):
            array = np.array(getattr(self, name), copy=True)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    def accuracy(self, true_labels: Any) -> float:
        """Fraction of points whose posterior label equals the true label (same numbering)."""
        true = np.asarray(true_labels)
        if true.shape != self.labels.shape:
            raise ValueError(
                f"true_labels must have shape {self.labels.shape} like the data, got {true.shape}"
            )
        return float(np.mean(self.labels == true))


def posterior_membership(idata: DataTree) -> Membership:
    """Membership of each observed point, from the posterior draws and observed_data of idata."""
    X = np.asarray(idata.observed_data[OBSERVED].values, dtype=np.float64)
    draws = component_arrays(idata.posterior.to_dataset())
    probabilities = mean_responsibilities(X, *draws)
    labels = np.argmax(probabilities, axis=1)
    return Membership(probabilities, labels, probabilities[np.arange(X.shape[0]), labels])
