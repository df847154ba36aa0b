"""`tilegraph lower SPEC --mesh NAME`: the device program of a model on a mesh, with memory and time estimates."""

from __future__ import annotations

HELP = "Lower a model spec to a sharded, scheduled device program on a mesh: steps, memory per device, step time."


def add_arguments(parser) -> None:
    parser.add_argument("spec", help="model spec YAML, e.g. specs/llama-3.1-8b.yaml")
    parser.add_argument("--mesh", required=True, help="n150, n300, t3k, t3k-1x8, galaxy or p150")
    parser.add_argument("--mode", choices=("train", "prefill", "decode"), default=None,
                        help="train: forward+backward+AdamW over --batch x --seq; prefill (default): one forward over "
                             "--seq prompt tokens per user, KV cache written, last-token logits; decode: one token "
                             "per user for --batch users over a KV cache of --context tokens")  # fmt: skip
    parser.add_argument("--train", action="store_true", help="the same as --mode train")
    parser.add_argument(
        "--batch", type=int, default=None, help="global batch / users (default: one per DP replica)"
    )
    parser.add_argument("--seq", type=int, default=None,
                        help="sequence length (train default: the spec's max_seq_len; prefill default: 128)")  # fmt: skip
    parser.add_argument("--context", type=int, default=None,
                        help="decode: KV cache length in tokens, including the new one (default 228)")  # fmt: skip
    parser.add_argument("--json", metavar="FILE", help="also write the program and estimates as JSON")
    parser.add_argument("--layout", choices=("tp-dp", "2d"), default=None,
                        help="tp-dp: tensor parallel on one mesh axis, data parallel on the other; 2d: tensor "
                             "parallel on both (default on galaxy for prefill and decode, as tt-metal's Llama)")  # fmt: skip
    parser.add_argument(
        "--tp-axis",
        type=int,
        choices=(0, 1),
        default=None,
        help="mesh axis for tensor parallelism (default: the longer one); the other is data parallel",
    )
    parser.add_argument("--residual", choices=("all_reduce", "reduce_scatter"), default="all_reduce",
                        help="after row-parallel matmuls: all_reduce to a replicated residual, or reduce_scatter to a "
                             "hidden-split one with distributed norms")  # fmt: skip
    formats = ("bfloat16", "bfloat8_b", "bfloat4_b")
    parser.add_argument("--weights", choices=formats, default=None, help="format of every weight group")
    for group in ("attention", "mlp", "lm-head"):
        parser.add_argument(f"--weights-{group}", choices=formats, default=None,
                            help=f"format of the {group} weights (overrides --weights and the spec's perf:)")  # fmt: skip
    parser.add_argument("--kv-cache", choices=("bfloat16", "bfloat8_b"), default=None, help="KV cache format")
    parser.add_argument("--optimizer-state", choices=("float32", "bfloat16"), default=None,
                        help="AdamW moments format (train)")  # fmt: skip
    fids = ("lofi", "hifi2", "hifi3", "hifi4")
    parser.add_argument("--fidelity", choices=fids, default=None, help="math fidelity of every matmul class")
    for cls in ("mlp", "attention-proj", "attention", "lm-head"):
        parser.add_argument(f"--fidelity-{cls}", choices=fids, default=None,
                            help=f"math fidelity of the {cls} matmuls (overrides --fidelity)")  # fmt: skip
    parser.add_argument(
        "--no-fit-check", action="store_true", help="print the plan even if it does not fit in DRAM"
    )
    parser.add_argument("--brief", action="store_true", help="per-op summary instead of one row per step")


def perf_flags(args) -> dict:
    """The `perf:` overrides the command line gives (graph/perf.py applies them over the spec's)."""
    weights = {g: args.weights for g in ("attention", "mlp", "lm_head")} if args.weights else {}
    for group in ("attention", "mlp", "lm_head"):
        if getattr(args, f"weights_{group}"):
            weights[group] = getattr(args, f"weights_{group}")
    fidelity = {c: args.fidelity for c in ("mlp", "attention_proj", "attention", "lm_head")} if args.fidelity else {}
    for cls in ("mlp", "attention_proj", "attention", "lm_head"):
        if getattr(args, f"fidelity_{cls}"):
            fidelity[cls] = getattr(args, f"fidelity_{cls}")
    out: dict = {"weights": weights, "fidelity": fidelity}
    if args.kv_cache:
        out["kv_cache"] = args.kv_cache
    if args.optimizer_state:
        out["optimizer"] = args.optimizer_state
    return out


