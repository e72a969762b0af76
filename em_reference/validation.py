"""Input checks, once each: every failure is a ValueError naming the argument and the value.

Used by the estimators at `fit` and by everything downstream (models, analysis) that takes the
same kinds of arguments, so that a bad value gets the same message wherever it is passed.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def check_data(X: Any, n_features: int | None = None) -> np.ndarray:
    """Return X as a float64 array (n, D), raising ValueError if it is not finite 2-D data.

    TypeError for sparse matrices and entries that are not numbers at all. With `n_features`,
    X must also have that many columns (new data for a fitted model).
    """
    if hasattr(X, "toarray") and hasattr(X, "nnz"):
        raise TypeError("X is a sparse matrix, which is not supported: pass X.toarray()")
    if np.iscomplexobj(X):
        raise ValueError("X must be real numbers: Complex data not supported")
    try:
        array = np.asarray(X, dtype=np.float64)
    except TypeError as error:
        raise TypeError(f"X must be a numeric array of shape (n, D): {error}") from None
    except ValueError as error:
        raise ValueError(f"X must be a numeric array of shape (n, D): {error}") from None
    if array.ndim != 2:
        raise ValueError(
            f"X must be 2-D with shape (n, D), got {array.ndim}-D shape {array.shape}. Reshape "
            "your data: X.reshape(-1, 1) for one feature, X.reshape(1, -1) for one point"
        )
    for axis, what, name in ((0, "row", "sample"), (1, "column", "feature")):
        if array.shape[axis] < 1:
            raise ValueError(
                f"X must have at least one {what}: 0 {name}(s) (shape={array.shape}) while a "
                "minimum of 1 is required."
            )
    if not np.all(np.isfinite(array)):
        bad_rows = np.flatnonzero(~np.all(np.isfinite(array), axis=1))
        raise ValueError(
            f"X contains NaN or infinite values ({bad_rows.size} rows, first at row {bad_rows[0]})"
        )
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(
            f"X has {array.shape[1]} columns but the model was fitted with {n_features}"
        )
    return array


def check_integer(name: str, value: Any, minimum: int = 1) -> int:
    """Return value as an int, raising ValueError unless it is an integer >= minimum.

    Booleans are refused: True is not a count.
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_number(name: str, value: Any, bound: str) -> float:
    """Return value as a float, raising ValueError unless it is a real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")
    return float(value)


def check_non_negative(name: str, value: Any) -> float:
    """Return value as a float, raising ValueError unless it is a finite number >= 0."""
    number = _check_number(name, value, ">= 0")
    if not np.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def check_positive(name: str, value: Any) -> float:
    """Return value as a float, raising ValueError unless it is a finite number > 0."""
    number = _check_number(name, value, "> 0")
    if not np.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def check_n_components(n_components: Any, n_points: int) -> int:
    """Return n_components as an int, raising ValueError unless 1 <= K <= n (n_points)."""
    n_components = check_integer("n_components", n_components)
    if n_points < n_components:
        raise ValueError(f"X has {n_points} points, fewer than n_components={n_components}")
    return n_components


def check_sample_weight(sample_weight: Any, n_points: int) -> np.ndarray | None:
    """Return point weights as a float64 array (n,), or None for equal weights.

    ValueError unless they are n finite numbers >= 0 with a positive sum.
    """
    if sample_weight is None:
        return None
    try:
        array = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"sample_weight must be numbers of shape (n,): {error}") from None
    if array.shape != (n_points,):
        raise ValueError(
            f"sample_weight must have shape (n,) = ({n_points},) to match X, got {array.shape}"
        )
    if not np.all(np.isfinite(array)) or np.any(array < 0) or not array.sum() > 0:
        raise ValueError("sample_weight must be finite numbers >= 0 with a positive sum")
    return array
