"""Collapsed fits, named: emptied components, components with no spread, collinear columns.

A Gaussian component whose points lie on fewer than D dimensions has a likelihood that grows
without bound as its covariance shrinks onto them: only EM's covariance floor (reg_covar) or a
prior stops it, and log-likelihoods, SDs and their ratios then measure that floor, not the data.
Such fits are named in the report's warnings and in comparison.json, never left to look like
converged ones. Everything is measured in the data's standardized units (each column centred
and divided by its SD), so the test does not depend on the columns' units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from em_reference.uncertainty import LOADING_SHARE

COLLAPSE_TOL = 1e-6
"""A variance below this, in standardized units (a spread under a thousandth of a column's
SD), is taken as no spread at all."""


def standardized(X: np.ndarray) -> np.ndarray:
    """The points (n, D) centred and divided by each column's SD (a constant column by 1)."""
    sd = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def flat_directions(scatter: np.ndarray, names: Sequence[Any]) -> list[list[str]]:
    """The columns each flat direction of a scatter matrix (D, D) loads on, one list each.

    A flat direction is an eigenvector whose eigenvalue is below COLLAPSE_TOL; its columns are
    those whose entry is at least LOADING_SHARE of its largest entry.
    """
    values, vectors = np.linalg.eigh(scatter)
    found = []
    for vector in vectors[:, values < COLLAPSE_TOL].T:
        size = np.abs(vector)
        found.append([str(names[j]) for j in np.flatnonzero(size >= LOADING_SHARE * size.max())])
    return found


def collinear_columns(X: np.ndarray, names: Sequence[Any]) -> list[list[str]]:
    """Groups of columns of X (n, D) that are (nearly) linear combinations of one another.

    One group per eigenvalue of the data's correlation matrix below COLLAPSE_TOL: then every
    component's covariance can shrink onto the data's subspace, so every fit collapses.
    """
    Z = standardized(X)
    return flat_directions(Z.T @ Z / Z.shape[0], names)


def collapsed_components(
    X: np.ndarray, responsibilities: np.ndarray, names: Sequence[Any]
) -> list[dict[str, Any]]:
    """The collapsed components of a fit with these responsibilities (n, K) on X (n, D).

    Component k is collapsed when it is emptied, its expected count N_k = sum_i r_ik below
    D + 1 (the fewest points whose covariance can be nonsingular in D dimensions), or when the
    responsibility-weighted scatter of its points in standardized units,
    sum_i r_ik (z_i - zbar_k)(z_i - zbar_k)^T / N_k, has an eigenvalue below COLLAPSE_TOL: its
    points span fewer than D dimensions. One dict per collapsed component: its index, N_k, the
    columns its flat directions load on ([] when emptied) and the reason, "emptied" or "flat".
    """
    Z = standardized(X)
    found = []
    for k, count in enumerate(responsibilities.sum(axis=0)):
        entry = {"component": k, "count": float(count), "columns": [], "reason": "emptied"}
        if count >= X.shape[1] + 1:
            entry |= {"columns": _flat_columns(Z, responsibilities[:, k], names), "reason": "flat"}
        if entry["reason"] == "emptied" or entry["columns"]:
            found.append(entry)
    return found


def _flat_columns(Z: np.ndarray, weights: np.ndarray, names: Sequence[Any]) -> list[str]:
    """The columns along which the points Z (n, D), weighted (n,), have no spread, in order."""
    centred = Z - weights @ Z / weights.sum()
    scatter = (weights[:, None] * centred).T @ centred / weights.sum()
    flat = {column for group in flat_directions(scatter, names) for column in group}
    return [str(name) for name in names if str(name) in flat]


def collapse_warnings(method: str, collapsed: list[dict[str, Any]], n_features: int) -> list[str]:
    """The report's warning lines for one method's collapsed components (none when none)."""
    lines = []
    emptied = [c for c in collapsed if c["reason"] == "emptied"]
    if emptied:
        counts = ", ".join(f"{c['component']} ({c['count']:.3g} points)" for c in emptied)
        lines.append(
            f"{method}: component(s) {counts} emptied: fewer than D + 1 = {n_features + 1} points "
            "expected, too few to define a covariance; fit fewer components"
        )
    flat = [c for c in collapsed if c["reason"] == "flat"]
    if flat:
        where = "; ".join(f"{c['component']} (along {', '.join(c['columns'])})" for c in flat)
        lines.append(
            f"{method}: component(s) {where} collapsed: their points have no spread in that "
            "direction, so the fit rests on the covariance floor or the prior, and its "
            "log-likelihood and SDs there are not the data's"
        )
    return lines


def collinear_warnings(groups: list[list[str]]) -> list[str]:
    """The report's warning line for each group of collinear columns."""
    return [
        f"the columns {', '.join(group)} are collinear (one is a linear combination of the "
        "others, or constant): every component collapses onto them, so log-likelihoods are "
        "unbounded; drop one of them"
        for group in groups
    ]


def collapse_section(
    X: np.ndarray, names: Sequence[Any], fits: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Collinear column groups, each fit's collapsed components, and the warning lines.

    `fits` maps a method's name as the report prints it to its responsibilities (n, K).
    """
    collinear = collinear_columns(X, names)
    collapsed = [
        {"method": method, **entry}
        for method, responsibilities in fits.items()
        for entry in collapsed_components(X, responsibilities, names)
    ]
    lines = collinear_warnings(collinear)
    for method in fits:
        mine = [entry for entry in collapsed if entry["method"] == method]
        lines += collapse_warnings(method, mine, X.shape[1])
    return {"collinear_columns": collinear, "collapsed": collapsed, "warnings": lines}