def _shape(v) -> str:
    return "x".join(map(str, v.shape)) or "()"


def _placement(v) -> str:
    return str(v.sharding) if v.sharding is not None else ""


def _fmt_time(s: float) -> str:
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def _clip(s: str, w: int = 56) -> str:
    return s if len(s) <= w else s[: w - 3] + "..."


def _table(rows: list[tuple]) -> list[str]:
    rows = [tuple(_clip(c) for c in r) for r in rows]
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]


def to_dict(low) -> dict:
    from tilegraph.graph.passes.cost_model import error_band

    cost, plan, g = low.cost, low.plan, low.graph
    band = error_band(low.mode, low.mesh.name, g.layout)
    return {
        "spec": low.spec.name, "mesh": low.mesh.name, "mesh_shape": list(low.mesh.shape), "mode": low.mode,
        "batch": low.batch, "seq": low.seq, "context": low.context, "train": low.mode == "train",
        "layout": g.layout, "tp_axis": g.tp_axis, "dp_axis": g.dp_axis, "notes": list(g.shard_notes),
        "implementation": cost.implementation, "perf": {"weights": dict(low.perf.weights),
            "kv_cache": low.perf.kv_cache, "activations": low.perf.activations, "optimizer": low.perf.optimizer,
            "fidelity": dict(low.perf.fidelity)},
        "steps": [{
            "index": s.index, "op": s.node.op, "outputs": [v.name for v in s.node.outputs],
            "inputs": [v.name for v in s.node.inputs],
            "output_shapes": [list(v.shape) for v in s.node.outputs],
            "input_shapes": [list(v.shape) for v in s.node.inputs],
            "placements": [_placement(v) for v in s.node.outputs],
            "attrs": {k: (list(a) if isinstance(a, tuple) else a) for k, a in s.node.attrs.items()},
            "impl": s.impl, "flops": s.flops, "bytes": s.bytes, "seconds": s.seconds, "bound": s.bound,
        } for s in cost.steps],
        "memory_per_device": {**low.memory(), "gradients": plan.gradient_bytes,
                              "peak_live_transient": plan.peak_live, "allocated_transient": plan.allocated,
                              "peak_dram": low.peak_dram(), "dram": plan.dram_bytes, "fits": low.fits(),
                              "schedule": plan.schedule},
        "step_seconds": cost.total_seconds, "step_ms": cost.step_ms, "ttft_ms": cost.ttft_ms,
        "tokens_per_s_per_user": cost.tokens_per_s_per_user, "tokens_per_second": cost.tokens_per_second,
        "error_band": None if band is None else {"regime": band[0], "min_ratio": band[1], "max_ratio": band[2],
                                                 "source": "docs/cost-model.md"},
        "seconds_by_bound": cost.seconds_by("bound"), "bottleneck": cost.bottleneck,
    }  # fmt: skip


