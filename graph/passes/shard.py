"""shard: (graph, mesh) -> an SPMD graph of per-device shards with explicit collectives. A pure function.

Every Value of the result has its *local* (per-device) shape as its type and a `Sharding` that says how the global
tensor lies on the mesh: one placement per mesh axis,
  R            replicated: every device along the axis holds the whole tensor,
  S(d)         sharded: device k of the axis holds the k-th of N equal pieces along dim d
               (S(d)* with an `order`: the dim is cut into blocks (heads) which are permuted first),
  P / P(mean)  partial: the tensor is the sum (or mean) over the axis of what the devices hold.
That is the model of tt-metal's mesh tensors (ShardTensor2dMesh / ReplicateTensorToMesh) plus the pending
reductions the collectives resolve.

The plan (Megatron-style, on 2-D meshes like tt-metal's Llama):
- tensor parallel (TP) on one mesh axis: wq/wk/wv/w1/w3 column-parallel (S on the output dim), wo/w2 row-parallel
  (S on the input dim) so their products are partial sums, resolved by all_reduce (residual="all_reduce") or by
  reduce_scatter onto a hidden-split residual stream (residual="reduce_scatter"; the norms then gather the
  hidden dim first: distributed RMSNorm as all_gather -> normalize, since the next column-parallel matmul needs the
  whole row anyway). Heads are split across devices; when there are fewer KV heads than TP devices, wk/wv (and so K
  and V) are replicated and the query heads are dealt out strided so that every device's heads map onto the KV heads
  in the order attention expects. An untied lm_head is vocab-parallel and the logits are gathered for the loss.
- data parallel (DP) on the other axis: token batches split; weight gradients become partial over the axis and are
  all_reduced before clipping and AdamW; the loss is the mean of per-replica means (all_reduce mean), and the loss
  seed of the backward pass is scaled by 1/DP so that every gradient is an exact partial sum.
The pass propagates placements through the graph in order; each op's rule (`Op.shard` in its module) says which input
placements it accepts and what its outputs then are; a mismatch inserts the collective that converts it
(P->R all_reduce, P->S reduce_scatter, S->R all_gather, R->S mesh_partition, a local slice). Since it runs on the
graph *after* autodiff, backward ops are sharded by the same rules and the backward collectives appear on their own.
Cases that cannot be split raise ShardingError, or fall back to replication with a note in `graph.shard_notes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tilegraph.graph.ir import Graph, Node, Value
from tilegraph.graph.meshes import Mesh, get_mesh
from tilegraph.graph.passes.schedule import drop_dead
from tilegraph.ops import get_op
from tilegraph.ops.placement import MeshAxis, P, Partial, R, Replicate, Shard, last_dim, no_partial  # noqa: F401

from tilegraph.errors import ShardingError

CCL_OPS = ("all_gather", "reduce_scatter", "all_reduce", "mesh_partition", "all_to_all")
# "tp-dp": tensor parallel on one mesh axis, data parallel on the other. "2d": tensor parallel on both (the second
# axis splits the hidden dim of the block weights), as tt-metal's Llama-3.3-70B runs on Galaxy.
LAYOUTS = ("tp-dp", "2d")


# Placements (R, S(d), P) and the helpers of sharding rules live in tilegraph.ops.placement, next to the ops whose
# `shard` methods use them.
@dataclass(frozen=True)
class Sharding:
    """How one value lies on the mesh: a placement per mesh axis, and the global (unsharded) shape."""

    mesh: str
    placements: tuple
    global_shape: tuple[int, ...]

    def __str__(self) -> str:
        return "[" + ",".join(map(str, self.placements)) + "]"


def local_shape(global_shape, placements, mesh_shape) -> tuple[int, ...]:
    shape = list(global_shape)
    for axis, p in enumerate(placements):
        if isinstance(p, Shard):
            n = mesh_shape[axis]
            if shape[p.dim] % n:
                raise ShardingError(
                    f"dim {p.dim} of shape {list(global_shape)} ({shape[p.dim]}) is not divisible by the "
                    f"{n} devices of mesh axis {axis}"
                )
            shape[p.dim] //= n
    return tuple(shape)


# -- the plan: which mesh axis does what, and where the parameters go -------------------------------------------
# issue 14 (arch-a): the bias of each linear (graph/build.py names it b<x> next to its weight w<x>).
_BIAS_OF = {"bq": "wq", "bk": "wk", "bv": "wv", "bo": "wo", "b1": "w1", "b3": "w3", "b2": "w2"}


def strided_head_order(heads: int, kv_heads: int, n: int) -> tuple[int, ...]:
    """Query-head order so that device d's heads, in local order, use KV heads 0..kv_heads-1 as GQA expects:
    device d gets, for each KV group g, heads g*G + d*k/kv + j (G = heads/kv_heads, k = heads/n per device)."""
    per_dev = heads // n
    per_group = per_dev // kv_heads
    group = heads // kv_heads
    return tuple(
        g * group + d * per_group + j for d in range(n) for g in range(kv_heads) for j in range(per_group)
    )


class Plan:
    """Parameter and input placements for one mesh; records fallbacks as notes."""

    def __init__(self, graph: Graph, mesh: Mesh, tp_axis: int | None, residual: str, layout: str = "tp-dp"):
        if residual not in ("all_reduce", "reduce_scatter"):
            raise ShardingError(f"residual={residual!r} must be 'all_reduce' or 'reduce_scatter'")
        if layout not in LAYOUTS:
            raise ShardingError(f"layout={layout!r} must be one of {', '.join(LAYOUTS)}")
        if tp_axis is None:  # the longer axis is TP (tt-metal's 1-D TP meshes are (1, N)); ties go to axis 1
            tp_axis = 0 if mesh.shape[0] > mesh.shape[1] else 1
        if tp_axis not in (0, 1):
            raise ShardingError(f"tp_axis={tp_axis!r} must be 0 or 1")
        self.mesh = mesh
        self.tp_axis, self.dp_axis = tp_axis, 1 - tp_axis
        self.tp, self.dp = mesh.shape[tp_axis], mesh.shape[1 - tp_axis]
        self.layout = layout
        # 2-D tensor parallelism (tt-metal's Llama on Galaxy): the second axis splits the hidden dim of every
        # block weight instead of the batch; no data parallelism.
        self.hidden_tp = self.dp if layout == "2d" else 1
        if layout == "2d":
            self.dp = 1
        roles = {tp_axis: "tp", 1 - tp_axis: "tp-hidden" if layout == "2d" else "dp"}
        self.axes = [MeshAxis(a, mesh.shape[a], roles[a], residual if a == tp_axis else "all_reduce")
                     for a in (0, 1)]  # fmt: skip
        self.notes: list[str] = []  # fallbacks taken and layout choices, each once
        self.q_order: tuple[int, ...] | None = None
        self.attention_tp = True
        self.tied_output = any(n.op == "linear" and n.attrs.get("transpose_w") and n.inputs[1].name == "tok_embedding"
                               for n in graph.nodes)  # fmt: skip
        self._check_heads(graph)
        self.moe_ep = self._check_moe(graph)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    def _check_heads(self, graph: Graph) -> None:
        attn = next((n for n in graph.nodes if n.op in ("attention", "attention_decode")), None)
        self.kv_split = True
        if attn is None or self.tp == 1:
            return
        nh, nkv = int(attn.attrs["heads"]), int(attn.attrs["kv_heads"])
        tp, name = self.tp, self.mesh.name
        if attn.attrs.get("alibi"):  # each head's ALiBi slope depends on its global index (ops/attention.py)
            self.attention_tp = self.kv_split = False
            self.note(f"fallback: attention replicated over TP {tp} (ALiBi attention is not split by heads)")
            return
        if attn.attrs.get("dropout"):  # the probabilities' dropout mask is drawn by global index (ops/attention.py)
            self.attention_tp = self.kv_split = False
            self.note(f"fallback: attention replicated over TP {tp} (attention dropout draws its mask whole)")
            return
        if nh % tp:
            raise ShardingError(
                f"num_heads {nh} is not divisible by the tensor-parallel degree {tp} (mesh {name} axis "
                f"{self.tp_axis}); use a mesh or --tp-axis whose size divides {nh}"
            )
        if nkv % tp == 0:
            return
        self.kv_split = False
        if (nh // tp) % nkv == 0:
            self.q_order = strided_head_order(nh, nkv, tp)
            self.note(
                f"kv_heads {nkv} not divisible by TP {tp}: wk/wv (so K and V) replicated on every TP device; query "
                f"heads dealt out strided so each device has heads of every KV group"
            )
        else:
            self.attention_tp = False
            self.note(
                f"fallback: attention replicated over TP {tp} (kv_heads {nkv} not divisible by TP and "
                f"{nh // tp} query heads per device cannot cover the {nkv} KV groups evenly)"
            )

    def _check_moe(self, graph: Graph) -> bool:
        """Expert parallel on the TP axis when the experts and the sequence divide over it (else replicated)."""
        node = next((n for n in graph.nodes if n.op == "moe_experts"), None)
        if node is None or self.tp == 1:
            return False
        experts, (batch, seq) = node.inputs[2].shape[0], node.inputs[0].shape[:2]
        # Tokens split by sequence; a decode step (one token per user) splits its users instead, when no DP axis
        # splits them already.
        self.moe_token_dim = 1 if seq % self.tp == 0 else 0 if self.dp == 1 and batch % self.tp == 0 else None
        if experts % self.tp or self.moe_token_dim is None:
            self.note(f"fallback: MoE experts replicated over TP {self.tp} (experts {experts} and seq {seq} -- or, "
                      f"without DP, batch {batch} -- must divide by it for expert parallelism)")
            return False
        by = "sequence" if self.moe_token_dim == 1 else "user (batch)"
        self.note(f"MoE: expert parallel, {experts // self.tp} of {experts} experts per device of TP axis "
                  f"{self.tp_axis}; tokens split by {by}, all_to_all dispatch and combine")
        return True

    def tp_param(self, name: str, shape: tuple[int, ...]):
        """Placement of a parameter (or its optimizer moment) on the TP axis."""
        leaf = name.split(":", 1)[-1].rsplit(".", 1)[-1]
        tp = self.tp
        if leaf == "router":
            return R
        if leaf in ("expert_w1", "expert_w3", "expert_w2"):
            return Shard(0) if self.moe_ep else R
        if tp > 1 and len(shape) == 1 and leaf in _BIAS_OF:
            return self.tp_bias(leaf, shape)
        if tp == 1 or len(shape) != 2:
            return R
        if leaf in ("wq", "wk", "wv", "wo"):
            if not self.attention_tp:
                return R
            if leaf == "wq":
                return Shard(1, self.q_order)
            if leaf == "wo":
                return Shard(0, self.q_order)
            return Shard(1) if self.kv_split else R
        if leaf in ("w1", "w3", "w2"):
            ffn = shape[1] if leaf != "w2" else shape[0]
            if ffn % tp:
                self.note(f"fallback: MLP replicated over TP {tp} (mlp_hidden {ffn} not divisible)")
                return R
            return Shard(0) if leaf == "w2" else Shard(1)
        if leaf == "lm_head":
            if shape[1] % tp:
                self.note(f"fallback: lm_head replicated over TP {tp} (vocab {shape[1]} not divisible)")
                return R
            return Shard(1)
        if leaf == "tok_embedding" and self.tied_output:
            self.note(f"tied embeddings: the output projection (the {shape[0]} x {shape[1]} embedding table) runs "
                      f"replicated over TP {tp}; an untied lm_head (tie_embeddings: false) would be vocab-parallel")  # fmt: skip
        elif leaf not in ("tok_embedding", "pos_embedding"):
            self.note(f"fallback: parameter {name!r} (unknown role) replicated over TP")
        return R

    def tp_bias(self, leaf: str, shape: tuple[int, ...]):
        """A linear's bias follows its weight's output dim: split with column-parallel weights (wq's strided head
        order included), replicated after row-parallel ones (wo, w2: added once, to the reduced sum)."""
        weight = self.tp_param(_BIAS_OF[leaf], (shape[0], shape[0]) if leaf in ("bo", "b2") else (1, shape[0]))
        return Shard(0, weight.order) if isinstance(weight, Shard) and weight.dim == 1 else R

    def hidden_param(self, name: str, shape: tuple[int, ...]):
        """2-D layout: placement of a parameter on the hidden-split axis. QKV, W1/W3 and lm_head split their input
        (hidden) dim, so their products are partial sums over the axis (all_reduce on it, as tt-metal's Galaxy
        Llama does after QKV and W1/W3); WO and W2 split their output (hidden) dim, leaving the residual stream
        split over the axis."""
        leaf = name.split(":", 1)[-1].rsplit(".", 1)[-1]
        n = self.hidden_tp
        if n == 1 or len(shape) != 2:
            return R
        dim = {"wq": 0, "wk": 0, "wv": 0, "w1": 0, "w3": 0, "lm_head": 0, "wo": 1, "w2": 1}.get(leaf)
        if dim is None:
            return R
        if shape[dim] % n:
            self.note(f"fallback: {leaf} replicated over the hidden axis ({shape[dim]} not divisible by {n})")
            return R
        return Shard(dim)

    def input_placements(self, v: Value) -> tuple:
        pl = [R, R]
        if v.role in ("param", "state") and self.hidden_tp > 1 and not v.name.startswith("kv."):
            pl[self.dp_axis] = self.hidden_param(v.name, v.shape)
        if v.role == "state" and v.name.startswith("kv."):  # a KV cache [users, positions, kv_heads*head_dim]
            if self.tp > 1 and self.kv_split and self.attention_tp:
                pl[self.tp_axis] = Shard(2)
            if self.hidden_tp > 1 and v.shape[0] % self.hidden_tp == 0:
                pl[self.dp_axis] = Shard(0)  # 2-D layout: decode users split over the second axis, as tt-metal does
            if self.dp > 1:
                if v.shape[0] % self.dp:
                    raise ShardingError(
                        f"batch {v.shape[0]} of KV cache {v.name!r} is not divisible by the data-parallel degree "
                        f"{self.dp} (mesh {self.mesh.name} axis {self.dp_axis}); use a multiple of {self.dp}"
                    )
                pl[self.dp_axis] = Shard(0)
            return tuple(pl)
        if v.role in ("param", "state"):
            pl[self.tp_axis] = self.tp_param(v.name, v.shape)
        elif v.role == "input" and len(v.shape) >= 1 and self.dp > 1:
            if v.shape[0] % self.dp:
                raise ShardingError(
                    f"batch {v.shape[0]} of input {v.name!r} is not divisible by the data-parallel degree "
                    f"{self.dp} (mesh {self.mesh.name} axis {self.dp_axis}); use a batch that is a multiple of {self.dp}"
                )
            pl[self.dp_axis] = Shard(0)
        return tuple(pl)


# -- per-op rules: (node, input placements on one axis, axis) -> (wanted input placements, output placements) ----
# Ops carry their own rule as `Op.shard` (ops/placement.py describes the protocol); an op without one runs
# replicated (reported in shard_notes).
def rule_replicated(node, pls, ax):
    return [R] * len(pls), [R] * len(node.outputs)


# -- the pass ------------------------------------------------------------------------------------------------------
class _Sharder:
    def __init__(self, graph: Graph, mesh: Mesh, plan: Plan):
        self.graph, self.mesh, self.plan = graph, mesh, plan
        self.g = Graph(f"{graph.name}@{mesh.name}")
        # old value -> {placements: new value}; the first entry is where the value was produced.
        self.env: dict[Value, dict[tuple, Value]] = {}
        self.fallbacks: set[str] = set()
        self.grad_hint = self._grad_hints()

    def _grad_hints(self) -> dict[Value, tuple]:
        """Gradient value -> placements of the parameter it updates (through gradient-accumulation adds), so a
        weight gradient of replicated operands is computed already split like its parameter (no redundant work)."""
        hint: dict[Value, tuple] = {}
        for node in self.graph.nodes:
            if node.op == "adamw":
                hint[node.inputs[1]] = self.plan.input_placements(node.inputs[0])
        for node in reversed(self.graph.nodes):
            if node.op == "add" and node.outputs[0] in hint:
                for v in node.inputs:
                    hint.setdefault(v, hint[node.outputs[0]])
        return hint

    def _split_wgrad_like_param(self, node: Node, want: list, outs: list) -> None:
        target = self.grad_hint.get(node.outputs[0])
        if target is None:
            return
        kdim, ndim = (1, 0) if node.attrs["transpose_w"] else (0, 1)
        for a, ax in enumerate(self.plan.axes):
            t = target[a]
            if ax.size == 1 or not isinstance(t, Shard) or t.order is not None or want[a] != [R, R]:
                continue
            if t.dim == ndim:
                want[a], outs[a] = [R, Shard(last_dim(node.inputs[1]))], [t]
            elif t.dim == kdim:
                want[a], outs[a] = [Shard(last_dim(node.inputs[0])), R], [t]

    # new values ------------------------------------------------------------------------------------------------
    def _tag(self, new: Value, placements: tuple, global_shape) -> Value:
        new.sharding = Sharding(self.mesh.name, tuple(placements), tuple(global_shape))
        return new

    def _home(self, old: Value) -> tuple[tuple, Value]:
        return next(iter(self.env[old].items()))

    def placements(self, old: Value) -> tuple:
        return self._home(old)[0]

    def get(self, old: Value, want: tuple) -> Value:
        """The new value holding `old` with placements `want`, inserting collectives as needed."""
        versions = self.env[old]
        if want in versions:
            return versions[want]
        have, cur = self._home(old)
        have = list(have)
        # Resolve partials first, then gathers, then slices: each step changes one axis.
        order = sorted(
            range(len(want)), key=lambda a: (not isinstance(have[a], Partial), isinstance(want[a], Shard))
        )
        for a in order:
            if have[a] != want[a]:
                cur = self._convert(old, cur, tuple(have), a, want[a])
                have[a] = want[a]
                versions.setdefault(tuple(have), cur)
        return cur

    def _ccl(self, op: str, cur: Value, placements: tuple, global_shape, name: str, **attrs) -> Value:
        out = self.g.call(op, cur, name=name, **attrs)
        return self._tag(out, placements, global_shape)

    def _convert(self, old: Value, cur: Value, have: tuple, axis: int, dst) -> Value:
        src, n = have[axis], self.mesh.shape[axis]
        new_pl = list(have)
        new_pl[axis] = dst
        new_pl = tuple(new_pl)
        common = {"cluster_axis": axis, "devices": n}
        tag = f"{old.name}@{axis}"
        if isinstance(src, Partial):
            if isinstance(dst, Shard) and dst.order is None and src.reduce == "sum":
                return self._ccl("reduce_scatter", cur, new_pl, old.shape, f"{tag}.rs", dim=dst.dim, **common)
            mid = list(have)
            mid[axis] = R
            cur = self._ccl(
                "all_reduce", cur, tuple(mid), old.shape, f"{tag}.ar", reduce=src.reduce, **common
            )
            return cur if dst == R else self._convert(old, cur, tuple(mid), axis, dst)
        if isinstance(src, Shard):
            if src.order is not None:
                raise ShardingError(f"value {old.name!r} is split by permuted heads on mesh axis {axis}; "
                                    f"it cannot be regathered to {dst}")  # fmt: skip
            mid = list(have)
            mid[axis] = R
            cur = self._ccl("all_gather", cur, tuple(mid), old.shape, f"{tag}.ag", axis_dim=src.dim, **common)
            return cur if dst == R else self._convert(old, cur, tuple(mid), axis, dst)
        # src is replicated
        if isinstance(dst, Shard):
            if dst.order is not None:
                raise ShardingError(
                    f"value {old.name!r}: no local slice by permuted heads on mesh axis {axis}"
                )
            return self._ccl("mesh_partition", cur, new_pl, old.shape, f"{tag}.part", dim=dst.dim, **common)
        # R -> P(sum): only constants can be pre-divided (the loss seed of a data-parallel backward pass)
        node = old.producer
        if node is not None and node.op == "fill":
            out = self.g.call(
                "fill", name=f"{tag}.seed", **{**node.attrs, "value": float(node.attrs["value"]) / n}
            )
            return self._tag(out, new_pl, old.shape)
        raise ShardingError(f"value {old.name!r} would have to become a partial sum over mesh axis {axis}")

    # nodes ---------------------------------------------------------------------------------------------------
    def add_input(self, v: Value) -> None:
        pl = self.plan.input_placements(v)
        shape = local_shape(v.shape, pl, self.mesh.shape)
        new = self.g._add_input(v.name, shape, v.dtype, v.role)
        self.env[v] = {pl: self._tag(new, pl, v.shape)}

    def node(self, node: Node) -> None:
        if node.op in CCL_OPS:
            raise ShardingError(f"graph {self.graph.name!r} is already sharded (it has a {node.op} node)")
        if node.op == "global_norm":
            return self._global_norm(node)
        if node.op in ("moe_experts", "moe_experts_bwd") and self.plan.moe_ep:
            return self._moe_expert_parallel(node)
        if node.op == "rmsnorm" and self._hidden_split(node.inputs[0]):
            return self._distributed_rmsnorm(node)
        rule = get_op(node.op).shard
        if rule is None:
            rule = rule_replicated
            if node.op not in self.fallbacks:
                self.fallbacks.add(node.op)
                self.plan.note(f"fallback: op {node.op!r} has no sharding rule; run replicated")
        ins_pl = [self.placements(v) for v in node.inputs]
        want = [[R] * len(node.inputs) for _ in range(2)]
        outs = [[R] * len(node.outputs) for _ in range(2)]
        for a, ax in enumerate(self.plan.axes):
            if ax.size == 1:
                continue
            w, o = rule(node, [p[a] for p in ins_pl], ax)
            want[a], outs[a] = list(w), list(o)
        if node.op == "linear_wgrad":
            self._split_wgrad_like_param(node, want, outs)
        new_ins = [self.get(v, (want[0][i], want[1][i])) for i, v in enumerate(node.inputs)]
        attrs = self._local_attrs(node, new_ins)
        hint = node.outputs[0].name if len(node.outputs) == 1 else node.outputs[0].name.rsplit(".", 1)[0]
        res = self.g.call(node.op, *new_ins, name=hint, **attrs)
        res = res if isinstance(res, tuple) else (res,)
        res[0].producer.meta.update(node.meta)
        for i, (old, new) in enumerate(zip(node.outputs, res)):
            pl = (outs[0][i], outs[1][i])
            expect = local_shape(old.shape, pl, self.mesh.shape)
            if new.shape != expect:
                raise ShardingError(
                    f"op {node.op!r} ({hint}): local output {new.shape} does not match {expect} for placements "
                    f"{'/'.join(map(str, pl))} of global {old.shape}"
                )
            self.env[old] = {pl: self._tag(new, pl, old.shape)}

    def _moe_expert_parallel(self, node: Node) -> None:
        """Experts split over the TP axis. The activations are replicated there, so each device takes its slice of
        the sequence (a local copy), dispatches those tokens to the devices of their experts (all_to_all),
        runs its experts on what it receives, sends the outputs back (all_to_all) and adds them up per token
        (combine); the result is split by sequence, gathered where a replicated value is needed. The backward
        node repeats the dispatch and sends dy the same way; dh and the gate gradients come back by all_to_all,
        each device's expert weight gradients stay on it. On the DP axis the op's own rule (tokens by batch)."""
        plan, tp, n = self.plan, self.plan.tp_axis, self.plan.tp
        bwd = node.op == "moe_experts_bwd"
        rule_in, rule_out = [R] * len(node.inputs), [R] * len(node.outputs)
        if plan.dp > 1:
            dp_ax = plan.axes[plan.dp_axis]
            rule_in, rule_out = get_op(node.op).shard(node, [self.placements(v)[plan.dp_axis] for v in node.inputs],
                                                      dp_ax)

        def pl(on_tp, on_dp) -> tuple:
            out = [on_dp, on_dp]
            out[tp] = on_tp
            return tuple(out)

        tok = Shard(plan.moe_token_dim)
        on_tp = [tok, tok, Shard(0), Shard(0), Shard(0)] + ([tok] if bwd else [])
        new = [self.get(v, pl(on_tp[i], rule_in[i])) for i, v in enumerate(node.inputs)]
        h, gates, w1, w3, w2 = new[:5]
        experts, top_k = node.inputs[2].shape[0], int(node.attrs["top_k"])
        # Rows of a dispatch chunk that carry a token under balanced routing (the load-balancing loss's aim):
        # the chance that a token picks at least one of the E/n experts of a device.
        fill = 1.0 - math.comb(experts - experts // n, top_k) / math.comb(experts, top_k)
        ccl = {"cluster_axis": tp, "devices": n, "fill": fill}
        name = node.outputs[0].name.rsplit(".", 1)[0] if bwd else node.outputs[0].name
        call = self.g.call
        send_h, send_g, slots = call("moe_dispatch", h, gates, devices=n, name=f"{name}.dispatch")
        recv_h = call("all_to_all", send_h, name=f"{name}.dispatch_h", **ccl)
        recv_g = call("all_to_all", send_g, name=f"{name}.dispatch_gates", **ccl)
        local = {"top_k": top_k, "pairs_per_token": top_k / n}
        tokens = tuple(h.shape[:-1])
        if not bwd:
            out = call("moe_experts", recv_h, recv_g, w1, w3, w2, name=f"{name}.local", **local)
            back = call("all_to_all", out, name=f"{name}.combine_a2a", **ccl)
            results = [call("moe_combine", back, slots, token_shape=tokens, name=f"{name}.combine")]
        else:
            send_dy = call("moe_combine_bwd", new[5], slots, devices=n, name=f"{name}.dy_rows")
            recv_dy = call("all_to_all", send_dy, name=f"{name}.dispatch_dy", **ccl)
            d_h, d_g, dw1, dw3, dw2 = call("moe_experts_bwd", recv_h, recv_g, w1, w3, w2, recv_dy,
                                           name=f"{name}.local", **local)
            back_h = call("all_to_all", d_h, name=f"{name}.return_dh", **ccl)
            back_g = call("all_to_all", d_g, name=f"{name}.return_dgates", **ccl)
            dh, dg = call("moe_dispatch_bwd", back_h, back_g, slots, experts=experts, token_shape=tokens,
                          name=f"{name}.undispatch")
            results = [dh, dg, dw1, dw3, dw2]
        out_tp = [tok, tok, Shard(0), Shard(0), Shard(0)]
        for i, (old, new_v) in enumerate(zip(node.outputs, results)):
            p = pl(out_tp[i], rule_out[i])
            expect = local_shape(old.shape, p, self.mesh.shape)
            if new_v.shape != expect:
                raise ShardingError(f"op {node.op!r} ({name}): expert-parallel output {new_v.shape} != {expect}")
            self.env[old] = {p: self._tag(new_v, p, old.shape)}
    def _hidden_split(self, v: Value) -> bool:
        last = len(v.shape) - 1
        return any(isinstance(p, Shard) and p.dim == last and p.order is None for p in self.placements(v))

    def _distributed_rmsnorm(self, node: Node) -> None:
        """RMSNorm of a hidden-split residual in tt-metal's statistics form: each device sums the squares of its
        slice, the sums (one value per row) are reduced over the axis, each device normalizes its slice; the
        hidden dim itself never crosses a link (the next matmul gathers it if it needs whole rows)."""
        x, gamma = node.inputs
        scratch = Graph(f"{node.outputs[0].name}.distributed")
        ss = scratch.call("rmsnorm_stats", x, name=f"{node.outputs[0].name}.sumsq")
        out = scratch.call("rmsnorm_apply", x, ss, gamma, eps=node.attrs["eps"], width=x.shape[-1],
                           name=node.outputs[0].name)  # fmt: skip
        for n in scratch.nodes:
            self.node(n)
        self.env[node.outputs[0]] = self.env.pop(out)

    def _local_attrs(self, node: Node, new_ins: list[Value]) -> dict:
        attrs = dict(node.attrs)
        if node.op in ("attention", "attention_bwd", "attention_decode"):
            q, k = node.inputs[0], node.inputs[1]
            attrs["heads"] = attrs["heads"] * new_ins[0].shape[-1] // q.shape[-1]
            attrs["kv_heads"] = attrs["kv_heads"] * new_ins[1].shape[-1] // k.shape[-1]
        elif node.op == "rope":
            attrs["heads"] = attrs["heads"] * new_ins[0].shape[-1] // node.inputs[0].shape[-1]
        return attrs

    def _global_norm(self, node: Node) -> None:
        """sqrt(sum of squares) over tensors that may be split: local norms of the split ones are stacked
        across the mesh axis (all_gather of scalars) and normed again; replicated ones are counted once."""
        groups: dict[tuple[int, ...], list[Value]] = {}
        for v in node.inputs:
            pl = tuple(no_partial(p) for p in self.placements(v))
            split_axes = tuple(a for a, p in enumerate(pl) if isinstance(p, Shard))
            groups.setdefault(split_axes, []).append(self.get(v, pl))
        parts = list(groups.pop((), []))
        name = node.outputs[0].name
        for axes, vals in groups.items():
            cur = self.g.call("global_norm", *vals, name=f"{name}.local")
            # a local norm of split tensors: the global one is the 2-norm of the local ones over the split axes
            self._tag(cur, tuple(Partial("l2") if a in axes else R for a in (0, 1)), ())
            for a in axes:
                stacked = self.g.call("all_gather", cur, axis_dim=0, cluster_axis=a, devices=self.mesh.shape[a],
                                      name=f"{name}.ag{a}")  # fmt: skip
                pl = tuple(R if b == a else p for b, p in enumerate(cur.sharding.placements))
                self._tag(stacked, pl, (self.mesh.shape[a],))
                cur = self._tag(self.g.call("global_norm", stacked, name=f"{name}.axis{a}"), pl, ())
            parts.append(cur)
        out = self.g.call("global_norm", *parts, name=name)
        self.env[node.outputs[0]] = {(R, R): self._tag(out, (R, R), ())}


def shard(graph: Graph, mesh: Mesh | str, tp_axis: int | None = None, residual: str = "all_reduce",
          layout: str = "tp-dp") -> Graph:  # fmt: skip
    """The SPMD graph of `graph` on `mesh`: local shapes, `Value.sharding`, explicit collectives.

    Extra attributes on the result: `mesh` (the Mesh), `tp_axis`, `dp_axis`, `shard_notes` (fallbacks taken).
    Outputs keep their placements except partial ones, which are reduced (the loss becomes an all_reduce mean);
    each update target gets the placement of the state it replaces.
    """
    mesh = get_mesh(mesh) if isinstance(mesh, str) else mesh
    plan = Plan(graph, mesh, tp_axis, residual, layout)
    s = _Sharder(graph, mesh, plan)
    for v in graph.inputs:
        s.add_input(v)
    for node in graph.nodes:
        s.node(node)
    g = s.g
    for key, v in graph.outputs.items():
        want = tuple(no_partial(p) for p in s.placements(v))
        g.output(key, s.get(v, want))
    for src, dst in graph.updates.items():
        g.updates[s.get(src, s.placements(src))] = s.get(dst, s.placements(src))
    g.mesh, g.tp_axis, g.dp_axis, g.shard_notes = mesh, plan.tp_axis, plan.dp_axis, plan.notes
    g.layout = layout
    return drop_dead(g)
