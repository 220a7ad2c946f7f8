"""bq.matmul against float64 products of the dequantized weights."""
import numpy as np
import pytest

import blockquant as bq
from conftest import QUANT_TYPES

pytestmark = pytest.mark.skipif(not bq._core.has_kernels, reason="built without Highway")


@pytest.mark.parametrize("type_name", QUANT_TYPES + ["F16", "BF16", "F32"])
@pytest.mark.parametrize("activations", ["q8", "f32"])
def test_matmul_matches_dequantized_product(type_name, activations, rng):
    w = rng.standard_normal((37, 512)).astype(np.float32)
    x = rng.standard_normal((5, 512)).astype(np.float32)
    qt = bq.quantize(w, type_name)
    ref = x.astype(np.float64) @ bq.dequantize(qt).astype(np.float64).T
    y = bq.matmul(qt, x, activations=activations, threads=2)
    assert y.shape == (5, 37) and y.dtype == np.float32
    scale = np.abs(x).astype(np.float64) @ np.abs(bq.dequantize(qt)).astype(np.float64).T
    # q8 activations add their own rounding (about 1/254 relative per value); f32 only float error.
    tol = 0.02 if activations == "q8" else 1e-5
    assert np.all(np.abs(y - ref) <= tol * scale + 1e-6)
    y1 = bq.matmul(qt, x[0], activations=activations)
    assert y1.shape == (37,)
    assert np.array_equal(y1, y[0])


def test_matmul_errors_and_targets(rng):
    qt = bq.quantize(rng.standard_normal((4, 256)).astype(np.float32), "Q4_K")
    with pytest.raises(bq.ShapeError):
        bq.matmul(qt, np.ones(128, np.float32))
    with pytest.raises(TypeError):
        bq.matmul(qt, np.ones(256, np.float64))
    with pytest.raises(ValueError):
        bq.matmul(qt, np.ones(256, np.float32), activations="int4")
    t = bq.cpu_targets()
    assert t["chosen"] in t["supported"] and set(t["supported"]) <= set(t["compiled"])
