"""The `ttnn` backend: a compiled Program on a Tenstorrent card or mesh (`tilegraph train --device n150|n300|t3k|galaxy`).

What runs where is what the compiler wrote (Step.impl, graph/passes/place.py); this module only maps it to calls:
- `kernel:<op>`: our kernels through `ttnn.generic_op` (the op's KernelOp builds the ProgramDescription,
  runtime/ttnn_program.py turns it into a ttnn.ProgramDescriptor; one SPMD program per device of the mesh);
  swiglu_bwd's three matmuls after its gate kernel are `ttnn.matmul` (kernels/swiglu/program_bwd.py);
- `ttnn:<what>`: the ttnn built-in in DEVICE_CALLS (linear, matmul, embedding, add, mul with a fused SiLU, CCLs);
- everything else on the host, in float32, from host copies (HOST_STEPS says why for each op: rope, the loss,
  clipping and AdamW). The optimizer runs on the host by design: the fp32 master weights and AdamW moments
  (3 x 4 bytes per parameter) stay in host memory, the device holds bf16 copies of the weights (re-sent after each
  update) and bf16 activations; it is what a single n150 needs for models whose fp32 state exceeds its DRAM, and it
  keeps the update bit-identical to the numpy backend's.
Weights go onto the mesh with `ttnn.create_mesh_mapper(mesh, MeshMapperConfig(placements))`, one placement per
mesh axis, from the shard pass's Sharding of each parameter (`mapper_plan`); collective steps (all_gather,
reduce_scatter, all_reduce) are the ttnn CCLs with the step's `cluster_axis`.

Without a card, `Executor(program)` stops before anything runs with one DeviceError line that says what it needs.
Everything before the device calls (mapper plans, the step -> call table, the kernels' ProgramDescriptors) is
built and tested on the host (tests/test_ttnn_backend.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tilegraph.errors import DeviceError

# Steps placed on a ttnn built-in: op -> (the ttnn call, how the step's attrs map onto it).
DEVICE_CALLS: dict[str, str] = {
    "linear": "ttnn.matmul(x, w, transpose_b=transpose_w)",
    "linear_wgrad": "ttnn.matmul(x2d, dy2d, transpose_a=True)",
    "embedding": "ttnn.embedding(tokens, table)",
    "add": "ttnn.add(a, b)",
    "silu_mul": "ttnn.mul(a, b, input_tensor_a_activations=[SILU])",
    "all_gather": "ttnn.all_gather(x, dim=axis_dim, cluster_axis=cluster_axis)",
    "reduce_scatter": "ttnn.reduce_scatter(x, dim=dim, cluster_axis=cluster_axis)",
    "all_reduce": "ttnn.all_reduce(x, cluster_axis=cluster_axis)",
}
# Steps run on the host (float32 numpy, the numpy backend's own code), and why.
HOST_STEPS: dict[str, str] = {
    "rope": "the rotary tables of ttnn.experimental.rotary_embedding_llama need a transformation-matrix layout "
            "that is not wired yet",
    "cross_entropy": "no fused ttnn cross-entropy; the loss is [B*S, 256] logits, small next to the step",
    "cross_entropy_bwd": "as cross_entropy",
    "embedding_bwd": "a scatter-add over 256 rows; ttnn.embedding_bw exists but is untested here",
    "silu_mul_bwd": "only in unfused graphs; training graphs use swiglu_bwd",
    "fill": "a constant",
    "global_norm": "clipping and the optimizer run on the host with the fp32 master weights",
    "clip_scale": "as global_norm",
    "adamw": "fp32 master weights and AdamW moments stay on the host (module docstring)",
    "mesh_partition": "a local slice of a replicated host copy",
}


@dataclass(frozen=True)
class DeviceCall:
    """How one step runs on the ttnn backend: kind is generic_op (our kernel), ttnn (a built-in) or host."""

    step: int
    op: str
    kind: str
    what: str


def device_calls(program) -> list[DeviceCall]:
    """The step -> call table of a Program compiled for the ttnn backend (Target(backend="ttnn"))."""
    calls = []
    for step in program.steps:
        if step.impl.startswith("kernel:"):
            calls.append(DeviceCall(step.index, step.op, "generic_op", step.impl.removeprefix("kernel:")))
        elif step.op in DEVICE_CALLS and step.impl.startswith("ttnn:"):
            calls.append(DeviceCall(step.index, step.op, "ttnn", DEVICE_CALLS[step.op]))
        elif step.op in HOST_STEPS:
            calls.append(DeviceCall(step.index, step.op, "host", HOST_STEPS[step.op]))
        else:
            raise DeviceError(f"step {step.index} ({step.op}, placed as {step.impl!r}) has no ttnn call and no host "
                              f"fallback; add it to runtime/ttnn_backend.py DEVICE_CALLS or HOST_STEPS")
    return calls


@dataclass(frozen=True)
class MapperPlan:
    """How one global host tensor is put on the mesh: per mesh axis, shard along `dims[axis]` or replicate (None);
    `block_order` permutes blocks of a dim first (strided heads, Shard(d) with an order)."""

    dims: tuple[int | None, ...]
    block_order: tuple[int, tuple[int, ...]] | None = None

    @property
    def replicated(self) -> bool:
        return all(d is None for d in self.dims)


def mapper_plan(sharding, name: str = "") -> MapperPlan:
    """The MapperPlan of a value's Sharding (graph/passes/shard.py); a partial value cannot be placed from host."""
    from tilegraph.ops.placement import Partial, Shard

    dims, order = [], None
    for axis, p in enumerate(sharding.placements):
        if isinstance(p, Partial):
            raise DeviceError(f"value {name!r} is partial over mesh axis {axis}; only replicated or sharded tensors "
                              f"are placed from the host")
        if isinstance(p, Shard):
            d = p.dim % len(sharding.global_shape)
            dims.append(d)
            if p.order is not None:
                order = (d, tuple(p.order))
        else:
            dims.append(None)
    return MapperPlan(tuple(dims), order)


