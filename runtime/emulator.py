"""Run a ProgramDescription on the host with the kernel-API emulator (kernels/emu).

`run_program(desc, inputs)` compiles each kernel for the host (cached by a hash of the source, the emulator's
headers, defines and compile-time args, like tt-metal's JIT), converts the numpy inputs to tile layout in the
tensors' data formats (bfloat16 / bfloat8_b / float32, the emulator's own conversion), runs the program in a
child process (one thread per core and kernel) and converts the outputs back.

The emulator runtime itself (kernels/emu/src) is compiled once into `libtgemu.so` + `tg-emu-run`, cached by a
hash of its sources. Cache directory: $TILEGRAPH_EMU_CACHE, else ~/.cache/tilegraph/emu.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tilegraph.kernels import KERNEL_DIR
from tilegraph.kernels.description import (
    TILE,
    TILE_BYTES,
    KernelSpec,
    ProgramDescription,
    cores_of,
    resolve_args,
)
from tilegraph.kernels.jit import CXX, compile_to
from tilegraph.kernels.jit import cache_dir as jit_cache_dir

from tilegraph.errors import KernelError
from tilegraph.perf.counters import ThreadCounters, parse_counters
from tilegraph.tiles import padded_shape

EMU_DIR = KERNEL_DIR / "emu"
KERNEL_CXXFLAGS = ["-std=c++17", "-O1", "-fPIC", "-shared", "-w"]
LIB_CXXFLAGS = ["-std=c++17", "-O2", "-fPIC", "-Wall", "-ftls-model=initial-exec"]
DRAM_BASE = 1 << 20  # first tensor address; tensors are 4 KiB aligned
FORMAT_CODES = {"float32": 0, "bfloat16": 5, "bfloat8_b": 6}
MATH_FIDELITY_CODES = {"LoFi": 0, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}  # tt-llk MathFidelity (llk_defs.h)
# Logical worker core -> NOC0 coordinate: the `functional_workers` of the SoC descriptors in the ttnn 0.81.1 wheel
# (ttnn/tt_metal/soc_descriptors/wormhole_b0_80_arch.yaml, blackhole_140_arch.yaml): the worker columns / rows in
# NOC0 order, skipping the DRAM / Ethernet / ARC / PCIe ones. Logical (x, y) is column x, row y of that list
# (unharvested chips; a card's firmware remaps harvested rows, which is why the ttnn backend asks the device).
# Grids that fit Wormhole B0's 8 x 10 workers use its layout, larger ones (p150's 13 x 10) Blackhole's 14 x 10.
NOC0_WORKERS = {
    "wormhole_b0": ((1, 2, 3, 4, 6, 7, 8, 9), (1, 2, 3, 4, 5, 7, 8, 9, 10, 11)),
    "blackhole": ((1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16), (2, 3, 4, 5, 6, 7, 8, 9, 10, 11)),
}
_lock = threading.Lock()
_lib_cache: dict[str, tuple[Path, ctypes.CDLL]] = {}


def cache_dir() -> Path:
    """$TILEGRAPH_EMU_CACHE, else ~/.cache/tilegraph/emu, else (home not writable) build/emu-cache in the repo."""
    return jit_cache_dir("emu", "TILEGRAPH_EMU_CACHE")


def _hash_files(h, files) -> None:
    for f in sorted(files):
        h.update(str(f.relative_to(EMU_DIR) if f.is_relative_to(EMU_DIR) else f).encode())
        h.update(f.read_bytes())


def _compile(cmd: list[str], out: Path, what: str) -> None:
    compile_to(cmd, out, what, "for the emulator")


def emulator_binaries() -> tuple[Path, ctypes.CDLL]:
    """Build (once per emulator-source hash) libtgemu.so and the tg-emu-run runner; return runner path and lib."""
    h = hashlib.sha256(" ".join([CXX, *LIB_CXXFLAGS]).encode())
    _hash_files(h, [*EMU_DIR.joinpath("src").glob("*"), EMU_DIR / "emu" / "runtime.h"])
    key = h.hexdigest()[:16]
    with _lock:
        if key in _lib_cache:
            return _lib_cache[key]
        d = cache_dir() / f"runtime-{key}"
        d.mkdir(exist_ok=True)
        lib, runner = d / "libtgemu.so", d / "tg-emu-run"
        src = EMU_DIR / "src"
        if not lib.exists():
            _compile([CXX, *LIB_CXXFLAGS, "-shared", str(src / "runtime.cpp"), str(src / "formats.cpp"),
                      str(src / "datapath.cpp"), str(src / "sfpu.cpp"),
                      "-lpthread", "-ldl"], lib, "the emulator runtime")
        if not runner.exists():
            _compile([CXX, "-O2", str(src / "runner_main.cpp"), f"-L{d}", "-ltgemu", f"-Wl,-rpath,{d}",
                      "-Wl,--no-as-needed", "-lpthread", "-ldl"], runner, "the emulator runner")
        cdll = ctypes.CDLL(str(lib))
        for name in ("tgemu_pack_tiles", "tgemu_unpack_tiles"):
            getattr(cdll, name).restype = ctypes.c_int
            getattr(cdll, name).argtypes = [ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p]
        _lib_cache[key] = (runner, cdll)
        return runner, cdll


def kernel_source_path(source: str) -> Path:
    p = Path(source)
    return p if p.is_absolute() else KERNEL_DIR / p


def kernel_defines(kernel: KernelSpec, desc: ProgramDescription) -> dict[str, str]:
    """Defines a kernel is compiled with: the JIT's generated ones (compute config) plus the kernel's own."""
    cc = desc.compute_config
    fid = MATH_FIDELITY_CODES[cc.math_fidelity]
    base = {"TILEGRAPH_EMU": "1", "KERNEL_BUILD": "1"}
    if kernel.role == "compute":
        base.update(DST_ACCUM_MODE="true" if cc.fp32_dest_acc_en else "false", MATH_FIDELITY=str(fid),
                    APPROX="true" if cc.math_approx_mode else "false")
    base.update({k: str(v) for k, v in kernel.defines.items()})
    return base


_header_digest: dict[str, object] = {"checked": -1e9, "key": None, "digest": b""}
_kernel_memo: dict[tuple, Path] = {}


def _emu_headers_digest() -> bytes:
    """Digest of the emulator's kernel-side headers; re-checked (file mtimes) at most once a second per process."""
    now = time.monotonic()
    if now - _header_digest["checked"] < 1.0:
        return _header_digest["digest"]
    files = sorted(map(str, [*EMU_DIR.joinpath("emu").glob("*.h"), *EMU_DIR.joinpath("api").rglob("*.h")]))
    key = tuple((f, st.st_mtime_ns, st.st_size) for f in files for st in [os.stat(f)])
    if key != _header_digest["key"]:
        h = hashlib.sha256()
        _hash_files(h, [Path(f) for f in files])
        _header_digest.update(key=key, digest=h.digest())
    _header_digest["checked"] = now
    return _header_digest["digest"]


