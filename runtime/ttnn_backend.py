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
The Program runs on the mesh of its lowering (`ttnn.open_mesh_device(MeshShape(rows, cols))`, 1x1 for an n150,
fabric enabled above one chip) with the dataflow of the virtual mesh (runtime/mesh_backend.py SpmdExecutor, which
the emu backend also uses for sharded Programs, so the dispatch is tested on the host): per-device values; inputs
cut by `ttnn.create_mesh_mapper(mesh, MeshMapperConfig(placements))`, one placement per mesh axis, from the shard
pass's Sharding of each input (`mapper_plan`, `distribute`); kernel steps as one SPMD generic_op on mesh tensors;
collective steps (all_gather, reduce_scatter, all_reduce) as the ttnn CCLs with the step's `cluster_axis`.

Verified here: the step -> call table, the mapper plans and ttnn's own mappers cutting every input as the virtual
mesh does (n300, T3K, Galaxy), the kernels' ProgramDescriptors, the SPMD dispatch in the emulator. Not verified
here (no card): the device calls themselves (open_mesh_device, from_host_shards, generic_op, the CCLs).
Without a card, `Executor(program)` stops before anything runs with one DeviceError line that says what it needs
(tests/test_ttnn_backend.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tilegraph.runtime.kernel_ops import run_kernel_op_spmd
from tilegraph.runtime.mesh_backend import SpmdExecutor

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
    "all_to_all": "MoE dispatch/combine between the devices' host arrays: ttnn's all_to_all_dispatch/combine take "
                  "token-to-expert metadata tensors that are not wired yet",
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


def distribute(ttnn, shape: tuple[int, int], plan: MapperPlan, array: np.ndarray) -> list[np.ndarray]:
    """The devices' pieces (row-major mesh order) of a global host array, cut by ttnn's mesh mapper for `plan`
    (ttnn.distribute_tensor on the host; the pieces then travel to their devices with the step that reads them)."""
    array = np.asarray(array)
    if plan.replicated:
        return [array] * (shape[0] * shape[1])
    kind = (np.int32, ttnn.int32) if array.dtype.kind in "iu" else (np.float32, ttnn.float32)
    host = ttnn.Tensor(np.ascontiguousarray(permute_blocks(array, plan), kind[0]), kind[1], None,
                       ttnn.ROW_MAJOR_LAYOUT)
    mapped = ttnn.distribute_tensor(host, mesh_mapper(ttnn, ttnn.MeshShape(*shape), plan))
    return [np.asarray(piece.to_numpy()).astype(array.dtype) for piece in ttnn.get_device_tensors(mapped)]


def _builtin(ttnn, mesh, op: str, inputs: list[list[np.ndarray]], attrs) -> list[list[np.ndarray]]:
    """One ttnn built-in, SPMD on `mesh`, on mesh tensors made from each device's host inputs (row-major mesh
    order); float32 host results per device. Collectives run over `cluster_axis` of the mesh."""
    shape = mesh.shape

    def dev(k: int, layout=None):
        pieces = [np.asarray(device_inputs[k]) for device_inputs in inputs]
        if pieces[0].dtype.kind in "iu":
            shards = [ttnn.Tensor(p.astype(np.uint32), ttnn.uint32, None, ttnn.ROW_MAJOR_LAYOUT) for p in pieces]
            return ttnn.to_device(ttnn.from_host_shards(shards, shape), mesh)
        shards = [ttnn.Tensor(np.asarray(p, np.float32), ttnn.bfloat16, None, ttnn.ROW_MAJOR_LAYOUT) for p in pieces]
        return ttnn.to_layout(ttnn.to_device(ttnn.from_host_shards(shards, shape), mesh), layout or ttnn.TILE_LAYOUT)

    def host(t) -> list[np.ndarray]:
        shards = ttnn.get_device_tensors(ttnn.from_device(ttnn.typecast(t, ttnn.float32)))
        return [np.asarray(ttnn.to_layout(x, ttnn.ROW_MAJOR_LAYOUT).to_numpy(), np.float32) for x in shards]

    def per_device(*results) -> list[list[np.ndarray]]:
        return [list(outs) for outs in zip(*(host(r) for r in results))]

    if op == "linear":
        return per_device(ttnn.matmul(dev(0), dev(1), transpose_b=bool(attrs.get("transpose_w"))))
    if op == "linear_wgrad":
        inputs = [[a.reshape(-1, a.shape[-1]) for a in device_inputs] for device_inputs in inputs]
        a, b = (1, 0) if attrs.get("transpose_w") else (0, 1)
        return per_device(ttnn.matmul(dev(a), dev(b), transpose_a=True))
    if op == "embedding":
        return per_device(ttnn.embedding(dev(0), dev(1, ttnn.ROW_MAJOR_LAYOUT)))
    if op == "add":
        return per_device(ttnn.add(dev(0), dev(1)))
    if op == "silu_mul":
        return per_device(ttnn.mul(dev(0), dev(1), input_tensor_a_activations=[ttnn.UnaryOpType.SILU]))
    cluster_axis = int(attrs.get("cluster_axis", 0))
    if op == "all_gather":
        return per_device(ttnn.all_gather(dev(0), dim=int(attrs["axis_dim"]), cluster_axis=cluster_axis))
    if op == "reduce_scatter":
        return per_device(ttnn.reduce_scatter(dev(0), dim=int(attrs["dim"]), cluster_axis=cluster_axis))
    if op == "all_reduce":
        total = ttnn.all_reduce(dev(0), cluster_axis=cluster_axis)
        if attrs.get("reduce") == "mean":  # ttnn's all_reduce sums
            total = ttnn.multiply(total, 1.0 / shape[cluster_axis])
        return per_device(total)
    raise DeviceError(f"op {op!r} has no ttnn built-in in runtime/ttnn_backend.py")


class Executor(SpmdExecutor):
    """Runs a ttnn-backend Program on the mesh of its lowering (1x1 for one chip): `ttnn.open_mesh_device` with
    the Program's mesh shape; each value lives as per-device host arrays (inputs cut by ttnn's mesh mappers as the
    shard pass decided, `distribute`); kernel steps run as one SPMD generic_op on the mesh, built-in steps and
    collectives as ttnn calls on mesh tensors made from the devices' arrays (CCLs with the step's cluster_axis),
    host steps per device in float32. Each device step sends its inputs and reads its outputs back: correct first,
    fast later (device-resident tensors between consecutive device steps are the next step).

    Constructing one checks the cards first, so without a card nothing is built and one DeviceError line says
    what is missing."""

    kernel_backend = "ttnn"

    def __init__(self, program, what: str = "the ttnn backend"):
        require_devices(program, what)
        import ttnn

        self.ttnn = ttnn
        calls = device_calls(program)  # every step has a call or a host fallback, before a device is opened
        self.calls = {id(s.node): c for s, c in zip(program.steps, calls)}
        rows, cols = mesh_shape(program)
        if rows * cols > 1:
            ttnn.set_fabric_config(ttnn.FabricConfig.FABRIC_1D)  # the CCLs move data over the chip-to-chip fabric
        self.mesh_device = ttnn.open_mesh_device(ttnn.MeshShape(rows, cols))
        super().__init__(program)

    def scatter(self, v, arr):
        if v.sharding is None:
            return super().scatter(v, arr)
        pieces = distribute(self.ttnn, self.shape, mapper_plan(v.sharding, v.name), arr)
        return dict(zip(self.devices, pieces))

    def run_kernel(self, op, inputs, attrs):
        return run_kernel_op_spmd(op, inputs, attrs, "ttnn", self.program.device, self.mesh_device)

    def compute(self, node, inputs):
        if self.calls[id(node)].kind == "ttnn":
            return _builtin(self.ttnn, self.mesh_device, node.op, inputs, node.attrs)
        return super().compute(node, inputs)  # kernel steps (run_kernel) and host steps

    def communicate(self, node, x):
        if self.calls[id(node)].kind != "ttnn":
            return super().communicate(node, x)  # host collectives (HOST_STEPS)
        results = _builtin(self.ttnn, self.mesh_device, node.op, [[x[d]] for d in self.devices], node.attrs)
        return {d: outs[0] for d, outs in zip(self.devices, results)}
