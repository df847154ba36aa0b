"""`tilegraph describe SPEC`: parameters per component and FLOPs per token (forward and one training step)."""

from __future__ import annotations

HELP = "Describe a model spec: parameters per component, FLOPs per token for forward and a training step."


def add_arguments(parser) -> None:
    parser.add_argument("spec", help="model spec YAML, e.g. specs/nano-trickster.yaml")
    parser.add_argument("--batch", type=int, default=1, help="batch size the FLOPs are counted for (default 1)")
    parser.add_argument("--seq", type=int, default=None, help="sequence length (default: the spec's max_seq_len)")


def graph_flops(graph) -> int:
    """Sum of op FLOPs over the live nodes of a graph."""
    from tilegraph.graph.passes.schedule import schedule
    from tilegraph.ops import get_op

    return sum(int(get_op(n.op).flops(n)) for n in schedule(graph).nodes)


def run(args) -> int:
    from tilegraph.graph import build, load_spec, param_shapes, training_step
    from tilegraph.graph.build import param_component

    spec = load_spec(args.spec)
    seq = spec.max_seq_len if args.seq is None else args.seq
    batch = args.batch
    tokens = batch * seq if batch > 0 and seq > 0 else 0

    counts: dict[str, int] = {}
    for name, shape in param_shapes(spec).items():
        n = 1
        for d in shape:
            n *= d
        counts[param_component(name)] = counts.get(param_component(name), 0) + n
    order = ["embedding", "attention", "mlp", "experts", "norms", "lm_head"]
    counts = {k: counts[k] for k in order if k in counts}
    total = sum(counts.values())

    fwd = graph_flops(build(spec, batch, seq))  # validates batch/seq (ShapeError -> exit 2)
    train = graph_flops(training_step(spec, batch, seq))

    kv = f"{spec.num_kv_heads} kv heads, " if spec.num_kv_heads != spec.num_heads else ""
    print(
        f"{spec.name}: vocab {spec.vocab_size}, hidden {spec.hidden_size}, {spec.num_layers} layers, "
        f"{spec.num_heads} heads ({kv}head_dim {spec.head_dim}), {spec.mlp} mlp {spec.mlp_hidden}, "
        f"{'tied' if spec.tie_embeddings else 'untied'} embeddings, max_seq_len {spec.max_seq_len}"
        + _moe_and_window(spec)
    )
    print("parameters:")
    width = max(len(k) for k in counts)
    for comp, n in counts.items():
        print(f"  {comp:<{width}}  {n:>15,}  {100 * n / total:5.1f}%")
    print(f"  {'total':<{width}}  {total:>15,}")
    print(f"FLOPs per token (batch {batch}, seq {seq}; attention counted causally):")
    print(f"  {'forward':<14}{fwd / tokens:>18,.0f}")
    print(f"  {'training step':<14}{train / tokens:>18,.0f}  ({train / fwd:.2f}x forward; backward + clip + AdamW)")
    print(f"one training step of {tokens:,} tokens: {train / 1e9:,.2f} GFLOP")
    return 0


def _moe_and_window(spec) -> str:
    moe = spec.moe
    text = f", moe {moe.experts} experts top-{moe.top_k} (aux coef {moe.aux_loss_coef:g})" if moe else ""
    return text + (f", attention window {spec.attention_window}" if spec.attention_window else "")
