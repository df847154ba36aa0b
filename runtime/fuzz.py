"""Fuzz the custom-kernel ops against their float64 numpy references (`tilegraph fuzz`).

A case is a small JSON-able dict (shapes, flags, device data format, core grid, value scale and a value seed);
`make_inputs` turns it into arrays deterministically, so a saved case reproduces exactly. hypothesis draws cases,
and on a failure shrinks to a minimal one, which is saved (JSON + the inputs as .npz) for `--replay`.

Tolerances (per element, |got - ref| <= bound). The reference is float64 on the inputs *as the device holds
them* (quantized to bfloat16 / bfloat8_b with the emulator's conversion, bit-exact with ttnn's), so input
quantization is not counted as kernel error and bfloat8_b needs no looser output bound. What remains:
- output rounding: outputs are bfloat16 (8 significant bits), round-to-nearest-even errs by at most half an ulp,
  i.e. 2^-8 relative (unit roundoff); we allow 2^-7 (2x);
- fp32 accumulation in DST (fp32_dest_acc_en) and fp32 intermediates: a length-K dot product of bf16 values
  (exact products) errs by at most ~K * 2^-24 * sum|terms|; we allow K * 2^-22 * sum|terms| (4x);
- FPU operands: the matrix engine reads its source registers as TF32 (10 mantissa bits, unit roundoff 2^-11), so
  an fp32 intermediate fed to matmul / reduce / broadcast ops (squares and rstd in rmsnorm; scores, P, running max
  and sum in attention) is rounded to 2^-11 relative each time: we allow FPU_UNIT = 2^-10 (2x) per such pass;
- SFPU functions (exp, rsqrt, recip, log, silu) in the emulator are fp32-accurate (~2^-23 relative), covered above.
Attention's lse is stored in float32: bound 2^-16 * (1 + |lse|) + S * 2^-22 (fp32 sums of S terms, 4x margin).
The numpy backend (float32 fast paths) is held to the same form with 2^-20 in place of the bf16 rounding term.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tilegraph.kernels.registry import KERNEL_OPS, DeviceOptions, get_kernel_op
from tilegraph.ops import get_op
from tilegraph.runtime.kernel_ops import run_kernel_op

from tilegraph.errors import DataError, ShapeError, TilegraphError

BACKENDS = ("emu", "numpy", "ttnn")
DTYPES = ("bfloat16", "bfloat8_b")
OUT_ROUNDING = {"emu": 2.0**-7, "ttnn": 2.0**-7, "numpy": 2.0**-20}
ACCUM_UNIT = 2.0**-22  # 4x the fp32 unit roundoff per accumulated term
FPU_UNIT = 2.0**-10  # 2x the TF32 unit roundoff: one fp32 operand through the matrix engine


# -----------------------------------------------------------------------------------------------------------
# Cases
# -----------------------------------------------------------------------------------------------------------
def case_strategy(op: str, small: bool = False):
    """hypothesis strategy of case dicts for `op` (small shapes, not multiples of 32 included).

    small=True keeps attention to one batch and sequences up to 100 (the CI fuzz, ~0.3 s per case)."""
    from hypothesis import strategies as st

    common = {
        "dtype": st.sampled_from(DTYPES),
        "grid": st.tuples(st.integers(1, 3), st.integers(1, 2)),
        "scale": st.sampled_from([0.01, 1.0, 30.0]),
        "seed": st.integers(0, 2**31 - 1),
    }
    if op in KERNEL_OPS:
        return KERNEL_OPS[op].case_strategy(common, small)
    raise ShapeError(f"fuzz: op {op!r} has no custom kernel to fuzz; choose one of {', '.join(KERNEL_OPS)}")


def make_inputs(op: str, case: dict) -> tuple[list[np.ndarray], dict, DeviceOptions]:
    """(inputs as float32, op attrs, device options) for a case; deterministic in case['seed']."""
    rng = np.random.default_rng(case["seed"])
    s = float(case["scale"])

    def randn(*shape):
        return (rng.standard_normal(shape) * s).astype(np.float32)

    grid = tuple(case["grid"])
    if op in KERNEL_OPS:
        return KERNEL_OPS[op].make_inputs(case, rng, randn, grid)
    raise ShapeError(f"fuzz: unknown op {op!r}")


# -----------------------------------------------------------------------------------------------------------
# Reference, bounds, comparison
# -----------------------------------------------------------------------------------------------------------
def device_values(inputs: list[np.ndarray], op: str, dtype: str, backend: str) -> list[np.ndarray]:
    """The inputs as the backend holds them: quantized to the device format on kernel backends."""
    if backend == "numpy":
        return inputs
    from tilegraph.runtime.emulator import quantize

    # Each input in its device format (KernelOp.input_formats). quantize works on the tiled 2-D view (shared
    # exponents run along rows of a face), as the device tensor is laid out.
    fmts = get_kernel_op(op).input_formats(dtype, len(inputs))
    return [quantize(a.reshape(-1, a.shape[-1]), f).reshape(a.shape) for a, f in zip(inputs, fmts)]


def reference(op: str, inputs: list[np.ndarray], attrs: dict) -> list[np.ndarray]:
    """float64 ground truth of what the kernels compute (KernelOp.reference)."""
    return get_kernel_op(op).reference([a.astype(np.float64) for a in inputs], attrs)


def error_bounds(op: str, inputs: list[np.ndarray], attrs: dict, refs: list[np.ndarray], backend: str):
    """Per-element allowed |error| for each output (see the module docstring for the derivation; the formula of
    each op is its KernelOp.error_bounds, kernels/<op>/program.py)."""
    return get_kernel_op(op).error_bounds([a.astype(np.float64) for a in inputs], attrs, refs, backend)


def numpy_backend_outputs(op: str, inputs: list[np.ndarray], attrs: dict) -> list[np.ndarray]:
    """What the numpy backend computes: the op's float32 fast path (numpy_into) when it has one, else its
    reference in float32 (rmsnorm with a residual adds it first, as the fused kernel does)."""
    from tilegraph.ops.base import TensorType

    impl = get_op(op)
    full_attrs = {**impl.attrs, **attrs}

    def run(xs):
        if impl.numpy_into is None:
            return impl.reference(xs, full_attrs)
        types = impl.infer([TensorType(a.shape, "float32") for a in xs], full_attrs)
        outputs = [np.empty(t.shape, np.float32) for t in types]
        impl.numpy_into(xs, outputs, full_attrs)
        return outputs

    return get_kernel_op(op).on_host(inputs, attrs, run)


@dataclass
class Outcome:
    ok: bool
    max_abs: float
    max_rel: float
    worst: str  # where the worst element (largest error / bound) is, and its values
    seconds: float
    ratio: float = 0.0  # worst error / bound (<= 1 passes)
    details: dict = field(default_factory=dict)


def run_case(op: str, case: dict, backend: str) -> Outcome:
    inputs, attrs, opts = make_inputs(op, case)
    held = device_values(inputs, op, case["dtype"], backend)
    refs = reference(op, held, attrs)
    t0 = time.perf_counter()
    if backend == "numpy":
        got = numpy_backend_outputs(op, held, attrs)
    else:
        got = run_kernel_op(op, held, attrs, backend, opts)
    seconds = time.perf_counter() - t0
    bounds = error_bounds(op, held, attrs, refs, backend)
    max_abs = max_rel = worst_ratio = 0.0
    worst = "no elements"
    for i, (g, r, b) in enumerate(zip(got, refs, bounds)):
        g = np.asarray(g, np.float64).reshape(r.shape)
        err = np.abs(g - r)
        bad = ~np.isfinite(g) & np.isfinite(r)
        if bad.any():
            idx = tuple(int(j) for j in np.argwhere(bad)[0])
            return Outcome(False, math.inf, math.inf, f"output {i} {idx}: got {g[idx]}, want {r[idx]}", seconds, math.inf)
        if err.size == 0:
            continue
        max_abs = max(max_abs, float(err.max()))
        max_rel = max(max_rel, float((err / np.maximum(np.abs(r), 1e-30)).max()))
        ratio = err / b
        j = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        if ratio[j] >= worst_ratio:
            worst_ratio = float(ratio[j])
            worst = f"output {i} at {tuple(int(t) for t in j)}: got {g[j]:.6g}, want {r[j]:.6g}, bound {b[j]:.3g}"
    return Outcome(worst_ratio <= 1.0, max_abs, max_rel, worst, seconds, worst_ratio)


# -----------------------------------------------------------------------------------------------------------
# The fuzz loop and replay
# -----------------------------------------------------------------------------------------------------------
@dataclass
class FuzzReport:
    op: str
    backend: str
    examples: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst_ratio: float = 0.0
    worst: str = ""
    worst_case: dict | None = None
    failure: dict | None = None
    failure_outcome: Outcome | None = None
    saved: Path | None = None
    seconds: float = 0.0


def save_case(op: str, case: dict, backend: str, outcome: Outcome, directory: Path) -> Path:
    """Write the case as JSON (what --replay reads) plus its inputs as .npz beside it; returns the JSON path."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"fuzz-{op}-{backend}-{case['seed']}"
    path = directory / f"{stem}.json"
    inputs, _, _ = make_inputs(op, case)
    np.savez(directory / f"{stem}.npz", *inputs)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"op": op, "backend": backend, "case": case, "worst": outcome.worst,
                               "max_abs": outcome.max_abs, "ratio": outcome.ratio}, indent=1))
    tmp.replace(path)
    return path


