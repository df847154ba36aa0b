"""Benchmark one custom kernel against ttnn's built-in on a named device: measured on a card, modelled without.

Modelled (no Tenstorrent card, as on this VM): our kernel's per-thread counters come from the emulator, run on the
device's compute grid. A shape too big to emulate in seconds is emulated on a slice with the same per-core work
pattern (fewer rows / heads) and every summed counter is scaled by the ratio of work units per core; the result
says so ("emulated" / "scale"). ttnn's built-in is modelled from its known kernel structure (tilegraph.perf.baselines).
Both go through the same per-core model (tilegraph.perf.model).

Measured (a card and ttnn present): median of N runs of our program through ttnn.generic_op and of the ttnn
built-in (ttnn.rms_norm, ttnn.transformer.scaled_dot_product_attention, two ttnn.linear + ttnn.mul with SiLU
fused on the first input), each after a warm-up run, synchronising the device around every run.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from tilegraph.errors import TilegraphError
from tilegraph.perf import baselines
from tilegraph.perf.counters import ThreadCounters, scale_counters
from tilegraph.perf.devices import Device, get_device
from tilegraph.perf.model import Estimate, estimate, peak_flops, program_cb_pages

# Shapes: nano-trickster training (specs/nano-trickster.yaml: batch 16 x seq 256, hidden 256, 8 heads of 32, mlp 768)
# and llama-3-8b prefill at seq 2048 (hidden 4096, 32 heads / 8 KV heads of 128, mlp 14336).
PRESETS = {
    "nano": {"tokens": 16 * 256, "hidden": 256, "ffn": 768, "batch": 16, "seq": 256, "heads": 8, "kv_heads": 8,
             "head_dim": 32},
    "llama3-8b": {"tokens": 2048, "hidden": 4096, "ffn": 14336, "batch": 1, "seq": 2048, "heads": 32,
                  "kv_heads": 8, "head_dim": 128},
}
# Work units emulated per core at most (then scaled): keeps an emulated run to seconds on a 2-core host.
EMULATED_UNITS_PER_CORE = 2


@dataclass(frozen=True)
class BenchKernel:
    """How `tilegraph bench` runs one kernel op: its shape options, inputs, emulated slice and ttnn baseline."""

    name: str
    options: tuple[str, ...]  # shape options (keys of PRESETS), e.g. ("tokens", "hidden")
    inputs: Callable[[dict, np.random.Generator], tuple[list[np.ndarray], dict]]
    units: Callable[[dict], int]  # work units the builder splits over the cores
    slice: Callable[[dict, int], dict]  # the shape with at most this many units
    baseline: Callable[[dict, Device, str], tuple[str, list[ThreadCounters], str]]  # label, counters, fidelity
    flops: Callable[[dict], float]
    # The builder's shape-dependent choices at the full shape, pinned for the emulated slice so that the slice
    # has the same per-core work pattern (e.g. swiglu's output block).
    pin: Callable[[dict, Device, str], dict] = lambda shape, device, dtype: {}
    # ttnn ops that run on the device after our program as part of the kernel op (KernelOp.device_finish:
    # swiglu_bwd's matmuls), modelled as ttnn's built-ins; their times add to our program's.
    finish: Callable[[dict, Device, str], list[list[ThreadCounters]]] | None = None
    # Units on the busiest core, when the builder's layout decides it (swiglu: multicast groups that go through
    # block rows in rounds); (shape, device, **pinned). Default: the units spread evenly over the device's cores.
    per_core: Callable[..., int] | None = None


def _rand(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _rms_inputs(s, rng):
    return [_rand(rng, s["tokens"], s["hidden"]), 1 + _rand(rng, s["hidden"], scale=0.1)], {"eps": 1e-5}


def _rms_baseline(s, dev, dtype):
    return "ttnn.rms_norm", baselines.rms_norm(s["tokens"], s["hidden"], dev, dtype), "HiFi4"


def _swiglu_inputs(s, rng):
    k = s["hidden"]
    return [_rand(rng, s["tokens"], k), _rand(rng, k, s["ffn"], scale=k**-0.5),
            _rand(rng, k, s["ffn"], scale=k**-0.5)], {}


def _swiglu_baseline(s, dev, dtype):
    m, k, n = s["tokens"], s["hidden"], s["ffn"]
    threads = []
    for _ in range(2):  # x W1, x W3: two ops, one after the other (their times add; model them as one list per op)
        threads.append(baselines.matmul_2d(m, k, n, dev, dtype, "HiFi2"))
    threads.append(baselines.eltwise_binary(m * n, dev, dtype, sfpu_op="silu"))
    return "ttnn.linear x2 + ttnn.mul(silu fused)", threads, "HiFi2"


def _attn_inputs(s, rng):
    b, sq, h, kv, d = s["batch"], s["seq"], s["heads"], s["kv_heads"], s["head_dim"]
    return [_rand(rng, b, sq, h * d), _rand(rng, b, sq, kv * d), _rand(rng, b, sq, kv * d)], \
        {"heads": h, "kv_heads": kv, "causal": True}


def _attn_units(s, q_chunk=128, k_chunk=128):
    return s["batch"] * s["heads"] * max(1, -(-s["seq"] // q_chunk))  # Q chunks


def _builder_chunks(build, s, device, dtype):
    """The chunks an attention builder (forward or backward) picks at the full shape (its 128-row defaults, shrunk
    for wide heads until the CBs fit L1; both compute kernels' args begin (qc, kc)), so that the emulated slice runs
    the same chunks; a --knob q_chunk=N replaces them (units follow)."""
    desc = build(s["batch"], s["seq"], s["heads"], s["head_dim"], s["kv_heads"], dtype, grid=device.grid)
    qc, kc = next(iter(desc.kernels[1].runtime_args.values()))[:2]
    return {"q_chunk": 32 * qc, "k_chunk": 32 * kc}


def _attn_pin(s, device, dtype):
    from tilegraph.kernels.attention.program import attention_program

    return _builder_chunks(attention_program, s, device, dtype)


def _attn_slice(s, units, q_chunk=128, k_chunk=128):
    s = dict(s)
    group = s["heads"] // s["kv_heads"]
    while _attn_units(s, q_chunk) > units and s["batch"] > 1:
        s["batch"] = max(1, s["batch"] // 2)
    while _attn_units(s, q_chunk) > units and s["kv_heads"] > 1:
        s["kv_heads"] = max(1, s["kv_heads"] // 2)
        s["heads"] = s["kv_heads"] * group
    return s


def _attn_baseline(s, dev, dtype):
    return ("ttnn.transformer.scaled_dot_product_attention",
            baselines.sdpa(s["batch"], s["heads"], s["kv_heads"], s["seq"], s["head_dim"], dev, dtype), "HiFi2")


def _swiglu_block(s, device, dtype):
    """The output block (mb, nb) and multicast group the builder picks at the full shape."""
    from tilegraph.kernels.swiglu.program import swiglu_program

    desc = swiglu_program(s["tokens"], s["hidden"], s["ffn"], dtype, grid=device.grid)
    # compute args: (blocks_m, blocks_n, column, columns, part, parts, member, group_size, kt, mt, nt, kb, mb, nb, w)
    args = next(iter(desc.kernels[1].runtime_args.values()))
    return {"block": (int(args[12]), int(args[13])), "group": int(args[7])}


def _swiglu_bwd_block(s, device, dtype):
    """The output block (mb, nb) swiglu_bwd's builder picks at the full shape (compute args (kt, mt, nt, start,
    count, kb, mb, nb, ...))."""
    from tilegraph.kernels.swiglu.program_bwd import swiglu_gate_bwd_program

    desc = swiglu_gate_bwd_program(s["tokens"], s["hidden"], s["ffn"], dtype, grid=device.grid)
    args = next(iter(desc.kernels[1].runtime_args.values()))
    return {"block": (int(args[6]), int(args[7]))}


def _swiglu_per_core(s, device, block, group=1):
    from tilegraph.kernels.swiglu.program import swiglu_slots_per_core

    return swiglu_slots_per_core(_cdiv(s["tokens"], 32), _cdiv(s["ffn"], 32), *block, group, device.grid)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _swiglu_units(s, block, group=1):
    mb, nb = block
    return _cdiv(_cdiv(s["tokens"], 32), mb) * _cdiv(_cdiv(s["ffn"], 32), nb)


def _swiglu_slice(s, units, block, group=1):
    """Whole mb x nb blocks and whole group rounds: block rows for at most EMULATED_UNITS_PER_CORE rounds of each
    multicast group (at least `group` rows, so every member keeps a block), then block columns for `units` blocks
    (enough to keep every group of the layout busy)."""
    mb, nb = block
    s = dict(s)
    rows = min(_cdiv(_cdiv(s["tokens"], 32), mb), group * EMULATED_UNITS_PER_CORE)
    s["tokens"] = min(s["tokens"], 32 * mb * rows)
    s["ffn"] = min(s["ffn"], 32 * nb * max(1, units // rows))
    return s


def _rows_slice(s, units):
    s = dict(s)
    s["tokens"] = min(s["tokens"], 32 * units)
    return s


def _rms_bwd_inputs(s, rng):
    x, gamma = _rms_inputs(s, rng)[0]
    return [x, gamma, _rand(rng, s["tokens"], s["hidden"])], {"eps": 1e-5}


def _rms_bwd_baseline(s, dev, dtype):
    return ("ttnn composite (12 eltwise / reduce ops)", baselines.rms_norm_bwd(s["tokens"], s["hidden"], dev, dtype),
            "HiFi4")


def _rms_bwd_flops(s):
    # recompute x^2 and its sum (2), xhat (1), g = dy gamma (1), g xhat and its sum (2), dx (3), dy xhat and the
    # dgamma sum (2) per element
    return 11.0 * s["tokens"] * s["hidden"]


def _swiglu_bwd_inputs(s, rng):
    x, w1, w3 = _swiglu_inputs(s, rng)[0]
    return [x, w1, w3, _rand(rng, s["tokens"], s["ffn"])], {}


def _swiglu_bwd_baseline(s, dev, dtype):
    m, k, f = s["tokens"], s["hidden"], s["ffn"]
    return ("ttnn composite (2 linear, 5 eltwise, 4 matmul, add)", baselines.swiglu_bwd(m, k, f, dev, dtype), "HiFi2")


def _swiglu_bwd_finish(s, dev, dtype):
    return baselines.swiglu_bwd_finish(s["tokens"], s["hidden"], s["ffn"], dev, dtype)


def _attn_bwd_inputs(s, rng):
    from tilegraph.ops.attention import attention_reference

    (q, k, v), attrs = _attn_inputs(s, rng)
    o, lse = attention_reference(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), s["heads"],
                                 s["kv_heads"], True, None)
    return [q, k, v, o.astype(np.float32), lse.astype(np.float32), _rand(rng, *q.shape)], attrs


def _attn_bwd_pin(s, device, dtype):
    from tilegraph.kernels.attention.backward import attention_bwd_program

    return _builder_chunks(attention_bwd_program, s, device, dtype)


def _attn_bwd_baseline(s, dev, dtype):
    return ("ttnn composite (5 batched matmul, softmax, 4 eltwise / reduce)",
            baselines.attention_bwd(s["batch"], s["heads"], s["kv_heads"], s["seq"], s["head_dim"], dev, dtype),
            "HiFi2")


def _attn_bwd_flops(s):
    # causal: S and dP recomputed (2 products), dQ, dK, dV (3): 5 matmuls of 2 S^2 D over half the square
    return 5.0 * s["batch"] * s["heads"] * s["seq"] ** 2 * s["head_dim"]


BENCH_KERNELS: dict[str, BenchKernel] = {
    "rmsnorm": BenchKernel(
        "rmsnorm", ("tokens", "hidden"), _rms_inputs, lambda s: -(-s["tokens"] // 32), _rows_slice, _rms_baseline,
        lambda s: 4.0 * s["tokens"] * s["hidden"]),
    "swiglu": BenchKernel(
        "swiglu", ("tokens", "hidden", "ffn"), _swiglu_inputs, _swiglu_units, _swiglu_slice, _swiglu_baseline,
        lambda s: 4.0 * s["tokens"] * s["hidden"] * s["ffn"] + 5.0 * s["tokens"] * s["ffn"], _swiglu_block,
        per_core=_swiglu_per_core),
    "attention": BenchKernel(
        "attention", ("batch", "seq", "heads", "kv_heads", "head_dim"), _attn_inputs, _attn_units, _attn_slice,
        _attn_baseline, lambda s: 2.0 * s["batch"] * s["heads"] * s["seq"] ** 2 * s["head_dim"],  # causal: half of 4
        _attn_pin),
    "rmsnorm_bwd": BenchKernel(
        "rmsnorm_bwd", ("tokens", "hidden"), _rms_bwd_inputs, lambda s: -(-s["tokens"] // 32), _rows_slice,
        _rms_bwd_baseline, _rms_bwd_flops),
    "swiglu_bwd": BenchKernel(
        "swiglu_bwd", ("tokens", "hidden", "ffn"), _swiglu_bwd_inputs, _swiglu_units, _swiglu_slice, _swiglu_bwd_baseline, lambda s: 12.0 * s["tokens"] * s["hidden"] * s["ffn"],
        _swiglu_bwd_block, finish=_swiglu_bwd_finish),
    "attention_bwd": BenchKernel(
        "attention_bwd", ("batch", "seq", "heads", "kv_heads", "head_dim"), _attn_bwd_inputs,
        _attn_units, _attn_slice, _attn_bwd_baseline,
        _attn_bwd_flops, _attn_bwd_pin),
}


def bench_kernel(name: str) -> BenchKernel:
    from tilegraph.kernels.registry import KERNEL_OPS

    if name not in KERNEL_OPS:
        raise TilegraphError(f"no custom kernel {name!r}; kernels: {', '.join(KERNEL_OPS)}")
    if name not in BENCH_KERNELS:
        raise TilegraphError(f"kernel {name!r} has no bench shapes yet: add a BenchKernel to BENCH_KERNELS in "
                             "tilegraph/perf/bench.py")
    return BENCH_KERNELS[name]


@dataclass
class BenchResult:
    kernel: str
    device: str
    shape: dict
    source: str  # "modelled" or "measured"
    kernel_us: float
    baseline_us: float
    baseline: str
    bound: str
    baseline_bound: str
    utilization: float
    baseline_utilization: float
    flops: float
    kernel_dram_bytes: int
    baseline_dram_bytes: int
    fidelity: str
    emulated_shape: dict = field(default_factory=dict)
    scale: float = 1.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return dict(self.__dict__, speedup=self.baseline_us / self.kernel_us if self.kernel_us else None)


def model_kernel(name: str, shape: Mapping[str, int], device: Device, dtype: str = "bfloat16",
                 knobs: Mapping[str, object] | None = None) -> tuple[Estimate, dict, float, str]:
    """(estimate, emulated shape, scale, fidelity) of our kernel: emulator counters through the model."""
    from tilegraph.kernels.registry import DeviceOptions, get_kernel_op
    from tilegraph.ops import get_op
    from tilegraph.runtime.emulator import run_program_counted

    bk = bench_kernel(name)
    shape = dict(shape)
    knobs = dict(knobs or {})
    pinned = bk.pin(shape, device, dtype)
    pinned.update({k: v for k, v in knobs.items() if k in pinned})  # the user's choice wins

    def busiest(s):
        if bk.per_core is not None:
            return bk.per_core(s, device, **pinned)
        return math.ceil(bk.units(s, **pinned) / device.cores)

    per_core = busiest(shape)
    emulated = shape
    if per_core > EMULATED_UNITS_PER_CORE:
        emulated = bk.slice(shape, EMULATED_UNITS_PER_CORE * device.cores, **pinned)
    scale = per_core / busiest(emulated)
    inputs, attrs = bk.inputs(emulated, np.random.default_rng(0))
    opts = DeviceOptions(dtype=dtype, grid=device.grid, knobs={**pinned, **knobs})
    desc, dev_inputs = get_kernel_op(name).program(inputs, {**get_op(name).attrs, **attrs}, opts)
    _, threads = run_program_counted(desc, dev_inputs, timeout_s=600)
    fidelity = desc.compute_config.math_fidelity
    est = estimate(scale_counters(threads, scale), device, program_cb_pages(desc), fidelity)
    if bk.finish is not None:
        ops = bk.finish(shape, device, dtype)
        ests = [est] + [estimate(op, device, baselines.double_buffered_cb_pages(op), "HiFi2") for op in ops]
        est = _sequence(ests, device, fidelity, est.notes + [f"our program {est.time_us:.1f} us + {len(ops)} ttnn "
                                                            f"ops after it (device_finish, modelled as ttnn's)"])
    return est, emulated, scale, fidelity


def _sequence(ests: list[Estimate], device: Device, fidelity: str, notes: list[str]) -> Estimate:
    """Ops run one after another: their times add; the bound is the slowest op's."""
    total = sum(e.time_s for e in ests)
    slowest = max(ests, key=lambda e: e.time_s)
    flops = sum(e.flops for e in ests)
    return Estimate(device.name, total, slowest.bound, flops / peak_flops(device, fidelity) / total,
                    sum(e.dram_bytes for e in ests), sum(e.dram_time_s for e in ests), flops, notes=notes)


