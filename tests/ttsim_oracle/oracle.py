"""The bit-exact oracle for the emulator's datapath: ttsim's own FPU routines next to kernels/emu/src/datapath.cpp.

ttsim (Tenstorrent's simulator, Apache-2.0) sits read-only at ../shared/ttsim. `build_oracle` copies it into
build/ttsim_oracle/, builds it with its own make.py, and compiles harness.cpp (which includes ttsim's
src/tensix.cpp unmodified) into liboracle.so, cached by the sources' hash. Both sides expose one batched C entry
point with the same op codes, so a comparison is two ctypes calls over the same arrays.

    .venv/bin/python tests/ttsim_oracle/oracle.py [cases-per-mode]   # mismatch table per operation and mode
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("harness.cpp")
OPS = {"elwadd": 0, "elwsub": 1, "elwmul": 2, "mvmul": 3, "unpack_bfp8": 4, "matmul_tile": 5}
FIDELITY_PHASES = {"LoFi": 1, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}


def find_ttsim() -> Path | None:
    """ttsim's source tree: $TILEGRAPH_TTSIM, else shared/ttsim beside the repository or a parent of it."""
    env = os.environ.get("TILEGRAPH_TTSIM")
    candidates = [Path(env)] if env else [p / "shared" / "ttsim" for p in [REPO, *REPO.parents]]
    for c in candidates:
        if (c / "src" / "tensix.cpp").is_file() and (c / "make.py").is_file():
            return c
    return None


def build_oracle(ttsim: Path) -> Path:
    """liboracle.so built from a writable copy of `ttsim` (seconds when cold, nothing when cached)."""
    h = hashlib.sha256(HARNESS.read_bytes())
    for f in sorted((ttsim / "src").glob("*")):
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    key = h.hexdigest()[:16]
    root = REPO / "build" / "ttsim_oracle"
    lib = root / f"liboracle-{key}.so"
    if lib.exists():
        return lib
    tree = root / f"ttsim-{key}"
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(ttsim, tree, ignore=shutil.ignore_patterns("_out", ".git"))
    for p in [tree, *tree.rglob("*")]:
        p.chmod(p.stat().st_mode | 0o200)
    run = lambda cmd, cwd: subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    try:
        run([sys.executable, "make.py", "src/_out/release_wh/libttsim.so"], tree)
        out = tree / "src" / "_out"
        objs = [str(o) for o in sorted((out / "release_wh").glob("*.o")) if o.name != "tensix.o"]
        tmp = lib.with_suffix(".tmp")
        run(["g++", "-std=c++20", "-O2", "-fPIC", "-shared", "-w", "-DTT_ARCH_VERSION=0", "-DNUM_CHIPS=1",
             "-DNUM_MMIO_CHIPS=1", f"-I{tree / 'src'}", f"-I{out}", f"-I{out / 'wh'}", str(HARNESS), *objs,
             "-o", str(tmp)], root)
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"building the ttsim oracle failed: {' '.join(e.cmd)}\n{e.stdout}\n{e.stderr}") from None
    tmp.replace(lib)
    return lib


_P = ctypes.c_void_p
_SIG = [ctypes.c_int, ctypes.c_uint64, _P, _P, _P, ctypes.c_int, ctypes.c_uint32, _P]


class Sides:
    """ttsim's routines (`oracle`) and ours (`emu`), each callable as f(op, a, b, dst, fp32, mode) -> uint32 array."""

    def __init__(self, oracle_lib: Path):
        from tilegraph.runtime.emulator import emulator_binaries

        self.oracle_lib = oracle_lib
        self._oracle = ctypes.CDLL(str(oracle_lib)).oracle_batch
        self._emu = emulator_binaries()[1].tgemu_dp_batch
        for f in (self._oracle, self._emu):
            f.restype, f.argtypes = None, _SIG

    @staticmethod
    def _call(f, op, a, b, dst, fp32, mode):
        a, b, dst = (np.ascontiguousarray(x, np.uint32) for x in (a, b, dst))
        out = np.zeros(dst.shape[0], np.uint32)
        f(OPS[op], dst.shape[0], a.ctypes.data, b.ctypes.data, dst.ctypes.data, int(fp32), int(mode), out.ctypes.data)
        return out

    def oracle(self, *args):
        return self._call(self._oracle, *args)

    def emu(self, *args):
        return self._call(self._emu, *args)


