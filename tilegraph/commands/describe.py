"""`tilegraph describe SPEC [SPEC ...]`: parameters per component, FLOPs per token (forward, and a training step
split into attention / MLP / other), and the memory of training (weights, gradients, optimizer state, activations)
for --batch x --seq. Several specs print side by side, one column each."""

from __future__ import annotations

HELP = ("Describe model specs side by side: parameters per component, FLOPs per token (training step split into "
        "attention / MLP / other), training memory for --batch x --seq.")


def add_arguments(parser) -> None:
    parser.add_argument("spec", nargs="+", help="model spec YAML(s), e.g. specs/gpt2-small.yaml specs/mistral-7b.yaml")
    parser.add_argument("--batch", type=int, default=1, help="batch size the FLOPs and memory are counted for (default 1)")
    parser.add_argument("--seq", type=int, default=None, help="sequence length (default: each spec's max_seq_len)")


def graph_flops(graph) -> int:
    """Sum of op FLOPs over the live nodes of a graph."""
    from tilegraph.graph.passes.schedule import schedule
    from tilegraph.ops import get_op

    return sum(int(get_op(n.op).flops(n)) for n in schedule(graph).nodes)


# Value-name leaves (layers.<i>.<leaf>, gradients d:<name>) of the attention block and of the MLP (graph/build.py).
_ATTENTION = {"q", "k", "v", "q_rope", "k_rope", "attn", "attn_out", "q_bias", "k_bias", "v_bias", "attn_out_bias"}
_MLP = {"gate", "up", "swiglu", "geglu", "gelu", "fc", "relu", "mlp_out", "gate_bias", "up_bias", "fc_bias",
        "mlp_out_bias"}


def flop_component(node) -> str:
    """attention / mlp / other for one node of a training step: linears by the weight they multiply, everything
    else by the forward value it computes (or whose gradient it computes)."""
    from tilegraph.graph.build import param_component

    if node.op in ("attention", "attention_bwd", "rope"):
        return "attention"
    if node.op.startswith("moe_"):  # router, experts, dispatch/combine: the MoE layer is the MLP of its block
        return "mlp"
    if node.op == "linear" and node.inputs[1].producer is None:  # x @ W or dy @ W^T: W's component
        return _from_param(param_component, node.inputs[1].name)
    if node.op == "adamw":
        return "other"
    name = node.outputs[0].name
    for prefix in ("grad_acc:", "d:"):
        name = name.removeprefix(prefix)
    if node.op == "linear_wgrad":
        return _from_param(param_component, name)
    leaf = name.rsplit(".", 1)[-1]
    return "attention" if leaf in _ATTENTION else "mlp" if leaf in _MLP else "other"


def _from_param(param_component, name: str) -> str:
    try:
        comp = param_component(name)
    except KeyError:
        return "other"
    return {"attention": "attention", "mlp": "mlp", "experts": "mlp"}.get(comp, "other")


def describe(spec, batch: int, seq: int) -> dict:
    """Everything `describe` prints for one spec, as numbers."""
    from tilegraph.graph import build, param_shapes, training_step
    from tilegraph.graph.build import param_component
    from tilegraph.graph.passes.plan_memory import Precision, plan_memory
    from tilegraph.graph.passes.schedule import schedule
    from tilegraph.ops import get_op

    counts: dict[str, int] = {}
    for name, shape in param_shapes(spec).items():
        n = 1
        for d in shape:
            n *= d
        counts[param_component(name)] = counts.get(param_component(name), 0) + n
    params = {k: counts.get(k, 0) for k in ("embedding", "attention", "mlp", "experts", "norms", "lm_head")}
    params["total"] = sum(counts.values())

    fwd = graph_flops(build(spec, batch, seq))  # validates batch/seq (ShapeError -> exit 2)
    step = schedule(training_step(spec, batch, seq))
    train = {"attention": 0, "mlp": 0, "other": 0}
    for node in step.nodes:
        train[flop_component(node)] += int(get_op(node.op).flops(node))
    train["total"] = sum(train.values())

    # Training memory in float32 (the CPU trainer's dtype): weights, one gradient per weight (all live at once
    # around clipping), AdamW's two moments; activations as graph/passes/plan_memory plans them (live at the step's
    # most: each freed after its last use; tensors padded to 32x32 tiles).
    f32 = Precision(weights="float32", activations="float32", grads="float32", optimizer="float32")
    plan = plan_memory(step, dram_bytes=1 << 62, precision=f32)
    weights = 4 * params["total"]
    memory = {"weights": weights, "gradients": weights, "optimizer state": 2 * weights,
              "activations": _peak_activations(plan)}
    memory["total"] = sum(memory.values())
    return {"params": params, "forward": fwd, "train": train, "memory": memory}