def compile_kernel(kernel: KernelSpec, desc: ProgramDescription) -> Path:
    """Compile one kernel TU into a shared object (cached)."""
    src = kernel_source_path(kernel.source)
    if not src.is_file():
        raise KernelError(f"kernel source {kernel.source!r} not found (looked at {src})")
    ct_args = resolve_args(kernel.compile_time_args, desc, {})
    defines = kernel_defines(kernel, desc)
    flags = [*KERNEL_CXXFLAGS, f"-I{EMU_DIR}", f"-I{KERNEL_DIR}", f"-I{src.parent}",
             f"-DKERNEL_COMPILE_TIME_ARGS={','.join(map(str, ct_args))}",
             *[f"-D{k}={v}" for k, v in sorted(defines.items())]]
    local = [src, *src.parent.glob("*.h"), *src.parent.glob("*.hpp")]
    memo_key = (tuple(flags), _emu_headers_digest(), *((str(f), f.stat().st_mtime_ns) for f in local))
    if memo_key in _kernel_memo and _kernel_memo[memo_key].exists():
        return _kernel_memo[memo_key]
    h = hashlib.sha256(" ".join([CXX, *flags]).encode())
    _hash_files(h, local)
    h.update(memo_key[1])
    out = cache_dir() / "kernels" / f"{src.stem}-{h.hexdigest()[:20]}.so"
    _kernel_memo[memo_key] = out
    if not out.exists():
        out.parent.mkdir(exist_ok=True)
        _compile([CXX, *flags, str(src)], out, f"kernel {kernel.source}")
    return out


