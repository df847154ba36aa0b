"""`tilegraph lower SPEC --mesh NAME`: the device program of a model on a mesh, with memory and time estimates."""

from __future__ import annotations

HELP = "Lower a model spec to a sharded, scheduled device program on a mesh: steps, memory per device, step time."


def add_arguments(parser) -> None:
    parser.add_argument("spec", help="model spec YAML, e.g. specs/llama-3-8b.yaml")
    parser.add_argument("--mesh", required=True, help="n150, n300, t3k, t3k-1x8, galaxy or p150")
    parser.add_argument(
        "--batch", type=int, default=None, help="global batch (default: one sequence per DP replica)"
    )
    parser.add_argument(
        "--seq", type=int, default=None, help="sequence length (default: the spec's max_seq_len)"
    )
    parser.add_argument(
        "--train", action="store_true", help="lower a whole training step (forward, backward, AdamW)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the program and estimates as JSON")
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
    parser.add_argument(
        "--weights", choices=("bfloat16", "bfloat8_b"), default="bfloat16", help="weight dtype"
    )
    parser.add_argument(
        "--fidelity", choices=("lofi", "hifi2", "hifi4"), default="hifi2", help="matmul math fidelity"
    )
    parser.add_argument(
        "--no-fit-check", action="store_true", help="print the plan even if it does not fit in DRAM"
    )
    parser.add_argument("--brief", action="store_true", help="per-op summary instead of one row per step")


def lower(spec, mesh_name: str, batch: int | None, seq: int | None, train: bool, tp_axis=None,
          residual="all_reduce", weights="bfloat16", fidelity="hifi2"):  # fmt: skip
    """spec -> (sharded graph, memory plan, cost report): build, (differentiate), then compile for the device."""
    from tilegraph.compiler import Target, compile
    from tilegraph.errors import ShapeError
    from tilegraph.graph.autodiff import training_step
    from tilegraph.graph.build import build
    from tilegraph.graph.meshes import get_mesh
    from tilegraph.graph.passes.plan_memory import Precision
    from tilegraph.graph.spec import load_spec

    mesh = get_mesh(mesh_name)
    spec = load_spec(spec)
    dp = mesh.shape[1 - tp_axis] if tp_axis is not None else min(mesh.shape)
    batch = dp if batch is None else batch
    seq = spec.max_seq_len if seq is None else seq
    if batch <= 0 or seq <= 0:
        raise ShapeError(f"--batch {batch} and --seq {seq} must be positive")
    graph = training_step(spec, batch, seq) if train else build(spec, batch, seq)
    target = Target(backend="ttnn", mesh=mesh, tp_axis=tp_axis, residual=residual,
                    precision=Precision(weights=weights), fidelity=fidelity)
    program = compile(graph, target)
    return spec, mesh, batch, seq, program.graph, program.plan, program.cost


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


def to_dict(spec, mesh, batch, seq, train, sharded, plan, cost) -> dict:
    return {
        "spec": spec.name, "mesh": mesh.name, "mesh_shape": list(mesh.shape), "batch": batch, "seq": seq,
        "train": train, "tp_axis": sharded.tp_axis, "dp_axis": sharded.dp_axis, "notes": list(sharded.shard_notes),
        "steps": [{
            "index": s.index, "op": s.node.op, "outputs": [v.name for v in s.node.outputs],
            "inputs": [v.name for v in s.node.inputs],
            "output_shapes": [list(v.shape) for v in s.node.outputs],
            "input_shapes": [list(v.shape) for v in s.node.inputs],
            "placements": [_placement(v) for v in s.node.outputs],
            "attrs": {k: (list(a) if isinstance(a, tuple) else a) for k, a in s.node.attrs.items()},
            "impl": s.impl, "flops": s.flops, "bytes": s.bytes, "seconds": s.seconds, "bound": s.bound,
        } for s in cost.steps],
        "memory_per_device": {**plan.persistent, "gradients": plan.gradient_bytes,
                              "at_peak": plan.peak_by_kind, "peak_live_transient": plan.peak_live,
                              "allocated_transient": plan.allocated, "peak_dram": plan.peak_dram,
                              "dram": plan.dram_bytes, "fits": plan.fits, "schedule": plan.schedule},
        "step_seconds": cost.total_seconds, "tokens_per_second": cost.tokens_per_second,
        "seconds_by_bound": cost.seconds_by("bound"), "bottleneck": cost.bottleneck,
    }  # fmt: skip


def run(args) -> int:
    import json

    from tilegraph.files import ensure_writable_file, write_atomic
    from tilegraph.graph.passes.cost import comm_volume
    from tilegraph.graph.passes.plan_memory import Precision

    if args.json:
        ensure_writable_file(args.json, "--json")  # before lowering, not after

    spec, mesh, batch, seq, sharded, plan, cost = lower(
        args.spec,
        args.mesh,
        args.batch,
        args.seq,
        args.train,
        args.tp_axis,
        args.residual,
        args.weights,
        args.fidelity,
    )
    what = f"{spec.name} {'training step' if args.train else 'forward'} (batch {batch}, seq {seq}) on {mesh.name}"
    if not args.no_fit_check:
        plan.check_fits(what)
    gib = 2**30
    print(f"{what} {mesh.shape}: TP {mesh.shape[sharded.tp_axis]} on axis {sharded.tp_axis}, "
          f"DP {mesh.shape[sharded.dp_axis]} on axis {sharded.dp_axis}; {mesh.description}")  # fmt: skip
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
    print(f"memory per device ({plan.schedule} schedule, tile-padded; weights {args.weights}, activations and "
          f"gradients bfloat16, optimizer state float32):")  # fmt: skip
    for k, b in plan.persistent.items():
        print(f"  {k:<16} {b / gib:9.3f} GiB")
    if plan.gradient_bytes:
        print(
            f"  {'gradients':<16} {plan.gradient_bytes / gib:9.3f} GiB  (all weight gradients, live together at clipping)"
        )
    at_peak = ", ".join(f"{k} {b / gib:.3f} GiB" for k, b in plan.peak_by_kind.items())
    print(f"  {'transient peak':<16} {plan.peak_live / gib:9.3f} GiB  (at step {plan.peak_step}: {at_peak})")
    print(f"  {'peak DRAM':<16} {plan.peak_dram / gib:9.3f} GiB of {plan.dram_bytes / gib:.1f} GiB "
          f"({plan.buffers} reused buffers; allocator slack {(plan.allocated - plan.peak_live) / gib:.3f} GiB)"
          + ("" if plan.fits else "  DOES NOT FIT"))  # fmt: skip
    by = cost.seconds_by("bound")
    print(
        f"step time {_fmt_time(cost.total_seconds)} ("
        + ", ".join(f"{k} {_fmt_time(t)}" for k, t in by.items())
        + f"); {cost.tokens_per_second:,.0f} tokens/s at {cost.tokens_per_step} tokens per step, {args.fidelity}"
    )
    volume = comm_volume(sharded, plan, Precision(weights=args.weights), padded=True)
    if volume:
        print("collectives per device: " + ", ".join(
            f"{kind} axis {axis} {b / 1e6:,.1f} MB" for (kind, axis), b in sorted(volume.items())))  # fmt: skip
    print(f"bottleneck: {cost.bottleneck}")
    if args.json:
        data = to_dict(spec, mesh, batch, seq, args.train, sharded, plan, cost)
        # compact: the C encoder, ~10x faster than indent; atomic: never a half-written file
        write_atomic(args.json, json.dumps(data, separators=(",", ":")).encode())
    return 0
