"""spec + mesh + mode -> (sharded, scheduled graph, memory plan, calibrated cost): what `tilegraph lower` prints.

The modes: train (forward, backward, AdamW over `batch` x `seq`), prefill (one forward over `seq` prompt tokens
per user, KV caches written, last-token logits) and decode (one token per user over a KV cache of `context`).
Galaxy runs inference in the 2-D layout of tt-metal's Llama-3.3-70B (graph/passes/shard.py) unless told otherwise;
every other mesh, and training, uses tensor parallel x data parallel.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilegraph.graph.perf import MODES, PerfConfig, apply, default_config

from tilegraph.errors import ShapeError

MIN_PREFILL_CHUNK = 1024  # tokens: the smallest chunk a long prefill is split into


@dataclass
class Lowered:
    spec: object
    mesh: object
    mode: str
    batch: int
    seq: int  # prompt / training length; decode: 1
    context: int | None
    graph: object  # sharded, scheduled
    plan: object  # MemoryPlan
    cost: object  # PerfReport
    perf: PerfConfig
    chunks: int = 1  # prefill: the prompt runs in this many chunks (the graph is one of them)

    def memory(self) -> dict:
        """Per-device bytes in the perf config's formats: weights by group, KV cache, optimizer state."""
        from tilegraph.graph.passes.cost_model import _Formats
        from tilegraph.graph.perf import weight_group

        f = _Formats(self.graph, self.perf)
        out: dict[str, float] = {}
        for v in self.graph.inputs:
            if v.role == "param":
                key = f"weights.{weight_group(v.name)}"
            elif v.role == "state":
                key = "kv_cache" if v.name.startswith("kv.") else "optimizer_state"
            else:
                continue
            out[key] = out.get(key, 0) + f.bytes(v)
        out["weights"] = sum(b for k, b in out.items() if k.startswith("weights."))
        return {k: int(b) for k, b in sorted(out.items())}

    def peak_dram(self) -> int:
        """Weights, KV cache and optimizer state in their formats, plus the planner's peak of live transient bytes
        (bf16 activations and gradients). Not the best-fit pool's high-water mark: on long prefills it holds many
        times the live bytes in fragments (llama-3.1-70b galaxy seq 8192: 14 GiB of slack over 0.6 GiB live), which
        says more about that allocator than about what a device needs."""
        persistent = self.memory()
        return persistent["weights"] + persistent.get("kv_cache", 0) + persistent.get("optimizer_state", 0) + \
            self.plan.persistent.get("inputs", 0) + self.plan.peak_live

    def fits(self) -> bool:
        return self.peak_dram() <= self.plan.dram_bytes

    def check_fits(self, what: str) -> None:
        from tilegraph.errors import ShardingError

        if self.fits():
            return
        gib = 2**30
        parts = {**{k: b for k, b in self.memory().items() if not k.startswith("weights.")},
                 "transient": self.plan.peak_live}  # fmt: skip
        shown = ", ".join(f"{k} {b / gib:.1f}" for k, b in parts.items() if b)
        need, have = self.peak_dram(), self.plan.dram_bytes
        raise ShardingError(
            f"{what} needs {need / gib:.1f} GiB of DRAM per device ({shown} GiB) but a device has {have / gib:.1f} "
            f"GiB: over by {(need - have) / gib:.1f} GiB; use a bigger mesh, a smaller --batch/--seq/--context, "
            f"smaller formats (--weights bfloat8_b / bfloat4_b), or --no-fit-check to see the plan"
        )


def lower(spec, mesh_name: str, mode: str = "train", batch: int | None = None, seq: int | None = None,
          context: int | None = None, layout: str | None = None, tp_axis: int | None = None,
          residual: str = "all_reduce", perf: dict | None = None) -> Lowered:  # fmt: skip
    from tilegraph.graph.autodiff import training_step
    from tilegraph.graph.inference import decode, prefill, prefill_chunk
    from tilegraph.graph.meshes import get_mesh
    from tilegraph.graph.passes.plan_memory import Precision
    from tilegraph.graph.spec import load_spec

    from tilegraph.compiler import Target, compile

    if mode not in MODES:
        raise ShapeError(f"--mode {mode!r} must be one of {', '.join(MODES)}")
    mesh = get_mesh(mesh_name)
    spec = load_spec(spec)
    if layout is None:
        layout = "2d" if mesh.name == "galaxy" and mode != "train" else "tp-dp"
    config = apply(apply(default_config(mode), spec.perf_section(), f"spec {spec.name!r} perf"), perf, "flags")
    if layout == "2d":
        dp = 1
    else:
        dp = mesh.shape[1 - tp_axis] if tp_axis is not None else min(mesh.shape)
    batch = dp if batch is None else batch
    if mode == "decode":
        context = context or 128 + 100
        seq = 1
    else:
        if context is not None:
            raise ShapeError(f"--context is for --mode decode; {mode} uses --seq")
        seq = (spec.max_seq_len if mode == "train" else min(spec.max_seq_len, 128)) if seq is None else seq
    if batch <= 0 or seq <= 0:
        raise ShapeError(f"--batch {batch} and --seq {seq} must be positive")
    weights = config.weights.get("mlp", "bfloat16")
    precision = Precision(weights=weights if weights in ("bfloat16", "bfloat8_b") else "bfloat8_b",
                          optimizer=config.optimizer)  # fmt: skip

    target = Target(backend="ttnn", mesh=mesh, tp_axis=tp_axis, residual=residual, precision=precision,
                    layout=layout, perf=config, fuse_swiglu=False)  # fmt: skip

    def lowered(graph, chunks: int = 1) -> Lowered:
        program = compile(graph, target)
        sharded, plan, cost = program.graph, program.plan, program.cost
        if chunks > 1:  # one chunk at the mean position stands for all: every cost is linear in the position
            for s in cost.steps:
                s.seconds *= chunks
            cost.tokens_per_step, cost.seq = cost.tokens_per_step * chunks, seq
        return Lowered(spec, mesh, mode, batch, seq, context, sharded, plan, cost, config, chunks)

    if mode == "train":
        return lowered(training_step(spec, batch, seq))
    if mode == "decode":
        return lowered(decode(spec, batch, context))
    low = lowered(prefill(spec, batch, seq))
    # tt-metal prefills a long prompt in chunks when its activations do not fit: halve until they do
    chunk = seq
    while not low.fits() and chunk % 2 == 0 and chunk > MIN_PREFILL_CHUNK:
        chunk //= 2
        n = seq // chunk
        low = lowered(prefill_chunk(spec, batch, seq, chunk, (n - 1) * chunk // 2), n)
    if low.chunks > 1:
        low.graph.shard_notes.append(f"prefill in {low.chunks} chunks of {chunk} tokens (the whole prompt's "
                                     f"activations do not fit); the steps shown are one chunk at the mean "
                                     f"position, their times multiplied by {low.chunks}")  # fmt: skip
    return low