def noc0_layout(grid: tuple[int, int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The NOC0 worker columns and rows the emulator uses for a program on `grid` (see NOC0_WORKERS)."""
    for xs, ys in NOC0_WORKERS.values():
        if grid[0] <= len(xs) and grid[1] <= len(ys):
            return xs, ys
    raise KernelError(f"grid {grid} is larger than any worker grid the emulator knows "
                      f"({', '.join(f'{a}: {len(x)}x{len(y)}' for a, (x, y) in NOC0_WORKERS.items())})")


def noc0_xy(grid: tuple[int, int]):
    """Logical core -> NOC0 (x, y) on `grid`: the emulator's resolution of the NocX / NocY placeholders."""
    xs, ys = noc0_layout(grid)
    return lambda core: (xs[core[0]], ys[core[1]])


def _tilize(x: np.ndarray, padded: tuple[int, ...]) -> np.ndarray:
    buf = np.zeros(padded, np.float32)
    buf[tuple(slice(0, d) for d in x.shape)] = x
    *_, h, w = padded
    t = buf.reshape(-1, h // TILE, TILE, w // TILE, TILE).transpose(0, 1, 3, 2, 4)
    return np.ascontiguousarray(t.reshape(-1, TILE * TILE))


def _untilize(tiles: np.ndarray, shape: tuple[int, ...], padded: tuple[int, ...]) -> np.ndarray:
    *_, h, w = padded
    x = tiles.reshape(-1, h // TILE, w // TILE, TILE, TILE).transpose(0, 1, 3, 2, 4).reshape(padded)
    return np.ascontiguousarray(x[tuple(slice(0, d) for d in shape)])


def to_tile_bytes(x: np.ndarray, dtype: str) -> bytes:
    """Tilize a (..., H, W) array (padded to 32) and convert it to `dtype`'s tile bytes (face order)."""
    _, lib = emulator_binaries()
    x = np.asarray(x, np.float32)
    padded = padded_shape(x.shape)
    tiles = _tilize(x, padded)
    out = np.empty(len(tiles) * TILE_BYTES[dtype], np.uint8)
    lib.tgemu_pack_tiles(FORMAT_CODES[dtype], tiles.ctypes.data, len(tiles), out.ctypes.data)
    return out.tobytes()


def from_tile_bytes(data: bytes, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of to_tile_bytes: decode tiles of `dtype` and untilize to `shape` (float32)."""
    _, lib = emulator_binaries()
    padded = padded_shape(shape)
    ntiles = len(data) // TILE_BYTES[dtype]
    src = np.frombuffer(data, np.uint8)
    tiles = np.empty((ntiles, TILE * TILE), np.float32)
    lib.tgemu_unpack_tiles(FORMAT_CODES[dtype], src.ctypes.data, ntiles, tiles.ctypes.data)
    return _untilize(tiles, tuple(shape), padded)


def quantize(x: np.ndarray, dtype: str) -> np.ndarray:
    """Round-trip through a data format: what a tensor of `dtype` holds on the device."""
    x = np.asarray(x, np.float32)
    return from_tile_bytes(to_tile_bytes(x, dtype), dtype, x.shape)


def run_program(desc: ProgramDescription, inputs: dict[str, np.ndarray], timeout_s: float = 120.0
                ) -> dict[str, np.ndarray]:
    """Run `desc` in the emulator on `inputs` (name -> array of the tensor's logical shape); return its outputs."""
    return run_program_counted(desc, inputs, timeout_s)[0]


def run_program_counted(desc: ProgramDescription, inputs: dict[str, np.ndarray], timeout_s: float = 120.0
                        ) -> tuple[dict[str, np.ndarray], list[ThreadCounters]]:
    """run_program, plus what every (core, kernel) thread did (tilegraph.perf.counters), for the performance model."""
    runner, _ = emulator_binaries()
    tensors = list(desc.tensors)
    wanted = {t.name for t in tensors if t.role == "input"}
    if set(inputs) != wanted:
        raise KernelError(f"program {desc.name!r}: inputs {sorted(inputs)} do not match its input tensors "
                          f"{sorted(wanted)}")
    addresses, addr = {}, DRAM_BASE
    for t in tensors:
        addresses[t.name] = addr
        addr += -(-t.nbytes // 4096) * 4096
    if addr >= 2**32:
        raise KernelError(f"program {desc.name!r}: tensors need {addr} bytes of DRAM, more than the 4 GiB emulated")

    kernels = list(desc.kernels)
    with ThreadPoolExecutor(max_workers=2) as pool:  # two compiles at a time when the cache is cold
        objects = list(pool.map(lambda k: compile_kernel(k, desc), kernels))

    cc = desc.compute_config
    with tempfile.TemporaryDirectory(prefix="tgemu-", dir=_tmp_root()) as tmp:
        tmpd = Path(tmp)
        job = [f"program {desc.name.replace(' ', '_')}", f"fp32_dest_acc {int(cc.fp32_dest_acc_en)}",
               f"math_approx {int(cc.math_approx_mode)}", f"dst_full_sync {int(cc.dst_full_sync_en)}",
               f"math_fidelity {MATH_FIDELITY_CODES[cc.math_fidelity]}",
               "unpack_to_dest_fp32" + "".join(f" {cb}" for cb in cc.unpack_to_dest_fp32),
               f"timeout_s {timeout_s}"]
        job.append(f"perf\t{tmpd / 'perf.txt'}")
        for i, t in enumerate(tensors):
            in_path, out_path = "-", "-"
            if t.role == "input":
                x = np.asarray(inputs[t.name])
                if tuple(x.shape) != t.shape:
                    raise KernelError(f"program {desc.name!r}: input {t.name!r} has shape {x.shape}, "
                                      f"expected {t.shape}")
                in_path = str(tmpd / f"in{i}.bin")
                Path(in_path).write_bytes(to_tile_bytes(x, t.dtype))
            else:
                out_path = str(tmpd / f"out{i}.bin")
            job.append(f"tensor {t.name} {addresses[t.name]} {t.dtype} {t.num_pages} {t.page_size}\t"
                       f"{in_path}\t{out_path}")
        xs, ys = noc0_layout(desc.grid)
        to_noc = noc0_xy(desc.grid)
        job.append("worker_noc_x " + " ".join(map(str, xs[:desc.grid[0]])))
        job.append("worker_noc_y " + " ".join(map(str, ys[:desc.grid[1]])))
        for x, y in desc.cores:
            job.append(f"core {x} {y} {' '.join(map(str, to_noc((x, y))))}")
        for sem_id, sem in enumerate(desc.semaphores):
            for x, y in cores_of(sem.core_ranges):
                job.append(f"sem {x} {y} {sem_id} {sem.initial_value}")
        for cb in desc.cbs:
            for x, y in cores_of(cb.core_ranges):
                job.append(f"cb {x} {y} {cb.index} {cb.data_format} {cb.num_pages} {cb.page_size}")
        for k, so in zip(kernels, objects):  # tab-separated: paths may contain spaces
            job.append(f"kernel\t{so}\t{k.role}:{k.source}")
        for ki, k in enumerate(kernels):
            for x, y in k.cores:
                args = resolve_args(k.runtime_args.get((x, y), ()), desc, addresses, to_noc)
                job.append(f"run {ki} {x} {y} {len(args)} {' '.join(map(str, args))}".rstrip())
        (tmpd / "job.txt").write_text("\n".join(job) + "\n")
        err = tmpd / "error.txt"
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([str(runner), str(tmpd / "job.txt"), str(err)], check=False,
                                  capture_output=True, text=True,
                                  timeout=timeout_s + 30)
        except subprocess.TimeoutExpired as e:
            raise KernelError(f"program {desc.name!r}: the emulator did not finish in {timeout_s + 30:.0f} s") from e
        if proc.stderr:  # DPRINT output of the kernels
            sys.stderr.write(proc.stderr)
        if os.environ.get("TILEGRAPH_EMU_TIMING"):
            print(f"[emu] {desc.name}: runner {time.perf_counter() - t0:.3f} s")
        if proc.returncode != 0:
            msg = err.read_text() if err.exists() else ""
            if not msg:
                msg = f"emulator exited with status {proc.returncode}" + (
                    f" (signal {-proc.returncode}: a kernel crashed, e.g. an out-of-range L1 pointer)"
                    if proc.returncode < 0 else "")
            raise KernelError(f"program {desc.name!r}: {msg}")
        outputs = {}
        for i, t in enumerate(tensors):
            if t.role == "output":
                outputs[t.name] = from_tile_bytes((tmpd / f"out{i}.bin").read_bytes(), t.dtype, t.shape)
        return outputs, parse_counters((tmpd / "perf.txt").read_text())


def _tmp_root() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def clear_cache() -> None:
    """Delete every cached emulator build."""
    shutil.rmtree(cache_dir(), ignore_errors=True)
