"""The emulator's data-format conversions are bit-exact against ttnn's own host conversion.

ttnn tilizes and quantizes on the host when given a (mock) cluster description: no card is needed. We compare
round trips float32 -> format -> float32 through both, bit for bit (NaN compared as NaN), on tiles crafted to hit
the edge cases: round-to-nearest ties, mantissa saturation, flush-to-zero, denormals, inf/NaN groups.
"""

import os
from pathlib import Path

import numpy as np
import pytest
from tilegraph.runtime.emulator import quantize

CLUSTER_DESC = Path(__file__).parent / "data" / "wormhole_N150.yaml"


@pytest.fixture(scope="module")
def ttnn():
    os.environ.setdefault("TT_METAL_MOCK_CLUSTER_DESC_PATH", str(CLUSTER_DESC))
    import ttnn  # a dependency on this platform (pyproject): a missing ttnn must fail, not skip

    return ttnn


def ttnn_roundtrip(ttnn, x: np.ndarray, dtype: str) -> np.ndarray:
    fmt = {"bfloat16": ttnn.bfloat16, "bfloat8_b": ttnn.bfloat8_b}[dtype]
    t = ttnn.Tensor(np.ascontiguousarray(x, np.float32), fmt, None, ttnn.TILE_LAYOUT)
    return ttnn.typecast(t, ttnn.float32).to_numpy().reshape(x.shape)


def assert_bits_equal(got: np.ndarray, want: np.ndarray):
    both_nan = np.isnan(got) & np.isnan(want)
    diff = (got.view(np.uint32) != want.view(np.uint32)) & ~both_nan
    idx = np.argwhere(diff)
    assert not len(idx), f"{len(idx)} mismatches, first at {idx[0]}: got {got[tuple(idx[0])]!r} want {want[tuple(idx[0])]!r}"


def edge_case_tiles(rng: np.random.Generator) -> np.ndarray:
    """8 tiles (256 x 32): random data plus planted ties, saturation, tiny values, inf/NaN, denormals."""
    x = (rng.standard_normal((256, 32)) * np.exp2(rng.integers(-20, 20, (256, 1)))).astype(np.float32)
    ulp = np.float32(2.0 ** -6)  # bfp8 step for a group whose max is in [1, 2)
    x[0, :16] = 1.0
    x[0, 1:8] = [0.5 * ulp, 1.5 * ulp, 2.5 * ulp, 0.49 * ulp, 0.51 * ulp, -2.5 * ulp, -0.5 * ulp]  # ties / flush
    x[1, :16] = 1.999  # saturation (rounds up past 127/64)
    x[1, 3] = -1.9999
    x[2, :16] = 3.0
    x[2, 5] = np.inf
    x[3, 16:] = -1.0
    x[3, 20] = -np.inf
    x[4, :16] = 2.0
    x[4, 7] = np.nan
    x[5, :16] = np.float32(1e-39)  # denormal group
    x[6, :16] = np.float32(1.2e-38)  # smallest normals, with a denormal neighbour
    x[6, 3] = np.float32(5e-39)
    x[7, 16:] = 3.4e38  # near the top of the range
    x[8, :] = 0.0
    x[8, 9] = -0.0
    # bf16 ties: low 16 bits exactly 0x8000, with even and odd kept parts
    base = rng.integers(0x3F000000, 0x40000000, 64, dtype=np.uint32) & 0xFFFF0000
    x[9:11, :] = ((base | 0x8000).view(np.float32)).reshape(2, 32)
    x[11, :] = np.float32(3.4e38) * np.float32(1.0001)  # overflows bf16 to inf
    x[12, :] = np.float32(1e-40)  # bf16 keeps denormals
    return x


@pytest.mark.parametrize("dtype", ["bfloat16", "bfloat8_b"])
def test_edge_case_tiles_match_ttnn(ttnn, dtype):
    x = edge_case_tiles(np.random.default_rng(0))
    assert_bits_equal(quantize(x, dtype), ttnn_roundtrip(ttnn, x, dtype))


@pytest.mark.parametrize("dtype", ["bfloat16", "bfloat8_b"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_tiles_match_ttnn(ttnn, dtype, seed):
    rng = np.random.default_rng(seed)
    # mixed magnitudes within a face row so shared exponents differ from most elements
    x = (rng.standard_normal((96, 64)) * np.exp2(rng.integers(-12, 12, (96, 64)))).astype(np.float32)
    assert_bits_equal(quantize(x, dtype), ttnn_roundtrip(ttnn, x, dtype))


def test_bfp8_exponent_shared_per_face_row():
    # One large value raises the step of its own 16-element face-row group only.
    x = np.full((32, 32), 1.0 + 2.0 ** -5, np.float32)
    x[0, 0] = 64.0
    q = quantize(x, "bfloat8_b")
    assert q[0, 1] == 1.0  # step in that group is 64 / 2^6 = 1: 1.03125 rounds to 1
    assert q[0, 17] == x[0, 17] and q[1, 1] == x[1, 1]  # other groups keep 1 + 2^-5 exactly
