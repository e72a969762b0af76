"""Matrix products in PyTensor's Numba backend by Numba's own `np.dot`, for a quicker first compile.

PyTensor 3.3 turns `Dot` and `BatchedDot` into calls of its own BLAS wrapper (`_gemm`), whose
stride handling is inlined into every caller: Numba spends about 12 CPU s compiling it for each
operand layout, about half of the first (cold) compile of the mixture's log density and gradient
(benchmarks/README.md). Numba's `np.dot` calls the same BLAS routines and compiles in a fraction
of that, so float64 products are registered here to use it; every other dtype keeps PyTensor's
implementation. The functions carry their own Numba cache keys, so compiled code cached by
PyTensor's implementation is never loaded in their place.

Importing this module registers the implementations for the whole process (PyTensor's dispatch
is global); `models.nuts_setup` imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from hashlib import sha256
from typing import Any

import numpy as np
import pytensor.link.numba.dispatch  # noqa: F401  (PyTensor's registrations first, ours replace them)
from pytensor.link.numba.dispatch.basic import (
    default_hash_key_from_props,
    numba_funcify_and_cache_key,
    numba_njit,
    register_funcify_and_cache_key,
)
from pytensor.tensor.blas import BatchedDot
from pytensor.tensor.math import Dot

CACHE_SALT = "gmm-compare: numba np.dot, version 1"
"""Mixed into the cache keys of the functions defined here; change it when they change."""

_pytensor_dot = numba_funcify_and_cache_key.dispatch(Dot)
_pytensor_batched_dot = numba_funcify_and_cache_key.dispatch(BatchedDot)


def _all_float64(node: Any) -> bool:
    """True when every input and output of node is a float64 tensor."""
    return all(var.type.dtype == "float64" for var in (*node.inputs, *node.outputs))


def _cache_key(op: Any) -> str:
    """A Numba cache key for op's function here, distinct from PyTensor's key for op."""
    return sha256(f"{CACHE_SALT} {default_hash_key_from_props(op)}".encode()).hexdigest()


@register_funcify_and_cache_key(Dot)
def numba_funcify_dot(op: Dot, node: Any, **kwargs: Any) -> tuple[Callable, str | None]:
    """Product x (m, k) @ y (k, n) by `np.dot` for float64; PyTensor's function for other dtypes."""
    if not _all_float64(node):
        return _pytensor_dot(op, node=node, **kwargs)

    @numba_njit
    def dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.dot(x, y)

    return dot, _cache_key(op)


@register_funcify_and_cache_key(BatchedDot)
def numba_funcify_batched_dot(
    op: BatchedDot, node: Any, **kwargs: Any
) -> tuple[Callable, str | None]:
    """Products x[i] (m, k) @ y[i] (k, n) by `np.dot` for float64 x, y (b, ...); else PyTensor's."""
    if not _all_float64(node):
        return _pytensor_batched_dot(op, node=node, **kwargs)

    @numba_njit
    def batched_dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], x.shape[1], y.shape[2]))
        for i in range(out.shape[0]):
            out[i] = np.dot(x[i], y[i])
        return out

    return batched_dot, _cache_key(op)