def _peak_activations(plan) -> int:
    """Most activation bytes live at once over the planned order (typically where the forward pass ends)."""
    last = {}
    for i, node in enumerate(plan.order):
        for v in node.inputs:
            last[v] = i
    live = peak = 0
    for i, node in enumerate(plan.order):
        for v in node.outputs:
            if plan.kinds.get(v) == "activation":
                live += plan.bytes_of[v]
        peak = max(peak, live)
        for v in {v for v in node.inputs if last.get(v) == i and plan.kinds.get(v) == "activation"}:
            live -= plan.bytes_of[v]
    return peak


def _headline(spec) -> str:
    kv = f"{spec.num_kv_heads} kv heads, " if spec.num_kv_heads != spec.num_heads else ""
    return (
        f"{spec.name}: vocab {spec.vocab_size}, hidden {spec.hidden_size}, {spec.num_layers} layers, "
        f"{spec.num_heads} heads ({kv}head_dim {spec.head_dim}), {spec.norm}, {spec.mlp} mlp {spec.mlp_hidden}, "
        f"{spec.positions} positions, {'biases, ' if spec.bias else ''}"
        f"{'tied' if spec.tie_embeddings else 'untied'} embeddings, max_seq_len {spec.max_seq_len}"
        + (f", dropout {spec.dropout:g} (embedding, residual, attention probabilities)" if spec.dropout else "")
        + _moe_and_window(spec)
    )


def _gib(n: int) -> str:
    return f"{n / 2**30:,.3f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def run(args) -> int:
    from tilegraph.graph import load_spec

    specs = [load_spec(p) for p in args.spec]
    seqs = [s.max_seq_len if args.seq is None else args.seq for s in specs]
    batch = args.batch
    infos = [describe(s, batch, q) for s, q in zip(specs, seqs)]
    tokens = [batch * q for q in seqs]
    names = [s.name for s in specs]
    label_w = 18
    col_w = max(22, *(len(n) + 2 for n in names))

    def row(label, cells):
        print(f"  {label:<{label_w}}" + "".join(f"{c:>{col_w}}" for c in cells))

    for s in specs:
        print(_headline(s))
    if len(specs) > 1:
        row("", names)
    print("parameters:")
    for comp in infos[0]["params"]:
        if comp != "total" and not any(i["params"][comp] for i in infos):
            continue
        cells = []
        for i in infos:
            n, total = i["params"][comp], i["params"]["total"]
            cells.append(f"{n:,}      " if comp == "total" else f"{n:,} {100 * n / total:5.1f}%")
        row(comp, cells)
    seq_note = f"seq {seqs[0]}" if len(set(seqs)) == 1 else "seq " + "/".join(map(str, seqs))
    print(f"FLOPs per token (batch {batch}, {seq_note}; attention counted causally):")
    row("forward", [f"{i['forward'] / t:,.0f}" for i, t in zip(infos, tokens)])
    row("training step", [f"{i['train']['total'] / t:,.0f}" for i, t in zip(infos, tokens)])
    row("  x forward", [f"{i['train']['total'] / i['forward']:.2f}x" for i in infos])
    print("where the FLOPs of a training step go (forward + backward + clip + AdamW; mlp includes MoE experts and "
          "router; other = logits, embeddings, norms, loss, optimizer):")
    for comp in ("attention", "mlp", "other"):
        row(comp, [f"{100 * i['train'][comp] / i['train']['total']:.1f}%" for i in infos])
    row("GFLOP per step", [f"{i['train']['total'] / 1e9:,.2f}" for i in infos])
    print(f"training memory (float32, AdamW; batch {batch}, {seq_note}):")
    for what in infos[0]["memory"]:
        row(what, [_gib(i["memory"][what]) for i in infos])
    return 0


def _moe_and_window(spec) -> str:
    moe = spec.moe
    text = f", moe {moe.experts} experts top-{moe.top_k} (aux coef {moe.aux_loss_coef:g})" if moe else ""
    return text + (f", attention window {spec.attention_window}" if spec.attention_window else "")
