"""blockquant's blocks checked against llama.cpp's own Python package (gguf),
an independent implementation of the same formats."""
import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as GT  # noqa: E402
from gguf import quants as gq  # noqa: E402

import blockquant as bq  # noqa: E402
from conftest import FLOAT_TYPES, QUANT_TYPES  # noqa: E402


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equality of float32 arrays; any NaN matches any NaN (payloads may differ)."""
    a = np.ascontiguousarray(a, dtype=np.float32).reshape(-1)
    b = np.ascontiguousarray(b, dtype=np.float32).reshape(-1)
    nan = np.isnan(a)
    return bool(np.array_equal(nan, np.isnan(b)) and np.array_equal(a.view(np.uint32)[~nan], b.view(np.uint32)[~nan]))


def gguf_decode(qt: bq.QuantizedTensor) -> np.ndarray:
    rows = qt.n_elements // qt.shape[-1]
    raw = qt.data.reshape(rows, -1)
    with np.errstate(all="ignore"):
        return gq.dequantize(raw, GT[qt.type]).astype(np.float32).reshape(qt.shape)


def adversarial_rows(cols: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    rows = [
        np.zeros(cols),
        np.full(cols, 0.37),
        np.full(cols, -2.5),
        np.where(np.arange(cols) == 17, 1e4, rng.standard_normal(cols)),
        rng.standard_normal(cols) * 1e-30,
        rng.standard_normal(cols) * 1e30,
        np.arange(cols) * np.float32(1e-45),  # subnormals
        np.where(np.arange(cols) % 2 == 0, 1.0, -1.0) * (1 + 0.01 * (np.arange(cols) % 7)),
    ]
    return np.ascontiguousarray(np.stack(rows).astype(np.float32))


@pytest.mark.parametrize("type_name", QUANT_TYPES + FLOAT_TYPES)
def test_gguf_decodes_our_bytes_to_our_floats_random(type_name, rng):
    x = rng.standard_normal((16, 512)).astype(np.float32) * rng.uniform(0.01, 10, (16, 1)).astype(np.float32)
    qt = bq.quantize(x, type_name)
    assert same_bits(bq.dequantize(qt), gguf_decode(qt))


@pytest.mark.parametrize("type_name", QUANT_TYPES + FLOAT_TYPES)
def test_gguf_decodes_our_bytes_to_our_floats_adversarial(type_name):
    x = adversarial_rows(512)
    if type_name == "F16":  # 1e30 does not fit in f16: that is an error (test_api), not Inf
        x = np.ascontiguousarray(np.delete(x, 5, axis=0))
    qt = bq.quantize(x, type_name)
    ours = bq.dequantize(qt)
    assert np.isfinite(ours).all()
    assert same_bits(ours, gguf_decode(qt))


@pytest.mark.parametrize("type_name", QUANT_TYPES)
def test_random_block_bytes_decode_identically(type_name):
    """Arbitrary bytes, NaN/Inf f16 scales included: both sides follow IEEE arithmetic in f32
    (0 * Inf = NaN, Inf - Inf = NaN), so they agree element for element, NaN positions too."""
    rng = np.random.default_rng(99)
    info = {t.name: t for t in bq.types()}[type_name]
    n_blocks = 64
    raw = rng.integers(0, 256, size=n_blocks * info.block_bytes, dtype=np.uint8)
    # Force some f16 fields to Inf and NaN: patch the first two bytes of every 8th block.
    for b in range(0, n_blocks, 8):
        raw[b * info.block_bytes: b * info.block_bytes + 2] = [0x00, 0x7C]  # +Inf (for types whose d leads)
    for b in range(4, n_blocks, 8):
        raw[b * info.block_bytes: b * info.block_bytes + 2] = [0x01, 0x7E]  # NaN
    qt = bq.QuantizedTensor.from_bytes(type_name, (n_blocks * info.block_elems,), raw)
    assert same_bits(bq.dequantize(qt), gguf_decode(qt))


def test_q8_0_bytes_identical_to_gguf_quantize(rng):
    x = rng.standard_normal((32, 1024)).astype(np.float32)
    ours = bq.quantize(x, "Q8_0").data.reshape(32, -1)
    theirs = gq.quantize(x, GT.Q8_0)
    assert np.array_equal(ours, theirs)


def test_q4_0_error_no_worse_than_gguf_quantize(rng):
    """gguf's Q4_0 maps the extreme to -8 with no search; blockquant searches scales and refits
    by least squares, so its bytes differ and its error is lower."""
    x = rng.standard_normal((64, 1024)).astype(np.float32)
    ours = bq.dequantize(bq.quantize(x, "Q4_0"))
    theirs = gq.dequantize(gq.quantize(x, GT.Q4_0), GT.Q4_0)
    err_ours = np.sqrt(np.mean((x - ours) ** 2))
    err_theirs = np.sqrt(np.mean((x - theirs) ** 2))
    assert err_ours <= err_theirs
    assert err_ours < 0.95 * err_theirs  # the search is worth something


@pytest.mark.parametrize("type_name", ["F16", "BF16"])
def test_float_conversions_match_gguf(type_name, rng):
    x = (rng.standard_normal((4, 256)) * 100).astype(np.float32)
    ours = bq.quantize(x, type_name).data.reshape(4, -1)
    theirs = np.ascontiguousarray(gq.quantize(x, GT[type_name])).view(np.uint8).reshape(4, -1)
    assert np.array_equal(ours, theirs)
