import numpy as np
import pytest

# Types whose bytes the gguf package can decode, with GGUF's enum name.
QUANT_TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
FLOAT_TYPES = ["F32", "F16", "BF16"]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
