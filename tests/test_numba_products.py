"""Matrix products in the Numba backend by `np.dot` (models.numba_products): numbers and keys."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
from pytensor.tensor.blas import BatchedDot

from models import numba_products


def test_products_of_strided_operands_equal_numpy():
    x = pt.matrix("x")
    y = pt.matrix("y")
    a = pt.tensor3("a")
    b = pt.tensor3("b")
    # Transposed and reversed operands reach the Numba functions as non-contiguous arrays.
    outputs = [x.T @ y, x[::-1].T @ y[::-1, ::2], BatchedDot()(a, b.transpose(0, 2, 1))]
    product = pytensor.function([x, y, a, b], outputs, mode="NUMBA")
    rng = np.random.default_rng(5)
    values = [rng.normal(size=(4, 3)), rng.normal(size=(4, 6)), *rng.normal(size=(2, 3, 2, 5))]
    xv, yv, av, bv = values
    expected = [xv.T @ yv, xv[::-1].T @ yv[::-1, ::2], av @ np.swapaxes(bv, 1, 2)]
    for got, want in zip(product(*values), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
def test_cache_keys_are_distinct_from_pytensor_for_float64_only(dtype):
    x = pt.matrix("x", dtype=dtype)
    y = pt.matrix("y", dtype=dtype)
    node = pt.dot(x, y).owner
    _, key = numba_funcify_and_cache_key(node.op, node=node)
    _, pytensor_key = numba_products._pytensor_dot(node.op, node=node)
    assert (key != pytensor_key) == (dtype == "float64")


def test_batched_cache_key_is_distinct_from_pytensor():
    a = pt.tensor3("a")
    node = BatchedDot()(a, a).owner
    _, key = numba_funcify_and_cache_key(node.op, node=node)
    _, pytensor_key = numba_products._pytensor_batched_dot(node.op, node=node)
    assert key != pytensor_key