def run(args) -> int:
    import json

    from tilegraph.errors import ShapeError
    from tilegraph.files import ensure_writable_file, write_atomic
    from tilegraph.graph.lowering import lower
    from tilegraph.graph.passes.cost_model import error_band

    if args.json:
        ensure_writable_file(args.json, "--json")  # before lowering, not after
    if args.train and args.mode not in (None, "train"):
        raise ShapeError(f"--train and --mode {args.mode} contradict each other; give one")
    mode = "train" if args.train else (args.mode or "prefill")
    low = lower(args.spec, args.mesh, mode, args.batch, args.seq, args.context, args.layout, args.tp_axis,
                args.residual, perf_flags(args))  # fmt: skip
    spec, mesh, sharded, plan, cost = low.spec, low.mesh, low.graph, low.plan, low.cost
    size = f"batch {low.batch}, context {low.context}" if mode == "decode" else f"batch {low.batch}, seq {low.seq}"
    what = {"train": "training step", "prefill": "prefill", "decode": "decode step"}[mode]
    what = f"{spec.name} {what} ({size}) on {mesh.name}"
    if not args.no_fit_check:
        low.check_fits(what)
    gib = 2**30
    if sharded.layout == "2d":
        par = (f"2-D TP: {mesh.shape[sharded.tp_axis]} on axis {sharded.tp_axis} (heads, MLP), "
               f"{mesh.shape[sharded.dp_axis]} on axis {sharded.dp_axis} (hidden)")  # fmt: skip
    else:
        par = (f"TP {mesh.shape[sharded.tp_axis]} on axis {sharded.tp_axis}, "
               f"DP {mesh.shape[sharded.dp_axis]} on axis {sharded.dp_axis}")  # fmt: skip
    print(f"{what} {mesh.shape}: {par}; {mesh.description}")
    print(f"formats and fidelity ({mode} defaults < spec perf: < flags): {low.perf.describe()}")
    for note in sharded.shard_notes:
        print(f"note: {note}")
    if args.brief:
        rows = [("op", "steps", "impl", "MB moved", "est. time", "share")]
        total = cost.total_seconds or 1.0
        for op, t in cost.seconds_by("op").items():
            steps = [s for s in cost.steps if s.node.op == op]
            mb = sum(s.bytes for s in steps) / 1e6
            rows.append((op, str(len(steps)), steps[0].impl.split("(cluster")[0], f"{mb:.1f}", _fmt_time(t),
                         f"{100 * t / total:.1f}%"))  # fmt: skip
    else:
        rows = [("#", "op", "output", "shard shape <- inputs", "placement", "impl", "MB moved", "est. time")]
        for s in cost.steps:
            n = s.node
            shapes = " ".join(_shape(v) for v in n.outputs) + " <- " + ", ".join(_shape(v) for v in n.inputs)
            rows.append((str(s.index), n.op, n.outputs[0].name, shapes, _placement(n.outputs[0]), s.impl,
                         f"{s.bytes / 1e6:.2f}", _fmt_time(s.seconds)))  # fmt: skip
    print("\n".join(_table(rows)))
    print(f"memory per device ({plan.schedule} schedule, tile-padded, in the formats above):")
    for k, b in low.memory().items():
        print(f"  {k:<18} {b / gib:9.3f} GiB")
    if plan.gradient_bytes:
        print(f"  {'gradients':<18} {plan.gradient_bytes / gib:9.3f} GiB  (all weight gradients, live together at "
              f"clipping)")  # fmt: skip
    at_peak = ", ".join(f"{k} {b / gib:.3f} GiB" for k, b in plan.peak_by_kind.items())
    print(f"  {'transient peak':<18} {plan.peak_live / gib:9.3f} GiB  (at step {plan.peak_step}: {at_peak})")
    print(f"  {'peak DRAM':<18} {low.peak_dram() / gib:9.3f} GiB of {plan.dram_bytes / gib:.1f} GiB "
          f"({plan.buffers} reused buffers; allocator slack {(plan.allocated - plan.peak_live) / gib:.3f} GiB)"
          + ("" if low.fits() else "  DOES NOT FIT"))  # fmt: skip
    by = cost.seconds_by("bound")
    print(f"step time {_fmt_time(cost.total_seconds)} (" + ", ".join(f"{k} {_fmt_time(t)}" for k, t in by.items())
          + f"); {cost.tokens_per_second:,.0f} tokens/s at {cost.tokens_per_step} tokens per step")  # fmt: skip
    if mode == "prefill":
        print(f"time to first token: {cost.ttft_ms:,.1f} ms per user ({cost.users} user(s) per replica per step)")
    elif mode == "decode":
        print(f"decode: {cost.tokens_per_s_per_user:,.1f} tokens/s/user, {cost.tokens_per_second:,.0f} tokens/s "
              f"for {low.batch} users")  # fmt: skip
    band = error_band(mode, mesh.name, sharded.layout)
    if band is None:
        print(f"error band: none stated: Tenstorrent publishes no {mode} measurement for this regime "
              f"({cost.implementation}); the estimate is the model's, unchecked (docs/cost-model.md)")  # fmt: skip
    else:
        regime, lo, hi, n = band
        print(f"error band ({regime}): estimate/published time {lo:.2f}..{hi:.2f} over {n} published "
              f"configurations (docs/cost-model.md; `tilegraph calibrate` recomputes it)")  # fmt: skip
    print(f"bottleneck: {cost.bottleneck}")
    if args.json:
        data = to_dict(low)
        # compact: the C encoder, ~10x faster than indent; atomic: never a half-written file
        write_atomic(args.json, json.dumps(data, separators=(",", ":")).encode())
    return 0
