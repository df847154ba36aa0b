"""Fuzz the custom-kernel ops against their float64 numpy references (`tilegraph fuzz`).

A case is a small JSON-able dict (shapes, flags, device data format, core grid, value scale and a value seed);
`make_inputs` turns it into arrays deterministically, so a saved case reproduces exactly. hypothesis draws cases,
and on a failure shrinks to a minimal one, which is saved (JSON + the inputs as .npz) for `--replay`.

Tolerances (per element, |got - ref| <= bound). The reference is float64 on the inputs *as the device holds
them* (quantized to bfloat16 / bfloat8_b with the emulator's conversion, bit-exact with ttnn's), so input
quantization is not counted as kernel error and bfloat8_b needs no looser output bound. What remains is the
arithmetic a Wormhole B0 performs (kernels/emu/API.md "Numerics"; the emulator matches ttsim bit for bit there).
The kernels run with fp32_dest_acc_en, at HiFi4 unless a builder's `math_fidelity` says otherwise (math fidelity
below); at HiFi4:
- output rounding (OUT_ROUNDING): outputs are bfloat16 (8 significant bits); the packer rounds fp32 DST half away
  from zero, at most half an ulp = 2^-8 relative; we allow 2^-7 (2x). Same for a card; numpy (float32) 2^-20.
- source registers (SRC_TF32): an fp32 CB operand (an intermediate) reaches the FPU truncated to TF32, 10 mantissa
  bits, so it errs by < 2^-10 relative, one-sided; we allow 2^-9 (2x) per pass through SrcA / SrcB. bf16 and
  bfloat8_b operands are exact in the registers (at HiFi4 all their mantissa bits reach the multipliers).
- the matrix engine (MVMUL_ALIGN): MVMUL / GAPOOL multiply 5x7-bit mantissa slices per fidelity phase (HiFi4: all
  four, so bf16 x bf16 products are exact) but align each group of 8 lane products to the group's largest exponent
  in a 12-bit window: every lane but the largest errs by up to 2^-11 of the largest, summed over the four phases
  (x1.04), so one 16-deep face product errs by <= 7 * 2^-11 * 1.04 * max|term| per group <= 2^-8 * sum|terms|.
  Matmul, reduce SUM and the attention row sums each carry MVMUL_ALIGN * sum|terms| per product.
- DST accumulation (ACCUM_UNIT): each MVMUL result is added into fp32 DST with 24-bit alignment, ~2^-24 per term;
  we allow K * 2^-22 * sum|terms| (4x) for a length-K sum. The SFPU functions on an fp32 DST (the LLK algorithms,
  kernels/emu/API.md "SFPU"; tests/test_emu_sfpu.py) err by <= 2^-22 relative (exp, recip, rsqrt), 6 * 2^-24
  (silu) and 2^-21 (log): far inside OUT_ROUNDING wherever they reach a bf16 output, so no separate term.
- elementwise FPU ops (ELWADD/ELWSUB align b to a in an 11-bit window; ELWMUL of bf16 operands at HiFi4 is exact
  before the DST rounding): within the SRC_TF32 and ACCUM_UNIT terms above.
- math fidelity (fidelity_error; zero at HiFi4): an FPU multiply (MVMUL, ELWMUL, GAPOOL) runs one pass per
  phase; phase p multiplies a 5-bit slice of SrcA's 11-bit mantissa (bits 10..6 when p is even, 5..1 when odd) by a
  7-bit slice of SrcB's (bits 10..4 for p < 2, 3..0 for p >= 2) and adds into DST (tt-metal
  tech_reports/matrix_engine "Math Fidelity"; ttsim `elwmul` / `mvmul`; kernels/emu/src/datapath.cpp, bit-exact
  with ttsim at every fidelity, tests/test_emu_ttsim_oracle.py). LoFi = phase 0, HiFi2 = 0-1, HiFi3 = 0-2,
  HiFi4 = 0-3. HiFi2 thus multiplies all of SrcA (bits 10..1) by SrcB's top 7 bits only: the product loses SrcB's
  bits 3..0 (phases 2, 3), relative < sum of their weights in the operand, one-sided toward zero. A bf16 operand
  fills bits 10..3, so in SrcB it loses bit 3: 2^-7 (+ 2^-7 * SrcA's bits 5..3 for phase 3: 0.0082 in all); a TF32
  (fp32 CB) operand in SrcB loses bits 3..0: 15 * 2^-10 (+ phase 3: 0.0155 in all, ~2^-6); a bfloat8_b operand
  has 7 significant bits (10..4) and loses nothing. So at HiFi2 what matters is which operand sits in SrcB (matmul
  in0, eltwise in1) and its format; each op's bound adds fidelity_error per product it feeds through SrcB (the
  terms are exact upper bounds, not doubled). SrcA's bit 0 is never multiplied at any fidelity; for TF32 it is
  inside SRC_TF32 (truncation < 2^-10 plus bit 0 <= 2^-10 stay below 2^-9).
Per op: rmsnorm y = h * rstd * gamma: OUT_ROUNDING + (MVMUL_ALIGN + SRC_TF32) / 2 for the mean of squares (halved
by the square root) + 2 * SRC_TF32 (rstd and the normalized tile into the two multiplies) + w * ACCUM_UNIT.
swiglu: the two matmuls' errors (MVMUL_ALIGN + k * ACCUM_UNIT) * |x| @ |w| propagated through silu(a) * b.
attention: scores err by (MVMUL_ALIGN + F(q) + d * ACCUM_UNIT) * sum|q k| (twice: row max and exp), the running
max and scores pass SrcA as TF32 twice (2 * smax * SRC_TF32), P once, the running output once per K chunk and l
twice more (relative SRC_TF32 each), P V and the row sum of P through the matrix engine (2 * MVMUL_ALIGN relative);
with F = fidelity_error of the operand in SrcB: P into P V and into the row sum (2 F(P)), alpha into each of the
nk - 1 rescales of the running output and 1/l into the last multiply (nk F(fp32)); bfloat16 intermediates (S, P,
running output: `interm`) replace each SRC_TF32 of theirs by OUT_ROUNDING (the packer's rounding, 2x);
lse (float32): 2^-16 * (1 + |lse|) + those + S * ACCUM_UNIT. attention_bwd: kernels/attention/backward.py
error_bounds. The numpy backend (float32 fast paths) is held to the same form without the hardware terms.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tilegraph.kernels.description import MATH_FIDELITIES
from tilegraph.kernels.registry import KERNEL_OPS, DeviceOptions, get_kernel_op
from tilegraph.ops import get_op
from tilegraph.runtime.kernel_ops import run_kernel_op

from tilegraph.errors import DataError, SetupError, ShapeError, TilegraphError
from tilegraph.files import write_atomic

BACKENDS = ("emu", "numpy", "ttnn")
DTYPES = ("bfloat16", "bfloat8_b")
OUT_ROUNDING = {"emu": 2.0**-7, "ttnn": 2.0**-7, "numpy": 2.0**-20}
ACCUM_UNIT = 2.0**-22  # 4x the fp32 unit roundoff per accumulated term
SRC_TF32 = 2.0**-9  # 2x the TF32 truncation error: one fp32 operand through SrcA / SrcB
MVMUL_ALIGN = 2.0**-8  # matrix-engine lane alignment: per face product, relative to sum |terms|
# Significant bits (hidden one included) an operand of each CB format has in a source register: bf16 as is,
# bfloat8_b through bf16 with at most 7 (its 7-bit magnitude holds the leading one), float32 as TF32.
SRC_SIGNIFICANT_BITS = {"bfloat16": 8, "bfloat8_b": 7, "float32": 11}
FIDELITY_PHASES = {"LoFi": (0,), "HiFi2": (0, 1), "HiFi3": (0, 1, 2), "HiFi4": (0, 1, 2, 3)}


def fidelity_error(srca_format: str, srcb_format: str, fidelity: str) -> float:
    """Relative error bound (one-sided, toward zero) of one FPU product (MVMUL, ELWMUL, GAPOOL) at `fidelity`, from
    the partial products the phases it runs leave out (module docstring, "math fidelity").

    The 11-bit mantissas sit at bits 10..0 (10 = the hidden one); an operand with n significant bits fills bits
    10..11-n. Phase p multiplies SrcA bits 10..6 (p even) or 5..1 (p odd) by SrcB bits 10..4 (p < 2) or 3..0 (p >= 2).
    A left-out phase costs (its SrcA slice / the SrcA mantissa) x (its SrcB slice / the SrcB mantissa), where a
    high slice is at most the whole mantissa (ratio <= 1) and a low slice at most the sum of the bit weights the
    operand has in it. SrcA's bit 0 never reaches a multiplier at any fidelity: for a TF32 operand that is within
    SRC_TF32 (the truncation to TF32 plus bit 0 stay below 2^-9), so it is not counted here."""
    def low_slice(fmt, bits):
        n = SRC_SIGNIFICANT_BITS[fmt]
        return sum(2.0 ** (b - 10) for b in bits if b >= 11 - n)

    a_slices = (1.0, low_slice(srca_format, range(1, 6)))
    b_slices = (1.0, low_slice(srcb_format, range(0, 4)))
    kept = FIDELITY_PHASES[fidelity]
    return sum(a_slices[p & 1] * b_slices[p >> 1] for p in range(4) if p not in kept)


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
def device_values(inputs: list[np.ndarray], op: str, dtype: str, backend: str,
                  knobs: dict | None = None) -> list[np.ndarray]:
    """The inputs as the backend holds them: quantized to the device format on kernel backends."""
    if backend == "numpy":
        return inputs
    from tilegraph.runtime.emulator import quantize

    # Each input in its device format (KernelOp.input_formats). quantize works on the tiled 2-D view (shared
    # exponents run along rows of a face), as the device tensor is laid out.
    fmts = get_kernel_op(op).input_formats(dtype, len(inputs), knobs or {})
    return [quantize(a.reshape(-1, a.shape[-1]), f).reshape(a.shape) for a, f in zip(inputs, fmts)]


def reference(op: str, inputs: list[np.ndarray], attrs: dict) -> list[np.ndarray]:
    """float64 ground truth of what the kernels compute (KernelOp.reference)."""
    return get_kernel_op(op).reference([a.astype(np.float64) for a in inputs], attrs)


def error_bounds(op: str, inputs: list[np.ndarray], attrs: dict, refs: list[np.ndarray], backend: str,
                 opts: DeviceOptions | None = None):
    """Per-element allowed |error| for each output of a call run with `opts` (None: the builder's defaults; see
    the module docstring for the derivation; the formula of each op is its KernelOp.error_bounds,
    kernels/<op>/program.py)."""
    return get_kernel_op(op).error_bounds([a.astype(np.float64) for a in inputs], attrs, refs, backend, opts)


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
    held = device_values(inputs, op, case["dtype"], backend, dict(opts.knobs))
    refs = reference(op, held, attrs)
    t0 = time.perf_counter()
    if backend == "numpy":
        got = numpy_backend_outputs(op, held, attrs)
    else:
        got = run_kernel_op(op, held, attrs, backend, opts)
    seconds = time.perf_counter() - t0
    bounds = error_bounds(op, held, attrs, refs, backend, opts)
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
class _MachineProblem(BaseException):
    # BaseException so hypothesis stops at once instead of shrinking an environment problem as a failing case.
    def __init__(self, error: SetupError):
        super().__init__(str(error))
        self.error = error


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
    # worst err/bound and case count per numeric configuration (config_label): a looser format or fidelity should
    # not hide behind the others' worst
    by_config: dict[str, tuple[float, int]] = field(default_factory=dict)


CONFIG_FIELDS = ("dtype", "math_fidelity", "interm")  # case fields that change the arithmetic, not the shape


def config_label(case: dict) -> str:
    """The numeric configuration of a case, e.g. "dtype bfloat16, math_fidelity HiFi2, interm auto"."""
    return ", ".join(f"{f} {'auto' if case[f] is None else case[f]}" for f in CONFIG_FIELDS if f in case)


def save_case(op: str, case: dict, backend: str, outcome: Outcome, directory: Path) -> Path:
    """Write the case as JSON (what --replay reads) plus its inputs as .npz beside it; returns the JSON path."""
    from tilegraph.files import ensure_writable_dir

    ensure_writable_dir(directory, "--save-dir")
    stem = f"fuzz-{op}-{backend}-{case['seed']}"
    path = directory / f"{stem}.json"
    inputs, _, _ = make_inputs(op, case)
    write_atomic(directory / f"{stem}.npz", lambda f: np.savez(f, *inputs))
    write_atomic(path, json.dumps({"op": op, "backend": backend, "case": case, "worst": outcome.worst,
                                   "max_abs": outcome.max_abs, "ratio": outcome.ratio}, indent=1).encode())
    return path


# What a replayed case may hold: the fields of each op's cases and the values the kernels and make_inputs accept
# (wider than what the fuzz draws: a hand-edited case may probe further). Sizes are capped so that a typo cannot
# ask for gigabytes.
_SIZE = ("int", 1, 4096)
_SEED = ("int", 0, 2**32 - 1)
_COMMON_FIELDS = {"dtype": ("choice", DTYPES), "grid": ("grid",), "scale": ("float", 0.0, 1e4), "seed": _SEED}
_FIDELITY = ("choice", MATH_FIDELITIES)  # a builder's math_fidelity
CASE_FIELDS = {
    "rmsnorm": {**_COMMON_FIELDS, "rows": _SIZE, "width": _SIZE, "residual": ("bool",),
                "eps": ("float", 0.0, 1.0), "max_block": ("int", 1, 64)},
    "swiglu": {**_COMMON_FIELDS, "m": _SIZE, "k": _SIZE, "n": _SIZE, "max_k_block": ("int", 1, 64),
               "max_n_block": ("int", 1, 64), "weight_dtype": ("choice-or-none", DTYPES), "group": ("int-or-none", 1, 8),
               "math_fidelity": _FIDELITY},
    "attention": {**_COMMON_FIELDS, "batch": ("int", 1, 8), "seq": _SIZE, "kv_heads": ("int", 1, 16),
                  "group": ("int", 1, 8), "head_dim": ("multiple", 32, 1024), "causal": ("bool",),
                  "q_chunk": ("choice", (32, 64, 128, 256)), "k_chunk": ("choice", (32, 64, 128, 256)),
                  "softmax_scale": ("float-or-none", 0.0, 1e3), "window": ("int-or-none", 1, 1 << 20),
                  "math_fidelity": _FIDELITY,
                  "interm": ("choice-or-none", ("float32", "bfloat16"))},
    "rmsnorm_bwd": {**_COMMON_FIELDS, "rows": _SIZE, "width": _SIZE, "eps": ("float", 0.0, 1.0),
                    "max_block": ("int", 1, 32)},
    "swiglu_bwd": {**_COMMON_FIELDS, "m": _SIZE, "k": _SIZE, "n": _SIZE, "max_k_block": ("int", 1, 64),
                   "math_fidelity": _FIDELITY},
}  # fmt: skip
CASE_FIELDS["attention_bwd"] = CASE_FIELDS["attention"]  # the same fields (kernels/attention/backward.py)
# Fields make_inputs reads with a default (`case.get`): a case saved before they existed still replays.
_ATTENTION_OPTIONAL = {"window", "math_fidelity", "interm"}
OPTIONAL_FIELDS = {"swiglu": {"max_n_block", "weight_dtype", "group", "math_fidelity"}, "attention": _ATTENTION_OPTIONAL,
                   "attention_bwd": _ATTENTION_OPTIONAL, "swiglu_bwd": {"math_fidelity"}}


def _field_error(name: str, rule: tuple, value) -> str | None:
    kind = rule[0]
    if kind == "choice-or-none":
        return None if value is None or value in rule[1] else f"null or one of {list(rule[1])}"
    if kind == "choice":
        return None if value in rule[1] and not isinstance(value, bool) else f"one of {list(rule[1])}"
    if kind == "multiple":
        ok = isinstance(value, int) and not isinstance(value, bool) and 0 < value <= rule[2] and value % rule[1] == 0
        return None if ok else f"a multiple of {rule[1]} in [{rule[1]}, {rule[2]}]"
    if kind == "bool":
        return None if isinstance(value, bool) else "true or false"
    if kind == "grid":
        ok = (isinstance(value, list) and len(value) == 2
              and all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= 8 for c in value))  # fmt: skip
        return None if ok else "[cores x, cores y], each 1..8"
    if kind in ("float-or-none", "int-or-none") and value is None:
        return None
    if kind in ("float", "float-or-none"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok and rule[1] < value <= rule[2] else f"a number in ({rule[1]:g}, {rule[2]:g}]"
    ok = isinstance(value, int) and not isinstance(value, bool) and rule[1] <= value <= rule[2]
    none = "null or " if kind == "int-or-none" else ""
    return None if ok else f"{none}a whole number in [{rule[1]}, {rule[2]}]"


def check_case(op: str, case, where: str) -> dict:
    """DataError naming the field unless `case` is a valid case of `op` (the fields of its cases, in range)."""
    if not isinstance(case, dict):
        raise DataError(f"{where}: 'case' must be an object of fields, got {type(case).__name__}")
    fields = CASE_FIELDS[op]
    optional = OPTIONAL_FIELDS.get(op, set())
    missing = sorted(set(fields) - set(case) - optional)
    extra = sorted(set(case) - set(fields))
    if missing or extra:
        others = [o for o, f in CASE_FIELDS.items()
                  if o != op and set(f) - OPTIONAL_FIELDS.get(o, set()) <= set(case) <= set(f)]  # fmt: skip
        hint = f"; it is a case of {others[0]}, not of {op}" if others else ""
        raise DataError(f"{where}: a {op} case needs the fields {sorted(fields)}; missing {missing}, "
                        f"unexpected {extra}{hint}")  # fmt: skip
    for name, rule in fields.items():
        if name not in case:
            continue
        want = _field_error(name, rule, case[name])
        if want is not None:
            raise DataError(f"{where}: field {name!r} is {case[name]!r}; it must be {want}")
    return case


def load_case(path: Path) -> tuple[str, dict, str]:
    """(op, case, backend) of a file `tilegraph fuzz` saved; DataError naming the problem for anything else."""
    where = f"fuzz replay file {path}"
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as e:
        raise DataError(f"{where}: cannot read a saved case ({e}); pass a JSON written by `tilegraph fuzz`") from None
    if not isinstance(data, dict) or "op" not in data or "case" not in data:
        raise DataError(f"{where}: cannot read a saved case (expected an object with 'op' and 'case', got "
                        f"{type(data).__name__}); pass a JSON written by `tilegraph fuzz`")  # fmt: skip
    op, backend = data["op"], data.get("backend", "emu")
    if op not in CASE_FIELDS:
        raise DataError(f"{where}: op {op!r} has no fuzz cases; it must be one of {', '.join(CASE_FIELDS)}")
    if backend not in BACKENDS:
        raise DataError(f"{where}: backend {backend!r} must be one of {', '.join(BACKENDS)}")
    return op, check_case(op, data["case"], where), backend


def fuzz(op: str, backend: str, examples: int, seed: int, save_dir: Path | None = None,
         on_example: Callable[[FuzzReport], None] | None = None) -> FuzzReport:
    """Run `examples` hypothesis cases of `op` on `backend`; shrink and save the first failure. A problem of the
    machine (SetupError: no C++ compiler) is raised as such, not reported, shrunk or saved as a kernel failure.
    `on_example(report)` runs after every case (progress)."""
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
        except SetupError as e:
            raise _MachineProblem(e) from None
        except TilegraphError as e:  # a kernel that fails to build, deadlocks or misuses a CB is a failure too
            outcome = Outcome(False, math.inf, math.inf, f"{type(e).__name__}: {e}", 0.0, math.inf)
        report.examples += 1
        if on_example is not None:
            on_example(report)
        report.max_abs = max(report.max_abs, outcome.max_abs)
        report.max_rel = max(report.max_rel, outcome.max_rel)
        if outcome.ratio >= report.worst_ratio:
            report.worst_ratio, report.worst, report.worst_case = outcome.ratio, outcome.worst, case
        label = config_label(case)
        worst, count = report.by_config.get(label, (0.0, 0))
        report.by_config[label] = (max(worst, outcome.ratio), count + 1)
        if not outcome.ok:
            report.failure, report.failure_outcome = case, outcome  # the last one raised is the shrunk one
            raise AssertionError(outcome.worst)

    try:
        check()
    except _MachineProblem as e:
        raise e.error from None
    except AssertionError:
        if save_dir is not None and report.failure is not None:
            report.saved = save_case(op, report.failure, backend, report.failure_outcome, save_dir)
    report.seconds = time.perf_counter() - start
    return report