def load_case(path: Path) -> tuple[str, dict, str]:
    try:
        data = json.loads(Path(path).read_text())
        return data["op"], data["case"], data.get("backend", "emu")
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"fuzz replay file {path}: cannot read a saved case ({e}); pass a JSON written by "
                        f"`tilegraph fuzz`") from None


def fuzz(op: str, backend: str, examples: int, seed: int, save_dir: Path | None = None) -> FuzzReport:
    """Run `examples` hypothesis cases of `op` on `backend`; shrink and save the first failure."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    report = FuzzReport(op, backend)
    strategy = case_strategy(op)
    start = time.perf_counter()

    @hseed(seed)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(case=strategy)
    def check(case):
        try:
            outcome = run_case(op, case, backend)
        except TilegraphError as e:  # a kernel that fails to build, deadlocks or misuses a CB is a failure too
            outcome = Outcome(False, math.inf, math.inf, f"{type(e).__name__}: {e}", 0.0, math.inf)
        report.examples += 1
        report.max_abs = max(report.max_abs, outcome.max_abs)
        report.max_rel = max(report.max_rel, outcome.max_rel)
        if outcome.ratio >= report.worst_ratio:
            report.worst_ratio, report.worst, report.worst_case = outcome.ratio, outcome.worst, case
        if not outcome.ok:
            report.failure, report.failure_outcome = case, outcome  # the last one raised is the shrunk one
            raise AssertionError(outcome.worst)

    try:
        check()
    except AssertionError:
        if save_dir is not None and report.failure is not None:
            report.saved = save_case(op, report.failure, backend, report.failure_outcome, save_dir)
    report.seconds = time.perf_counter() - start
    return report