# ---------------------------------------------------------------------------------------------- cases
SPECIAL_EXPS = np.array([0, 1, 2, 126, 127, 128, 253, 254, 255])
TIE_MANTISSAS = np.array([0, 0x400000, 0x7FE000, 0x7FFFFF, 0x001000, 0x002000, 0x003000, 0x7F0000, 0x010000])


def fp32_patterns(rng: np.random.Generator, n: int, base_exp: int, spread: int, special: float) -> np.ndarray:
    """n fp32 bit patterns: exponents base +- spread, a `special` fraction of extreme exponents (zero/denormal,
    max, inf/NaN patterns) and of tie-prone mantissas (few low bits set, all ones, exact halves)."""
    sign = rng.integers(0, 2, n, dtype=np.uint64)
    exp = np.clip(base_exp + rng.integers(-spread, spread + 1, n), 0, 255).astype(np.uint64)
    man = rng.integers(0, 1 << 23, n, dtype=np.uint64)
    pick = rng.random(n) < special
    exp[pick] = rng.choice(SPECIAL_EXPS, int(pick.sum()))
    pick = rng.random(n) < special
    man[pick] = rng.choice(TIE_MANTISSAS, int(pick.sum()))
    few = rng.random(n) < special  # a couple of mantissa bits: frequent exact ties after alignment
    man[few] &= np.uint64(0x7C0000)
    return ((sign << 31) | (exp << 23) | man).astype(np.uint32)


def src_operands(bits: np.ndarray, fmt: str) -> np.ndarray:
    """19-bit source-register data of a format: tf32 keeps 10 mantissa bits, bf16 (and bfp8_b) 7."""
    mask = 0xFFFFE000 if fmt == "tf32" else 0xFFFF0000
    return (bits & np.uint32(mask)) >> np.uint32(13)


def dst_values(bits: np.ndarray, fp32_dst: bool) -> np.ndarray:
    return bits if fp32_dst else bits & np.uint32(0xFFFF0000)


MODES = [(op, fmt, fp32, mode) for op in ("elwadd", "elwsub") for fmt in ("tf32", "bf16") for fp32 in (False, True)
         for mode in (0, 1)] + [(op, fmt, fp32, fid) for op in ("elwmul", "mvmul") for fmt in ("tf32", "bf16")
                                for fp32 in (False, True) for fid in FIDELITY_PHASES]


def compare(sides: Sides, op: str, fmt: str, fp32: bool, mode, rng: np.random.Generator, n: int,
            base_exp: int = 127, spread: int = 12, special: float = 0.1) -> tuple[int, int, str]:
    """(cases, mismatches, first mismatch) for one operation and mode over n random data.

    elwmul / mvmul run a whole fidelity sequence (phases 0..k-1 accumulating into DST, as the LLK issues them),
    starting from a random DST datum; both sides are fed the same intermediate DST each phase (ttsim's), so a
    mismatch is attributed to the phase that made it."""
    lanes = 16 if op == "mvmul" else 1
    a = src_operands(fp32_patterns(rng, n * lanes, base_exp, spread, special), fmt)
    b = src_operands(fp32_patterns(rng, n * lanes, base_exp, spread + 8, special), fmt)
    dst = dst_values(fp32_patterns(rng, n, base_exp + 2, spread, special), fp32)
    phases = range(FIDELITY_PHASES[mode]) if op in ("elwmul", "mvmul") else [mode]
    bad, first = np.zeros(n, bool), ""
    for ph in phases:
        want = sides.oracle(op, a, b, dst, fp32, ph)
        got = sides.emu(op, a, b, dst, fp32, ph)
        diff = want != got
        if diff.any() and not first:
            i = int(np.argmax(diff))
            first = (f"a={a[i * lanes]:#07x} b={b[i * lanes]:#07x} dst={dst[i]:#010x} phase {ph}: "
                     f"ttsim {want[i]:#010x}, emu {got[i]:#010x}")
        bad |= diff
        dst = want
    return n, int(bad.sum()), first