def model_baseline(name: str, shape: Mapping[str, int], device: Device, dtype: str = "bfloat16"
                   ) -> tuple[str, Estimate]:
    """ttnn's built-in for this kernel, modelled; a multi-op baseline (swiglu) is the sum of its ops."""
    label, threads, fidelity = bench_kernel(name).baseline(dict(shape), device, dtype)
    ops = threads if threads and isinstance(threads[0], list) else [threads]
    ests = [estimate(op, device, baselines.double_buffered_cb_pages(op), fidelity) for op in ops]
    return label, _sequence(ests, device, fidelity, [f"{len(ests)} ops"] if len(ests) > 1 else [])


def card_available() -> bool:
    """A Tenstorrent card that ttnn can open."""
    import glob

    if not glob.glob("/dev/tenstorrent*"):  # the kernel driver's device nodes: no card, no need to load ttnn
        return False
    try:
        import ttnn

        return int(ttnn.GetNumAvailableDevices()) > 0
    except Exception:  # noqa: BLE001 -- no ttnn, no driver, no card: all mean "model instead"
        return False


def _median_us(fn, runs: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(times)


def measure(name: str, shape: Mapping[str, int], device: Device, dtype: str, runs: int,
            knobs: Mapping[str, object] | None = None) -> tuple[float, float, str]:
    """(kernel_us, baseline_us, baseline label) measured on the card with ttnn (median of `runs`)."""
    import ttnn

    from tilegraph.kernels.registry import DeviceOptions
    from tilegraph.runtime.kernel_ops import run_kernel_op

    bk = bench_kernel(name)
    inputs, attrs = bk.inputs(dict(shape), np.random.default_rng(0))
    opts = DeviceOptions(dtype=dtype, grid=device.grid, knobs=dict(knobs or {}))
    dev = ttnn.open_device(device_id=0)
    try:
        def sync():
            ttnn.synchronize_device(dev)

        kernel_us = _median_us(lambda: run_kernel_op(name, inputs, attrs, backend="ttnn", opts=opts), runs, sync)
        tt = {"bfloat16": ttnn.bfloat16, "bfloat8_b": ttnn.bfloat8_b}[dtype]

        def put(a):
            return ttnn.from_torch(_torch(a), dtype=tt, layout=ttnn.TILE_LAYOUT, device=dev)

        if name == "rmsnorm":
            x, g = put(inputs[0]), put(inputs[1].reshape(1, -1))
            label, fn = "ttnn.rms_norm", lambda: ttnn.rms_norm(x, weight=g, epsilon=attrs["eps"])
        elif name == "swiglu":
            x, w1, w3 = (put(a) for a in inputs)
            label = "ttnn.linear x2 + ttnn.mul(silu fused)"

            def fn():
                return ttnn.mul(ttnn.linear(x, w1), ttnn.linear(x, w3),
                                input_tensor_a_activations=[ttnn.UnaryOpType.SILU])
        else:
            b, s, d = shape["batch"], shape["seq"], shape["head_dim"]
            q, k, v = (put(a.reshape(b, s, -1, d).transpose(0, 2, 1, 3)) for a in inputs)
            label = "ttnn.transformer.scaled_dot_product_attention"

            def fn():
                return ttnn.transformer.scaled_dot_product_attention(q, k, v, is_causal=True)
        baseline_us = _median_us(fn, runs, sync)
    finally:
        ttnn.close_device(dev)
    return kernel_us, baseline_us, label


def _torch(a):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a)).to(torch.bfloat16)


