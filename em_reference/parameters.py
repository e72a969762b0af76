"""The parameters of a Gaussian mixture, validated once, as a small frozen value."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

WEIGHT_SUM_TOLERANCE = 1e-8
SYMMETRY_TOLERANCE = 1e-8


@dataclass(frozen=True)
class MixtureArrays:
    """Weights (K,), means (K, D), covariances (K, D, D) as float64 read-only copies.

    Unconstrained: standard errors or interval bounds have these shapes too.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray

    def __post_init__(self) -> None:
        for name in ("weights", "means", "covariances"):
            array = np.array(getattr(self, name), dtype=np.float64, copy=True)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    def as_dict(self) -> dict[str, list]:
        """Plain nested lists, for JSON."""
        return {
            "weights": self.weights.tolist(),
            "means": self.means.tolist(),
            "covariances": self.covariances.tolist(),
        }


@dataclass(frozen=True)
class MixtureParameters(MixtureArrays):
    """Weights (K,), means (K, D) and full covariances (K, D, D) of a K-component mixture.

    The arrays are float64, read-only copies, checked on construction: shapes agree, weights are
    non-negative and sum to 1, every covariance is symmetric positive definite.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_shapes(self.weights, self.means, self.covariances)
        _check_finite(self.weights, self.means, self.covariances)
        check_weights(self.weights)
        check_covariances(self.covariances)

    @property
    def n_components(self) -> int:
        """The number of components K."""
        return self.weights.shape[0]

    @property
    def n_features(self) -> int:
        """The dimension D of each point."""
        return self.means.shape[1]

    @classmethod
    def from_any(cls, source: Any) -> MixtureParameters:
        """Parameters from `source`: itself, a fitted estimator's `parameters_`, or its fields.

        The fields `weights`, `means` and `covariances` are read as attributes or mapping keys.
        """
        if isinstance(source, cls):
            return source
        if hasattr(source, "parameters_"):
            return source.parameters_
        values = {}
        for name in ("weights", "means", "covariances"):
            if isinstance(source, Mapping) and name in source:
                values[name] = source[name]
            elif hasattr(source, name):
                values[name] = getattr(source, name)
            else:
                raise TypeError(
                    f"mixture parameters need '{name}' as an attribute or key; "
                    f"got {type(source).__name__}"
                )
        return cls(**values)


def _check_shapes(weights: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> None:
    """Raise ValueError unless the shapes are (K,), (K, D), (K, D, D) with K, D >= 1."""
    if weights.ndim != 1 or weights.shape[0] < 1:
        raise ValueError(f"weights must have shape (K,) with K >= 1, got shape {weights.shape}")
    n_components = weights.shape[0]
    if means.ndim != 2 or means.shape[0] != n_components or means.shape[1] < 1:
        raise ValueError(
            f"means must have shape (K, D) = ({n_components}, D) to match {n_components} "
            f"weights, got shape {means.shape}"
        )
    expected = (n_components, means.shape[1], means.shape[1])
    if covariances.shape != expected:
        raise ValueError(f"covariances must have shape {expected}, got {covariances.shape}")


def _check_finite(*arrays: np.ndarray) -> None:
    """Raise ValueError if any parameter is NaN or infinite."""
    for name, array in zip(("weights", "means", "covariances"), arrays, strict=True):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contain NaN or infinite values")


def check_weights(weights: np.ndarray) -> None:
    """Raise ValueError unless the weights (K,) are non-negative and sum to 1."""
    if np.any(weights < 0):
        raise ValueError(f"weights must be non-negative, got {weights.tolist()}")
    total = float(weights.sum())
    if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise ValueError(f"weights must sum to 1, they sum to {total!r}")


def check_covariances(covariances: np.ndarray) -> None:
    """Raise ValueError unless every covariance (K, D, D) is symmetric positive definite."""
    for k, covariance in enumerate(covariances):
        scale = max(1.0, float(np.max(np.abs(covariance))))
        if not np.allclose(covariance, covariance.T, rtol=0, atol=SYMMETRY_TOLERANCE * scale):
            raise ValueError(f"covariance of component {k} is not symmetric: {covariance.tolist()}")
        try:
            np.linalg.cholesky(covariance)
        except np.linalg.LinAlgError:
            raise ValueError(
                f"covariance of component {k} is not positive definite: {covariance.tolist()}"
            ) from None
