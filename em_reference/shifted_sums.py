"""EM's fast engine: the E-step and the M-step's sums in one blockwise pass over the data.

The M-step (`em_reference.em`) needs only three sums over the points per component: R_k =
sum_i r_ik, s_k = sum_i r_ik (x_i - c_k) and S_k = sum_i r_ik (x_i - c_k)(x_i - c_k)^T, about a
shift c_k. EM accumulates them block by block in the same pass as the E-step, with c_k the
current means, so an iteration reads the data once and never holds an (n, K) or (n, D)
temporary; the parameters then follow from the sums alone. VB's CAVI makes the same pass.
The tests hold `parameters_from_sums` equal to the textbook `em.maximisation_step`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from em_reference.em import EMPTY_COMPONENT_MASS, expectation_step

# Data are processed in blocks of rows so that temporaries stay small and in cache.
BLOCK_ELEMENTS = 2**17
BLOCK_MIN_ROWS = 256


@dataclass(frozen=True)
class ResponsibilitySums:
    """R_k (K,), s_k (K, D) and S_k (K, D, D) about the shifts c_k (K, D): all the M-step needs."""

    shifts: np.ndarray
    totals: np.ndarray
    first: np.ndarray
    second: np.ndarray

    def __add__(self, other: ResponsibilitySums) -> ResponsibilitySums:
        """The sums over the union of two disjoint sets of points (same shifts)."""
        return ResponsibilitySums(
            self.shifts,
            self.totals + other.totals,
            self.first + other.first,
            self.second + other.second,
        )


def block_rows(n_components: int, n_features: int) -> int:
    """Rows per block: the (K, D, rows) temporaries of a block stay within about 1 MiB."""
    return max(BLOCK_MIN_ROWS, BLOCK_ELEMENTS // (n_components * n_features))


def block_sums(
    X: np.ndarray, responsibilities: np.ndarray, shifts: np.ndarray
) -> ResponsibilitySums:
    """R_k, s_k, S_k of the points X (b, D) with responsibilities (b, K), about shifts (K, D)."""
    coordinates = np.ascontiguousarray(X.T)  # (D, b): points along contiguous rows
    centred = coordinates[None, :, :] - shifts[:, :, None]  # (K, D, b): x_i - c_k
    by_component = responsibilities.T  # (K, b)
    # S_k = A_k A_k^T with A_k = sqrt(r_ik) (x_i - c_k): a product of a matrix with its own
    # transpose, which NumPy hands to BLAS's symmetric rank-k update (half the work of a general
    # product, and S_k comes out exactly symmetric).
    scaled = centred * np.sqrt(by_component)[:, None, :]  # (K, D, b)
    return ResponsibilitySums(
        shifts,
        responsibilities.sum(axis=0),
        np.matmul(centred, by_component[:, :, None])[:, :, 0],
        np.matmul(scaled, scaled.transpose(0, 2, 1)),
    )


def responsibility_sums(
    X: np.ndarray, responsibilities: np.ndarray, shifts: np.ndarray
) -> ResponsibilitySums:
    """R_k, s_k, S_k of all points X (n, D) given responsibilities (n, K), block by block."""
    rows = block_rows(*shifts.shape)
    blocks = [
        block_sums(X[start : start + rows], responsibilities[start : start + rows], shifts)
        for start in range(0, X.shape[0], rows)
    ]
    return sum(blocks[1:], start=blocks[0])


def expectation_pass(
    X: np.ndarray,
    weights: np.ndarray,
    means: np.ndarray,
    precisions_chol: np.ndarray,
    responsibilities_out: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
) -> tuple[float, ResponsibilitySums]:
    """E-step block by block: the total log-likelihood and the M-step's sums about the means.

    The responsibilities (n, K) are written to `responsibilities_out` only if it is given. With
    point weights v (n,) the total is sum_i v_i log p(x_i) and the sums are those of v_i r_ik:
    the weighted likelihood's M-step is the usual one on those sums.
    """
    rows = block_rows(*means.shape)
    log_likelihood = 0.0
    sums = None
    for start in range(0, X.shape[0], rows):
        block = X[start : start + rows]
        log_resp, point_log_density = expectation_step(block, weights, means, precisions_chol)
        responsibilities = np.exp(log_resp, out=log_resp)
        if responsibilities_out is not None:
            responsibilities_out[start : start + rows] = responsibilities
        if sample_weight is None:
            log_likelihood += float(point_log_density.sum())
        else:
            block_weight = sample_weight[start : start + rows]
            log_likelihood += float(block_weight @ point_log_density)
            responsibilities = responsibilities * block_weight[:, None]
        new = block_sums(block, responsibilities, means)
        sums = new if sums is None else sums + new
    return log_likelihood, sums


def masses_from_sums(sums: ResponsibilitySums) -> np.ndarray:
    """N_k = R_k (K,), never exactly zero."""
    return sums.totals + EMPTY_COMPONENT_MASS


def means_from_sums(sums: ResponsibilitySums, masses: np.ndarray) -> np.ndarray:
    """mu_k = sum_i r_ik x_i / N_k (K, D), where sum_i r_ik x_i = s_k + R_k c_k."""
    return (sums.first + sums.totals[:, None] * sums.shifts) / masses[:, None]


def covariances_from_sums(
    sums: ResponsibilitySums, masses: np.ndarray, means: np.ndarray, reg_covar: float
) -> np.ndarray:
    """Sigma_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T / N_k + reg_covar I (K, D, D).

    The scatter about mu_k follows from the sums about c_k (parallel-axis theorem): with
    m_k = mu_k - c_k it is S_k - m_k s_k^T - s_k m_k^T + R_k m_k m_k^T. EM's shifts are the
    previous means, so m_k is a small step and the subtraction loses no precision.
    """
    offsets = means - sums.shifts  # (K, D): m_k
    cross = offsets[:, :, None] * sums.first[:, None, :]  # (K, D, D): m_k s_k^T
    spread = sums.totals[:, None, None] * offsets[:, :, None] * offsets[:, None, :]
    scatter = sums.second - cross - cross.transpose(0, 2, 1) + spread
    covariances = scatter / masses[:, None, None]
    n_features = means.shape[1]
    covariances += reg_covar * np.eye(n_features)
    return covariances


def parameters_from_sums(
    sums: ResponsibilitySums, reg_covar: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The M-step: new weights (K,), means (K, D) and covariances (K, D, D) from the sums."""
    masses = masses_from_sums(sums)
    means = means_from_sums(sums, masses)
    covariances = covariances_from_sums(sums, masses, means, reg_covar)
    return masses / masses.sum(), means, covariances


def sums_about_weighted_means(X: np.ndarray, responsibilities: np.ndarray) -> ResponsibilitySums:
    """R_k, s_k, S_k of given responsibilities (n, K), about their weighted means mu_k."""
    masses = responsibilities.sum(axis=0) + EMPTY_COMPONENT_MASS
    shifts = (responsibilities.T @ X) / masses[:, None]
    return responsibility_sums(X, responsibilities, shifts)


def parameters_from_responsibilities(
    X: np.ndarray, responsibilities: np.ndarray, reg_covar: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The M-step from responsibilities (n, K) by the sums about their weighted means.

    Two passes (the means first, then the sums about them), so the shift is exact and the
    result is the textbook `em.maximisation_step`'s to rounding.
    """
    return parameters_from_sums(sums_about_weighted_means(X, responsibilities), reg_covar)