def compare_matmul_tile(sides: Sides, fmt: str, fp32: bool, fidelity: str, transpose: bool,
                        rng: np.random.Generator, tiles: int = 2, spread: int = 12, special: float = 0.05):
    """Whole tiles through the emulator's matmul_tile against ttsim's MVMUL applied in the LLK's order (fidelity
    phases outer, the k 0..15 face product then k 16..31 inner, each MVMUL into DST): (data, mismatches, first)."""
    bad, first = 0, ""
    for _ in range(tiles):
        in0 = src_operands(fp32_patterns(rng, 1024, 127, spread, special), fmt).reshape(32, 32)
        in1 = src_operands(fp32_patterns(rng, 1024, 127, spread, special), fmt).reshape(32, 32)
        dst0 = dst_values(fp32_patterns(rng, 1024, 129, spread, special), fp32)
        rhs = in1.T if transpose else in1  # rhs[k, c]
        want = dst0.copy()
        for ph in range(FIDELITY_PHASES[fidelity]):
            for kf in range(2):
                ks = slice(16 * kf, 16 * kf + 16)
                a = np.repeat(rhs[ks, :].T[None, :, :], 32, 0).reshape(1024, 16)  # column c of in1, per (r, c)
                b = np.repeat(in0[:, ks][:, None, :], 32, 1).reshape(1024, 16)   # row r of in0, per (r, c)
                want = sides.oracle("mvmul", a.ravel(), b.ravel(), want, fp32, ph)
        mode = {"LoFi": 0, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}[fidelity] | (int(transpose) << 8)
        got = sides.emu("matmul_tile", in0.ravel(), in1.ravel(), dst0, fp32, mode)
        diff = want != got
        if diff.any() and not first:
            i = int(np.argmax(diff))
            first = f"element {divmod(i, 32)}: ttsim {want[i]:#010x}, emu {got[i]:#010x}"
        bad += int(diff.sum())
    return tiles * 1024, bad, first


def compare_bfp8_unpack(sides: Sides) -> tuple[int, int, str]:
    """Every (byte, shared exponent) pair."""
    byte, exp = (x.ravel().astype(np.uint32) for x in np.meshgrid(np.arange(256), np.arange(256)))
    want = sides.oracle("unpack_bfp8", byte, exp, np.zeros_like(byte), False, 0)
    got = sides.emu("unpack_bfp8", byte, exp, np.zeros_like(byte), False, 0)
    diff = want != got
    first = "" if not diff.any() else f"byte {byte[np.argmax(diff)]:#04x} exp {exp[np.argmax(diff)]}"
    return byte.size, int(diff.sum()), first


def report(cases_per_mode: int = 20000) -> int:
    ttsim = find_ttsim()
    if ttsim is None:
        print("ttsim sources not found (set TILEGRAPH_TTSIM or put them at ../shared/ttsim)")
        return 2
    sides = Sides(build_oracle(ttsim))
    rng = np.random.default_rng(0)
    total_bad = 0
    print(f"{'operation':12s} {'src':5s} {'DST':5s} {'mode':7s} {'cases':>8s} {'mismatches':>10s}")
    for op, fmt, fp32, mode in MODES:
        n = cases_per_mode // (8 if op == "mvmul" else 1)
        cases = bad = 0
        for base, spread, special in ((127, 12, 0.1), (127, 40, 0.3), (3, 6, 0.2), (250, 6, 0.2)):
            c, b, first = compare(sides, op, fmt, fp32, mode, rng, n // 4, base, spread, special)
            cases, bad = cases + c, bad + b
        total_bad += bad
        m = {0: "no-acc", 1: "acc"}[mode] if op in ("elwadd", "elwsub") else mode
        print(f"{op:12s} {fmt:5s} {'fp32' if fp32 else 'bf16':5s} {m:7s} {cases:8d} {bad:10d}" + (f"  {first}" if bad else ""))
    for fmt in ("tf32", "bf16"):
        for fp32 in (False, True):
            for fid in FIDELITY_PHASES:
                c, b, first = compare_matmul_tile(sides, fmt, fp32, fid, fid == "HiFi4", rng, max(1, cases_per_mode // 8192))
                total_bad += b
                print(f"{'matmul_tile':12s} {fmt:5s} {'fp32' if fp32 else 'bf16':5s} {fid:7s} {c:8d} {b:10d}"
                      + (f"  {first}" if b else ""))
    c, b, first = compare_bfp8_unpack(sides)
    total_bad += b
    print(f"{'unpack_bfp8':12s} {'-':5s} {'-':5s} {'all':7s} {c:8d} {b:10d}" + (f"  {first}" if b else ""))
    print(f"total mismatches: {total_bad}")
    return 1 if total_bad else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(report(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