def mapper_plans(program) -> dict[str, MapperPlan]:
    """Parameter and optimizer-state name -> MapperPlan, from the sharded graph's inputs (replicated when the
    Program is not sharded)."""
    plans = {}
    for v in program.graph.inputs:
        if v.role == "input":
            continue
        plans[v.name] = mapper_plan(v.sharding, v.name) if v.sharding is not None else MapperPlan((None, None))
    return plans


def permute_blocks(array: np.ndarray, plan: MapperPlan) -> np.ndarray:
    """The host array with the plan's block permutation applied (what the devices' consecutive pieces expect)."""
    if plan.block_order is None:
        return array
    dim, order = plan.block_order
    blocks = np.split(array, len(order), axis=dim)
    return np.concatenate([blocks[i] for i in order], axis=dim)


def mesh_mapper(ttnn, mesh, plan: MapperPlan):
    """The ttnn mapper of a plan for `mesh` (a MeshDevice, or a ttnn.MeshShape on the host)."""
    placements = [ttnn.PlacementReplicate() if d is None else ttnn.PlacementShard(d) for d in plan.dims]
    return ttnn.create_mesh_mapper(mesh, ttnn.MeshMapperConfig(placements))


def mesh_shape(program) -> tuple[int, int]:
    mesh = getattr(program.target, "mesh", None)
    return tuple(mesh.shape) if mesh is not None else (1, 1)


def require_devices(program, what: str) -> None:
    """DeviceError (one line) unless the cards the Program's mesh needs are visible."""
    from tilegraph.runtime.ttnn_program import card_present

    rows, cols = mesh_shape(program)
    if not card_present():
        raise DeviceError(f"{what} needs {rows * cols} Tenstorrent Wormhole chip(s) as a {rows}x{cols} mesh; this "
                          f"machine has no /dev/tenstorrent* device (train on the host with --device cpu or emu)")


