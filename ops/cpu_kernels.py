"""The CPU kernels of the numpy backend, in C++ (kernels/cpu/*.cpp).

numpy makes one pass over memory per arithmetic operation, so an op like silu_mul_bwd (sigmoid, products, sums)
streams its operands about ten times; the kernels here make one pass, with an exp the compiler vectorizes. They
cover the elementwise ops of the training step (silu_mul, rope, rmsnorm, adamw and their backward) and attention
forward and backward (its small head_dim-wide products included, which BLAS runs slowly); the linear layers' GEMMs
stay with BLAS. Each kernel exists for float32 and float64, so the ops have a single fast path for both.

The kernels are compiled on first use with the host compiler (`g++ -O3 -march=native`, $CXX to override; the
target CPU with $TILEGRAPH_CPU_MARCH, e.g. `haswell` to build and test the 32-byte-vector branch that an
AVX-512 machine never compiles with -march=native) into
one shared library, cached by a hash of the sources, the flags and this machine's CPU in $TILEGRAPH_CPU_CACHE,
else ~/.cache/tilegraph/cpu (`python -m tilegraph.ops.cpu_kernels` builds it and prints its path). They run on
the calling thread and release the GIL (ctypes), so the ops split rows over ops.parallel's workers as before.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tilegraph.kernels import KERNEL_DIR
from tilegraph.kernels.jit import CXX, cache_dir, compile_to

from tilegraph.errors import ShapeError

SOURCE_DIR = KERNEL_DIR / "cpu"
MARCH = os.environ.get("TILEGRAPH_CPU_MARCH", "native")
CXXFLAGS = ["-std=c++17", "-O3", f"-march={MARCH}", "-mprefer-vector-width=512", "-fopenmp-simd", "-fno-math-errno",
            "-fno-trapping-math", "-fPIC", "-shared", "-Wall"]

# kernel -> its C arguments after the name: p = array pointer, i = int64, d = double (kernels/cpu/*.cpp).
SIGNATURES = {
    "exp": "ppi",
    "silu_mul": "pppi",
    "silu_mul_bwd": "pppppi",
    "gelu": "ppi",
    "gelu_bwd": "pppi",
    "rmsnorm": "pppiid",
    "rmsnorm_bwd": "pppppiid",
    "layernorm": "pppiid",
    "layernorm_bwd": "pppppiid",
    "rope": "ppppiiiiid",
    "adamw": "pppppppi" + "d" * 8,
    # (s, heads, kv_heads, d), scale, (causal, window, dropout key, dropout threshold), 1/(1-p), (item0, item1)
    "attention_fwd": "ppppp" + "iiii" + "d" + "iiii" + "d" + "ii",
    "attention_bwd": "ppppppppp" + "iiii" + "d" + "iiii" + "d" + "ii",
}
_CTYPES = {"p": ctypes.c_void_p, "i": ctypes.c_int64, "d": ctypes.c_double}
_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_functions: dict[tuple[str, np.dtype], Callable] = {}


def _cpu_identity() -> bytes:
    """What -march=native depends on: the CPU model and its feature flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags"))})).encode()
    except OSError:
        return platform.processor().encode()


def library_path() -> Path:
    """The compiled library (built now if this machine has no up-to-date copy)."""
    sources = sorted(SOURCE_DIR.glob("*.cpp")) + sorted(SOURCE_DIR.glob("*.h"))
    h = hashlib.sha256(" ".join([CXX, *CXXFLAGS]).encode())
    h.update(_cpu_identity())
    for f in sources:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    out = cache_dir("cpu", "TILEGRAPH_CPU_CACHE") / f"libtgcpu-{h.hexdigest()[:20]}.so"
    if not out.exists():
        compile_to([CXX, *CXXFLAGS, *(str(f) for f in sources if f.suffix == ".cpp")], out,
                   "the CPU kernels (kernels/cpu)", "for the numpy backend")
    return out


def load() -> ctypes.CDLL:
    """The library, built first if needed. The numpy backend calls this when it prepares a Program, so that a
    missing compiler or a build error is reported before the first step runs, not in the middle of it."""
    global _library
    with _lock:
        if _library is None:
            _library = ctypes.CDLL(str(library_path()))
        return _library


def kernel(name: str, dtype) -> Callable:
    """The C entry point tg_<name>_<f32|f64> for arrays of `dtype` (arguments as in SIGNATURES; pointers as ints,
    e.g. `array.ctypes.data`)."""
    dt = np.dtype(dtype)
    fn = _functions.get((name, dt))
    if fn is None:
        if dt not in _SUFFIX:
            raise ShapeError(f"CPU kernel {name!r} supports float32 and float64, not {dt}")
        fn = getattr(load(), f"tg_{name}_{_SUFFIX[dt]}")
        fn.argtypes = [_CTYPES[k] for k in SIGNATURES[name]]
        fn.restype = None
        _functions[(name, dt)] = fn
    return fn


def contiguous(op: str, **arrays: np.ndarray) -> None:
    """Raise ShapeError unless every array is C-contiguous (the kernels walk flat memory)."""
    for what, a in arrays.items():
        if not a.flags.c_contiguous:
            raise ShapeError(f"op {op!r}: {what} must be a C-contiguous array for the CPU kernel "
                             f"(pass np.ascontiguousarray({what}))")


if __name__ == "__main__":  # pragma: no cover - `make setup` builds the library ahead of the first run
    print(library_path())