def run_bench(name: str, shape: Mapping[str, int], device_name: str, dtype: str = "bfloat16", runs: int = 20,
              knobs: Mapping[str, object] | None = None, allow_card: bool = True) -> BenchResult:
    device = get_device(device_name)
    bk = bench_kernel(name)
    shape = {k: int(shape[k]) for k in bk.options}
    est, emulated, scale, fidelity = model_kernel(name, shape, device, dtype, knobs)
    label, base = model_baseline(name, shape, device, dtype)
    base_fidelity = bk.baseline(dict(shape), device, dtype)[2]
    flops = bk.flops(shape)
    result = BenchResult(
        name, device_name, shape, "modelled", est.time_us, base.time_us, label, est.bound, base.bound,
        flops / peak_flops(device, fidelity) / est.time_s, flops / peak_flops(device, base_fidelity) / base.time_s, flops, est.dram_bytes, base.dram_bytes,
        fidelity, emulated, scale, est.notes)
    if allow_card and card_available():
        result.kernel_us, result.baseline_us, result.baseline = measure(name, shape, device, dtype, runs, knobs)
        result.source = "measured"
        result.utilization = flops / peak_flops(device, fidelity) / (result.kernel_us * 1e-6)
        result.notes.append("bound and baseline_bound are the model's")
    return result