def _builtin(ttnn, device, op: str, inputs: list[np.ndarray], attrs) -> list[np.ndarray]:
    """One ttnn built-in on device tensors made from the host inputs; float32 host results."""

    def dev(a, layout=None):
        a = np.asarray(a)
        if a.dtype.kind in "iu":
            return ttnn.to_device(ttnn.Tensor(a.astype(np.uint32), ttnn.uint32, None, ttnn.ROW_MAJOR_LAYOUT), device)
        t = ttnn.Tensor(np.asarray(a, np.float32), ttnn.bfloat16, None, ttnn.ROW_MAJOR_LAYOUT)
        return ttnn.to_device(ttnn.to_layout(t, layout or ttnn.TILE_LAYOUT), device)

    def host(t):
        return np.asarray(ttnn.to_layout(ttnn.typecast(ttnn.from_device(t), ttnn.float32),
                                         ttnn.ROW_MAJOR_LAYOUT).to_numpy(), np.float32)

    if op == "linear":
        x, w = inputs
        return [host(ttnn.matmul(dev(x), dev(w), transpose_b=bool(attrs.get("transpose_w"))))]
    if op == "linear_wgrad":
        x, dy = (a.reshape(-1, a.shape[-1]) for a in inputs)
        if attrs.get("transpose_w"):
            x, dy = dy, x
        return [host(ttnn.matmul(dev(x), dev(dy), transpose_a=True))]
    if op == "embedding":
        tokens, table = inputs
        return [host(ttnn.embedding(dev(tokens), dev(table, ttnn.ROW_MAJOR_LAYOUT)))]
    if op == "add":
        return [host(ttnn.add(dev(inputs[0]), dev(inputs[1])))]
    if op == "silu_mul":
        return [host(ttnn.mul(dev(inputs[0]), dev(inputs[1]),
                              input_tensor_a_activations=[ttnn.UnaryOpType.SILU]))]
    cluster_axis = int(attrs.get("cluster_axis", 0))
    if op == "all_gather":
        return [host(ttnn.all_gather(dev(inputs[0]), dim=int(attrs["axis_dim"]), cluster_axis=cluster_axis))]
    if op == "reduce_scatter":
        return [host(ttnn.reduce_scatter(dev(inputs[0]), dim=int(attrs["dim"]), cluster_axis=cluster_axis))]
    if op == "all_reduce":
        return [host(ttnn.all_reduce(dev(inputs[0]), cluster_axis=cluster_axis))]
    raise DeviceError(f"op {op!r} has no ttnn built-in in runtime/ttnn_backend.py")


def _executor_base():
    from tilegraph.runtime.numpy_backend import Executor as HostExecutor

    return HostExecutor


class Executor(_executor_base()):
    """Runs a ttnn-backend Program with host-resident fp32 buffers: kernel steps through generic_op, built-in steps
    through ttnn, the rest on the host (each device step sends its inputs and reads its outputs back: correct
    first, fast later). Sharded Programs (meshes above 1x1) need per-device buffers: not built yet (a DeviceError
    on a card; the mapper plans and CCL calls above are what they will use).

    Constructing one checks the cards first, so without a card nothing is built and one DeviceError line says
    what is missing."""

    def __init__(self, program, what: str = "the ttnn backend"):
        require_devices(program, what)
        import ttnn

        if mesh_shape(program) != (1, 1):
            raise DeviceError(f"{what}: sharded Programs ({mesh_shape(program)} mesh) need per-device buffers, "
                              f"which runtime/ttnn_backend.py does not build yet; use --device n150")
        from tilegraph.runtime import ttnn_program

        self.ttnn = ttnn
        self.mesh = ttnn.open_mesh_device(ttnn.MeshShape(1, 1))
        ttnn_program._default_device = self.mesh  # generic_op steps run on the same (1x1 mesh) device
        self.table = {c.step: c for c in device_calls(program)}
        super().__init__(program)

    def step_function(self, step):
        from tilegraph.ops import get_op
        from tilegraph.runtime.numpy_backend import _reference_into

        call = self.table[step.index]
        if call.kind == "generic_op":
            from tilegraph.runtime.kernel_ops import run_kernel_op

            opts = self.program.device

            def run(inputs, outputs, attrs, op=call.what):
                for out, res in zip(outputs, run_kernel_op(op, inputs, attrs, "ttnn", opts)):
                    np.copyto(out, res.reshape(out.shape), casting="same_kind")

            return run
        if call.kind == "ttnn":
            ttnn, device = self.ttnn, self.mesh

            def run(inputs, outputs, attrs, op=step.op):
                for out, res in zip(outputs, _builtin(ttnn, device, op, inputs, attrs)):
                    np.copyto(out, res.reshape(out.shape), casting="same_kind")

            return run
        op = get_op(step.op)
        return op.numpy_into if op.numpy_into is not None else _reference_into(op)
