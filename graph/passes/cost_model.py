"""cost_model: per-step time of a sharded, scheduled graph, calibrated on Tenstorrent's published measurements.

Each step of one device's program costs

    compute step:  max(FLOPs / (peak(fidelity) * utilization), bytes / (DRAM bandwidth * DRAM_EFFICIENCY))
                   + OP_OVERHEAD[implementation, mode]
    collective:    the fitted link formula of graph/meshes.py (TT_FACTS.md), times the exposed fraction
                   CCL_EXPOSED[implementation, mode] (tt-metal's Galaxy Llama overlaps its collectives with
                   matmuls, most in decode)

- peak(fidelity) = the chip's LoFi peak / fidelity phases (LoFi 1, HiFi2 2, HiFi3 3, HiFi4 4), as the matrix
  engine runs one phase per cycle (tech_reports/GEMM_FLOPS/GEMM_FLOPS.md).
- matmul utilization by shape: MATMUL_UTIL_MAX (the compute-bound sizes of GEMM_FLOPS.md's n150 out-of-box
  table) times the share of busy cores when the output tiles do not divide evenly over the cores; FLOPs on whole
  32-row tiles. Flash attention (prefill) runs at ATTENTION_UTIL of its fidelity's peak (causal: half the score
  FLOPs); decode attention reads its KV cache with at most SDPA_DECODE_CORES_PER_HEAD cores per (user, KV head).
- bytes: every operand and result once, in the format its tensor group has (graph/perf.py: bfp4/bfp8/bf16
  weights, the KV cache format, bf16 activations); rows are the product of all leading dims padded to 32 once, as
  tt-metal lays activations out as [1, 1, B*S, W]: decode users share tiles instead of padding 1 row to 32 each.
  A decode attention step reads its whole KV cache, so its cost follows the context.
- fused QKV: the q/k/v matmuls of a layer are one matmul in tt-metal (one overhead), and their collectives on one
  axis are one collective (one fixed latency, the summed volume).
- OP_OVERHEAD: the per-op dispatch and launch time of the implementation (traced decode, untraced prefill).
- implementation: "tt_transformers" (models/tt_transformers: n150, n300, T3K, P150) or "llama_galaxy"
  (models/demos/llama3_70b_galaxy: Galaxy with the 2-D layout, its own fused ops and prefetcher).

Calibration (docs/cost-model.md has the tables; `tilegraph calibrate` recomputes them): the constants were chosen
by hand to fit the points graph/calibration.py marks "calibration"; the rest are held out and only reported (the
model's structure was chosen with their ratios in view, which docs/cost-model.md states). Sources are tt-metal
repository paths at the commits the search index holds:
  TT  = models/tt_transformers/PERF.md @040a27c1 ("Performance" table: bfp4 MLP, bfp8 attention; batch 1,
        prefill 128, 200 decode iterations; "Long-context (64K)" and "Batch-32" tables)
  GLX = models/demos/llama3_70b_galaxy/PERF.md @10a00843 (25 July 2025 TT-Metal runs)
  GEMM = tech_reports/GEMM_FLOPS/GEMM_FLOPS.md @06bd3735 (N150 out-of-box table)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tilegraph.graph.ir import Graph, Node, Value
from tilegraph.graph.meshes import Mesh
from tilegraph.graph.passes.cost import COLLECTIVES, MATMUL_OPS, CostReport, StepCost
from tilegraph.graph.passes.place import device_impl
from tilegraph.graph.perf import FORMAT_BYTES, PerfConfig, weight_group
from tilegraph.ops import get_op

TILE = 32
PHASES = {"lofi": 1, "hifi2": 2, "hifi3": 3, "hifi4": 4}

# -- fitted constants (see the module docstring for what each was fitted on) -----------------------------------
# GEMM (N150 out-of-box, DRAM in/out, 8x8 grid), the compute-bound sizes: device utilization 66.7% at 2048^3,
# 70.1% at 2048x2048x3072, 71.3% at 2048x3072x3072, 59.5% at 4096^3 (bf16 HiFi2); 63.8% at 2048^3, 69.8% at
# 3072^3 (bfp8 LoFi). Smaller sizes in that table are DRAM- and dispatch-bound, which the model costs separately.
MATMUL_UTIL_MAX = 0.67
ATTENTION_UTIL = {"tt_transformers": 0.30, "llama_galaxy": 0.45}
DRAM_EFFICIENCY = {"tt_transformers": 0.75, "llama_galaxy": 0.75}
SDPA_DECODE_CORES_PER_HEAD = 16
# tt_transformers decode reads each user's logits back and samples on the host; Galaxy samples on device
# ("sample_on_device_mode": "all" in GLX's run commands). Seconds per logit.
HOST_SAMPLING_S_PER_LOGIT = {"tt_transformers": 2.0e-9, "llama_galaxy": 0.0}
OP_OVERHEAD = {  # seconds per op launch
    ("tt_transformers", "decode"): 21e-6,
    ("tt_transformers", "prefill"): 110e-6,
    ("tt_transformers", "train"): 90e-6,
    ("llama_galaxy", "decode"): 3e-6,
    ("llama_galaxy", "prefill"): 30e-6,
    ("llama_galaxy", "train"): 90e-6,
}
CCL_EXPOSED = {  # the share of a collective's link time not hidden behind compute
    ("tt_transformers", "decode"): 1.0, ("tt_transformers", "prefill"): 1.0, ("tt_transformers", "train"): 1.0,
    ("llama_galaxy", "decode"): 0.15, ("llama_galaxy", "prefill"): 0.6, ("llama_galaxy", "train"): 1.0,
}  # fmt: skip

# Error band of each regime: min and max of estimate / published over the calibration and held-out points of
# docs/cost-model.md (tests/test_cost_model.py asserts that every listed point stays inside it).
BANDS = {  # regime -> (min, max, number of published configurations)
    "decode/tt_transformers": (0.80, 1.30, 31),
    "decode/llama_galaxy": (0.70, 1.20, 10),
    "prefill/tt_transformers": (0.55, 1.50, 31),
    "prefill/llama_galaxy": (0.95, 1.20, 8),
}


def implementation(mesh: Mesh, layout: str) -> str:
    name = mesh if isinstance(mesh, str) else mesh.name
    return "llama_galaxy" if name == "galaxy" and layout == "2d" else "tt_transformers"


def error_band(mode: str, mesh, layout: str) -> tuple[str, float, float, int] | None:
    """(regime, min, max, points) of estimate / published time for a lowering, or None where nothing is published
    (training; Galaxy outside the 2-D layout)."""
    impl = implementation(mesh, layout)
    name = mesh if isinstance(mesh, str) else mesh.name
    if name == "galaxy" and impl != "llama_galaxy":
        return None
    key = f"{mode}/{impl}"
    return (key, *BANDS[key]) if key in BANDS else None


@dataclass
class PerfReport(CostReport):
    mode: str = "train"
    implementation: str = "tt_transformers"
    users: int = 1  # sequences per step on one data-parallel replica
    seq: int = 1

    @property
    def step_ms(self) -> float:
        return 1e3 * self.total_seconds

    @property
    def ttft_ms(self) -> float | None:
        """Prefill: time to the first token of one user (the replica prefills its users one after another)."""
        return self.step_ms / self.users if self.mode == "prefill" else None

    @property
    def tokens_per_s_per_user(self) -> float | None:
        return 1.0 / self.total_seconds if self.mode == "decode" and self.total_seconds else None


def _rows_cols(shape) -> tuple[int, int]:
    if not shape:
        return 1, 1
    rows = 1
    for d in shape[:-1]:
        rows *= d
    return rows, shape[-1]


def _padded(shape) -> int:
    r, c = _rows_cols(shape)
    rup = lambda d: -(-d // TILE) * TILE
    return rup(r) * rup(c)


class _Formats:
    """Device format of every value of the graph from the perf config (params by group, KV caches, the rest)."""

    def __init__(self, graph: Graph, perf: PerfConfig):
        self.fmt: dict[Value, str] = {}
        for v in graph.inputs:
            if v.role == "param":
                self.fmt[v] = perf.weight_format(v.name)
            elif v.role == "state":
                self.fmt[v] = perf.kv_cache if v.name.startswith("kv.") else perf.optimizer
            elif v.dtype.startswith("int"):
                self.fmt[v] = "int32"
        for node in graph.nodes:
            for out in node.outputs:
                if node.op == "kv_cache_write":
                    self.fmt[out] = perf.kv_cache
                elif node.op == "adamw":
                    self.fmt[out] = self.fmt.get(node.inputs[min(len(node.inputs) - 1, node.outputs.index(out))],
                                                 perf.optimizer)  # fmt: skip
        self.activations = perf.activations

    def bytes(self, v: Value) -> float:
        if not v.shape:
            return 4.0
        return _padded(v.shape) * FORMAT_BYTES.get(self.fmt.get(v, self.activations), 4.0)


def _fidelity_class(node: Node) -> str:
    if node.op in ("attention", "attention_bwd", "attention_decode"):
        return "attention"
    if node.op == "swiglu":
        return "mlp"
    names = [v.name for v in node.inputs if v.role == "param"] + [v.name for v in node.outputs]
    for name in names:
        group = weight_group(name.split("@")[0])
        if group == "mlp":
            return "mlp"
        if group == "attention":
            return "attention_proj"
        if group in ("lm_head", "embedding"):
            return "lm_head"
    leaf = node.outputs[0].name.split("@")[0].rsplit(".", 1)[-1]
    return {"gate": "mlp", "up": "mlp", "mlp_out": "mlp", "q": "attention_proj", "k": "attention_proj",
            "v": "attention_proj", "attn_out": "attention_proj", "logits": "lm_head"}.get(leaf, "mlp")  # fmt: skip


def _qkv_key(node: Node) -> str | None:
    """The fused-QKV group a node belongs to (q/k/v matmuls of one layer and their collectives), else None."""
    base = node.outputs[0].name.split("@")[0] if node.op in COLLECTIVES else node.outputs[0].name
    layer, _, leaf = base.rpartition(".")
    if leaf in ("q", "k", "v", "q_rope", "k_rope"):
        axis = node.attrs.get("cluster_axis", -1)
        return f"{layer}/{node.op}/{axis}"
    return None


def _tiles(n: int) -> int:
    return -(-n // TILE)


def matmul_tile_work(node: Node) -> tuple[int, int]:
    """(tile multiplications, padded FLOPs) of a matmul-class op: rows padded to whole tiles, as the matrix engine
    computes them (a decode step's few rows still cost a 32-row tile)."""
    x, out = node.inputs[0], node.outputs[0]
    rows, k = _rows_cols(x.shape)
    n = out.shape[-1]
    if node.op == "linear_wgrad":  # dW [K, N] = x^T dy: the rows are the contraction
        rows, k, n = k, rows, node.inputs[1].shape[-1]
    mults = _tiles(rows) * _tiles(k) * _tiles(n)
    if node.op == "swiglu":
        mults *= 2
    return mults, 2 * mults * TILE**3


def matmul_utilization(node: Node, cores: int) -> float:
    """Fraction of the fidelity's peak a matmul reaches: the large-GEMM utilization, times the share of busy cores
    when its output tiles (the unit of work tt-metal's matmuls split over cores) do not fill every core evenly."""
    out = node.outputs[0]
    rows, n = _rows_cols(out.shape)
    if node.op == "linear_wgrad":
        rows = out.shape[0]
    x = _tiles(rows) * _tiles(n) / cores
    return MATMUL_UTIL_MAX * x / math.ceil(x)


def estimate(graph: Graph, mesh: Mesh, perf: PerfConfig, impls: list[str] | None = None) -> PerfReport:
    """Cost of every step of a sharded, scheduled graph on `mesh`; `impls`: each step's `Step.impl` from the place
    pass (default: the device implementation of its op)."""
    layout = getattr(graph, "layout", "tp-dp")
    impl = implementation(mesh, layout)
    overhead = OP_OVERHEAD[(impl, perf.mode)]
    chip = mesh.chip
    lofi = chip.peak_tflops["lofi"] * 1e12
    dram = chip.dram_bw * DRAM_EFFICIENCY[impl]
    formats = _Formats(graph, perf)
    seen_fused: set[str] = set()
    steps = []
    for i, node in enumerate(graph.nodes):
        impl_name = impls[i] if impls is not None else device_impl(node)
        fused = _qkv_key(node)
        first = fused is None or fused not in seen_fused
        if fused:
            seen_fused.add(fused)
        if node.op in COLLECTIVES:
            axis = int(node.attrs["cluster_axis"])
            v = node.outputs[0] if node.op == "all_gather" else node.inputs[0]
            payload = formats.bytes(v)
            t = mesh.ccl_seconds(node.op, payload, axis)
            if not first:  # fused with the layer's first QKV collective: its volume only
                n = mesh.shape[axis]
                t -= 9.07e-6 + 5.82e-6 * (n - 1) if n > 1 else 0.0
            steps.append(StepCost(i, node, f"{impl_name}(cluster_axis={axis})", 0, int(payload),
                                  max(t, 0.0) * CCL_EXPOSED[(impl, perf.mode)], "link"))  # fmt: skip
            continue
        if node.op == "mesh_partition":
            steps.append(StepCost(i, node, impl_name, 0, 0, 0.0, "local"))
            continue
        flops = int(get_op(node.op).flops(node))
        if node.op == "embedding":
            nbytes = formats.bytes(node.inputs[1]) + 2 * formats.bytes(node.outputs[0])
        elif node.op == "kv_cache_write":
            nbytes = formats.bytes(node.inputs[1]) + _padded(node.inputs[1].shape) * FORMAT_BYTES[perf.kv_cache]
        else:
            nbytes = sum(formats.bytes(v) for v in node.inputs) + sum(formats.bytes(v) for v in node.outputs)
        t_mem = nbytes / dram
        if node.op == "attention_decode":  # tt-metal's sdpa_decode gives each (user, KV head) a few cores
            q, kc, vc = node.inputs
            heads = int(node.attrs["kv_heads"] or node.attrs["heads"])
            seen = min(1.0, (int(node.attrs["start"]) + q.shape[1]) / kc.shape[1])  # the cache positions read
            nbytes = formats.bytes(q) + formats.bytes(node.outputs[0]) + seen * (formats.bytes(kc) + formats.bytes(vc))
            t_mem = nbytes / dram
            if q.shape[1] < TILE:
                t_mem /= min(1.0, kc.shape[0] * heads * SDPA_DECODE_CORES_PER_HEAD / chip.cores)
        t_math = 0.0
        if node.op in MATMUL_OPS or node.op == "attention_decode":
            peak = lofi / PHASES[perf.fidelity_of(_fidelity_class(node))]
            if node.op in ("attention", "attention_bwd"):
                util = ATTENTION_UTIL[impl]
            elif node.op == "attention_decode":  # decode: one query row per user in a 32-row tile
                rows = node.inputs[0].shape[1]
                util = ATTENTION_UTIL[impl] if rows >= TILE else MATMUL_UTIL_MAX * rows / TILE
            else:
                _, padded = matmul_tile_work(node)
                util = matmul_utilization(node, chip.cores)
                t_math = padded / (peak * util)
            if node.op in ("attention", "attention_bwd", "attention_decode"):
                t_math = flops / (peak * util)
        bound = "compute" if t_math > t_mem else "memory"
        t = max(t_math, t_mem) + (overhead if first else 0.0)
        steps.append(StepCost(i, node, impl_name, flops, int(nbytes), t, bound))
    if perf.mode == "decode" and HOST_SAMPLING_S_PER_LOGIT[impl]:
        logits = graph.outputs["logits"]
        shape = logits.sharding.global_shape if logits.sharding else logits.shape
        n = shape[0] * shape[1] * shape[2]
        steps.append(StepCost(len(steps), logits.producer, "host: read logits back and sample", 0, 2 * n,
                              n * HOST_SAMPLING_S_PER_LOGIT[impl], "host"))  # fmt: skip
    tokens = next(v for v in graph.inputs if v.name == "tokens")
    gshape = tokens.sharding.global_shape if tokens.sharding else tokens.shape
    users = tokens.shape[0]
    ntok = gshape[0] * gshape[1]
    fid = ", ".join(f"{c} {f}" for c, f in perf.fidelity.items())
    return PerfReport(steps, fid, ntok, perf.mode, impl, users, gshape[1])
