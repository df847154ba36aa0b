"""The worker-split GEMMs of the fast numpy paths (ops/linear.py: gemm_rows splits the rows of a @ b, gemm_tn
splits the contraction of a^T @ b into per-piece partials) equal a float64 matmul, for any piece count.

Tolerance (float32 against float64): a length-K dot product accumulates up to ~sqrt(K)..K roundings of 6e-8; the
partial sums of gemm_tn add one rounding per piece. 2e-5 * max|ref| (as tests/test_ops_numpy_fast.py uses for
matmuls with K <= 768) covers both; an indexing or missing-partial bug gives O(1) errors.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tilegraph.ops import linear, parallel

# The fixture only sets module attributes (the same for every example), so sharing it across examples is fine.
SETTINGS = settings(
    deadline=None, max_examples=25, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(params=[1, 2, 3])
def workers(request, monkeypatch):
    """Split down to one row per piece, over 1, 2 and 3 workers."""
    monkeypatch.setattr(parallel, "WORKERS", request.param)
    monkeypatch.setattr(linear, "GEMM_MIN_ROWS", 1)
    return request.param


def close(out, ref):
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=0, atol=2e-5 * max(float(np.abs(ref).max(initial=0.0)), 1e-30))


@SETTINGS
@given(m=st.integers(1, 40), k=st.integers(1, 20), n=st.integers(1, 20), seed=st.integers(0, 2**31 - 1))
def test_gemm_rows_equals_float64_matmul(workers, m, k, n, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    out = np.full((m, n), np.nan, np.float32)
    linear.gemm_rows(a, b, out)
    close(out, a.astype(np.float64) @ b.astype(np.float64))


@SETTINGS
@given(t=st.integers(1, 40), k=st.integers(1, 20), n=st.integers(1, 20), seed=st.integers(0, 2**31 - 1))
def test_gemm_tn_equals_float64_matmul(workers, t, k, n, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((t, k)).astype(np.float32), rng.standard_normal((t, n)).astype(np.float32)
    out = np.full((k, n), np.nan, np.float32)
    linear.gemm_tn(a, b, out)
    close(out, a.astype(np.float64).T @ b.astype(np.float64))
    linear.gemm_tn(a, b, out)  # a second call (reused partial buffers) gives the same result
    close(out, a.astype(np.float64).T @ b.astype(np.float64))
