"""The seed program's data generator: a C-library LCG, cosine Box-Muller, Cholesky transform.

The scheme (see `shared/reference/README.md` of the project) is reproduced operation by
operation, so that seed 7907 gives the seed program's 500 points to the last few bits:

- states  s_{t+1} = (1103515245 s_t + 12345) mod 2^31, from s_0 = seed, in exact integers;
- uniform u_t = (s_t + 1) / (2^31 + 1), in (0, 1);
- per point: one uniform picks the component (first k whose running cumulative weight exceeds
  it), then D standard normals sqrt(-2 ln u1) cos(2 pi u2), each from two fresh uniforms;
- x = mu_k + L_k z, with L_k the lower Cholesky factor of Sigma_k.
"""

from __future__ import annotations

import numpy as np

from em_reference.parameters import MixtureParameters

LCG_MULTIPLIER = 1103515245
LCG_INCREMENT = 12345
LCG_MODULUS = 2**31
_BLOCK = 4096


def lcg_states(seed: int, count: int) -> np.ndarray:
    """The `count` states (int64) that follow `seed`: s_1, ..., s_count.

    Vectorised by jumping ahead: s_{t+j} = (A_j s_t + C_j) mod m, with A_j = a^j mod m and
    C_j = c (a^{j-1} + ... + 1) mod m computed once in exact integers for j = 1..block. Every
    product stays below 2^62, so int64 arithmetic is exact.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    multipliers, increments = [], []
    a_j, c_j = 1, 0
    for _ in range(min(count, _BLOCK)):
        a_j, c_j = (
            (LCG_MULTIPLIER * a_j) % LCG_MODULUS,
            (LCG_MULTIPLIER * c_j + LCG_INCREMENT) % LCG_MODULUS,
        )
        multipliers.append(a_j)
        increments.append(c_j)
    jump_a = np.array(multipliers, dtype=np.int64)
    jump_c = np.array(increments, dtype=np.int64)
    states = np.empty(count, dtype=np.int64)
    state = seed % LCG_MODULUS
    for start in range(0, count, _BLOCK):
        stop = min(start + _BLOCK, count)
        block = (jump_a[: stop - start] * state + jump_c[: stop - start]) % LCG_MODULUS
        states[start:stop] = block
        state = int(block[-1])
    return states


def lcg_uniforms(seed: int, count: int) -> np.ndarray:
    """`count` uniforms in (0, 1) from the LCG started at `seed`: (s + 1) / (2^31 + 1)."""
    return (lcg_states(seed, count).astype(np.float64) + 1.0) / (LCG_MODULUS + 1.0)


def cholesky_lower(covariance: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor (D, D), computed in the seed program's order of operations.

    For D = 2 this is l11 = sqrt(a), l21 = c / l11, l22 = sqrt(d - l21^2) for [[a, b], [c, d]].
    """
    n_features = covariance.shape[0]
    lower = np.zeros((n_features, n_features))
    for i in range(n_features):
        for j in range(i + 1):
            partial = covariance[i, j] - sum(lower[i, m] * lower[j, m] for m in range(j))
            lower[i, j] = np.sqrt(partial) if i == j else partial / lower[j, j]
    return lower


def sample_mixture(
    n: int,
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    seed: int = 7907,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw n points with the seed program's scheme: points X (n, D) and true labels (n,)."""
    if not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    params = MixtureParameters(weights, means, covariances)
    n_features = params.n_features
    uniforms = lcg_uniforms(seed, n * (1 + 2 * n_features)).reshape(n, 1 + 2 * n_features)

    # Component choice: the first k whose left-to-right running sum of weights exceeds u.
    cumulative = np.cumsum(params.weights)
    labels = np.searchsorted(cumulative, uniforms[:, 0], side="right")
    labels = np.minimum(labels, params.n_components - 1)  # u above a sum rounded below 1

    # Box-Muller, cosine branch only: each normal consumes the pair (u1, u2).
    u1, u2 = uniforms[:, 1::2], uniforms[:, 2::2]
    normals = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)  # (n, D)

    lower = np.stack([cholesky_lower(c) for c in params.covariances])  # (K, D, D)
    return points_from_normals(labels, normals, params.means, lower), labels.astype(np.int64)


def points_from_normals(
    labels: np.ndarray, normals: np.ndarray, means: np.ndarray, lower: np.ndarray
) -> np.ndarray:
    """Points mu_k + L_k z (..., D) of components k (...) from standard normals z (..., D).

    means (K, D), lower Cholesky factors L_k (K, D, D) of the covariances.
    """
    return means[labels] + np.einsum("...ij,...j->...i", lower[labels], normals)


def draw_mixture(
    rng: np.random.Generator,
    size: tuple[int, ...],
    weights: np.ndarray,
    means: np.ndarray,
    lower: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Points (*size, D) and components (*size) drawn with NumPy's generator `rng`.

    A component k by its weight (K,), then mu_k + L_k z (`points_from_normals`), with means
    (K, D) and lower Cholesky factors L_k (K, D, D): the mixture's sampler for every caller but
    the seed program's LCG (`sample_mixture`).
    """
    labels = rng.choice(weights.shape[0], size=size, p=weights)
    normals = rng.standard_normal((*size, means.shape[1]))
    return points_from_normals(labels, normals, means, lower), labels
