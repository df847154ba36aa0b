"""The CPU kernels of the numpy backend (kernels/cpu, loaded by tilegraph.ops.cpu_kernels): the exp they share,
special values, and how the library is built and rejected. The ops' results against the float64 references are
checked in test_ops_numpy_fast.py (every fast path there runs on these kernels).

exp tolerance: float32 exp against float64 exp within 2 ulp of the float32 result. The polynomial is Cephes'
expf (about 1 ulp); its range reduction adds at most a rounding. Anything wrong in the reduction or the 2^n
scaling is off by factors of 2, i.e. millions of ulp.
"""

import math
from pathlib import Path

import numpy as np
import pytest
from tilegraph.ops import cpu_kernels, get_op
from tilegraph.ops.base import TensorType

from tilegraph.errors import KernelError, SetupError, ShapeError

FLT_MIN_LOG, FLT_MAX_LOG = float(np.log(np.finfo(np.float32).tiny)), float(np.log(np.finfo(np.float32).max))


def kernel_exp(x: np.ndarray) -> np.ndarray:
    y = np.empty_like(x)
    cpu_kernels.kernel("exp", x.dtype)(x.ctypes.data, y.ctypes.data, x.size)
    return y


def test_exp_within_2_ulp_over_the_whole_normal_range():
    x = np.linspace(FLT_MIN_LOG + 1e-4, FLT_MAX_LOG - 1e-4, 2_000_003, dtype=np.float32)
    got = kernel_exp(x).astype(np.float64)
    want = np.exp(x.astype(np.float64))
    ulp = np.spacing(want.astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(got - want) <= 2 * ulp)


def test_exp_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 89.0, 1e30, -88.0, -1e30], np.float32)
    got = kernel_exp(x)
    assert got[0] == 1.0 and got[1] == 1.0
    assert got[2] == np.inf and got[5] == np.inf and got[6] == np.inf  # overflow is inf, as np.exp
    assert got[3] == 0.0 and got[7] == 0.0 and got[8] == 0.0  # below FLT_MIN: exactly 0, no denormals
    assert np.isnan(got[4])


def test_exp_in_float64_is_libm():
    """float64 (ground-truth runs) calls libm per element: as exact as math.exp, bit for bit."""
    x = np.linspace(-700, 700, 10_001)
    np.testing.assert_array_equal(kernel_exp(x), [math.exp(v) for v in x])


def nan_in(a: np.ndarray, where: tuple) -> np.ndarray:
    a = a.copy()
    a[where] = np.nan
    return a


def run_op(op, inputs, attrs):
    opdef = get_op(op)
    attrs = {**opdef.attrs, **attrs}
    outs = [np.zeros(t.shape, np.float32) for t in opdef.infer([TensorType(a.shape, "float32") for a in inputs], attrs)]
    opdef.numpy_into(inputs, outs, attrs)
    return outs[0]


def test_a_nan_input_reaches_exactly_the_outputs_that_read_it():
    """The trainer stops on a NaN loss; a kernel that dropped NaNs (a max or clamp that skips them) would hide a
    diverged step, and one that spread them would blame the wrong rows."""
    rng = np.random.default_rng(0)

    def normal(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    # attention, 2 heads of 16: key 0 of head 0 is read by every query row of head 0, by none of head 1
    o = run_op("attention", [normal(1, 8, 32), nan_in(normal(1, 8, 32), (0, 0, 3)), normal(1, 8, 32)],
               {"heads": 2, "kv_heads": 2})
    assert np.isnan(o[..., :16]).all() and np.isfinite(o[..., 16:]).all()
    y = run_op("silu_mul", [nan_in(normal(4, 32), (2, 5)), np.ones((4, 32), np.float32)], {})
    assert np.argwhere(np.isnan(y)).tolist() == [[2, 5]]
    y = run_op("rmsnorm", [nan_in(normal(4, 32), (1, 0)), np.ones(32, np.float32)], {"eps": 1e-5})
    assert np.isnan(y[1]).all() and np.isfinite(y[[0, 2, 3]]).all()
    y = run_op("rope", [nan_in(normal(1, 4, 32), (0, 2, 1))], {"heads": 2})  # rotates the pair (1, 9) of head 0
    assert np.argwhere(np.isnan(y)).tolist() == [[0, 2, 1], [0, 2, 9]]


def test_non_contiguous_inputs_are_refused_with_the_fix():
    x = np.ones((8, 64), np.float32)[:, ::2]
    out = np.empty((8, 32), np.float32)
    with pytest.raises(ShapeError, match=r"silu_mul.*C-contiguous.*ascontiguousarray"):
        get_op("silu_mul").numpy_into([x, x], [out], {})


def test_unsupported_dtype_is_refused():
    with pytest.raises(ShapeError, match="float32 and float64, not float16"):
        cpu_kernels.kernel("silu_mul", np.float16)


def kernel_sources(tmp_path, monkeypatch, name: str, text: str) -> Path:
    """A one-file kernel source folder and an empty cache, in place of kernels/cpu and the user's cache."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / name).write_text(text)
    monkeypatch.setattr(cpu_kernels, "SOURCE_DIR", src)
    monkeypatch.setenv("TILEGRAPH_CPU_CACHE", str(tmp_path / "cache"))
    return src


def test_the_library_is_cached_and_rebuilt_when_a_source_changes(tmp_path, monkeypatch):
    src = kernel_sources(tmp_path, monkeypatch, "one.cpp", 'extern "C" int tg_one() { return 1; }\n')
    first = cpu_kernels.library_path()
    assert first.exists() and first.parent == tmp_path / "cache"
    assert cpu_kernels.library_path() == first  # cached: same file, not rebuilt
    (src / "one.cpp").write_text('extern "C" int tg_one() { return 2; }\n')
    second = cpu_kernels.library_path()
    assert second != first and second.exists()


def test_a_compile_error_names_the_kernels_and_the_compiler_message(tmp_path, monkeypatch):
    kernel_sources(tmp_path, monkeypatch, "broken.cpp", "this is not C++;\n")
    with pytest.raises(KernelError, match=r"CPU kernels \(kernels/cpu\) failed to compile for the numpy backend"
                                          r"(.|\n)*broken\.cpp"):
        cpu_kernels.library_path()
    assert not list((tmp_path / "cache").glob("*.so")) and not list((tmp_path / "cache").glob("*.tmp"))


def test_a_missing_compiler_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_kernels, "CXX", str(tmp_path / "no-such-g++"))
    monkeypatch.setenv("TILEGRAPH_CPU_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SetupError, match="C\\+\\+ compiler .*no-such-g\\+\\+.* was not found; install g\\+\\+ or set CXX"):
        cpu_kernels.library_path()


def test_every_kernel_in_the_signature_table_exists_in_both_precisions():
    for name in cpu_kernels.SIGNATURES:
        for dtype in (np.float32, np.float64):
            assert callable(cpu_kernels.kernel(name, dtype))
    assert Path(cpu_kernels.library_path()).exists()
