"""place: the implementation of every step on the target backend. Graph -> list of `Step.impl` strings.

The compiler decides here, once; backends run what it wrote and never re-decide from the op name:
- `kernel:<op>`: our custom tt-metal kernels (kernels/<op>/, registered in kernels/registry.py), on the emu
  backend (kernel emulator) and on a device;
- `ttnn:<what>`: a ttnn built-in on a device (what `tilegraph lower` costs);
- `numpy`: the op's float32 fast path (`Op.numpy_into`) on the host;
- `reference`: the op's numpy reference (host ops without a fast path; every compute op on the virtual mesh);
- `collective`: a CCL op on the virtual mesh (`Op.collective` over each device group).
"""

from __future__ import annotations

from tilegraph.graph.ir import Graph
from tilegraph.kernels.registry import KERNEL_OPS
from tilegraph.ops import get_op

# How each op runs on a Tenstorrent device where it has no custom kernel: the ttnn built-in (or composite).
TTNN_IMPLEMENTATION = {
    "linear": "ttnn:linear",
    "linear_wgrad": "ttnn:matmul(x^T, dy)",
    "embedding": "ttnn:embedding",
    "embedding_bwd": "ttnn:embedding_bw",
    "rmsnorm_bwd": "ttnn:composite",
    "rope": "ttnn:rotary_embedding_llama",
    "attention_bwd": "ttnn:composite (matmul+softmax)",
    "silu_mul": "ttnn:mul(silu(a), b)",
    "silu_mul_bwd": "ttnn:eltwise composite",
    "add": "ttnn:add",
    "cross_entropy": "ttnn:composite",
    "cross_entropy_bwd": "ttnn:composite",
    "fill": "ttnn:full",
    "global_norm": "ttnn:composite (sum of squares)",
    "clip_scale": "ttnn:eltwise",
    "adamw": "ttnn:moreh_adamw",
    "all_gather": "ttnn:all_gather",
    "reduce_scatter": "ttnn:reduce_scatter",
    "all_reduce": "ttnn:all_reduce",
    "mesh_partition": "ttnn:mesh_partition",
}


def host_impl(op: str) -> str:
    return "numpy" if get_op(op).numpy_into is not None else "reference"


def emu_impl(op: str) -> str:
    return f"kernel:{op}" if op in KERNEL_OPS else host_impl(op)


def mesh_impl(op: str) -> str:
    return "collective" if get_op(op).collective is not None else "reference"


def device_impl(op: str) -> str:
    if op in KERNEL_OPS:
        return f"kernel:{op}"
    return TTNN_IMPLEMENTATION.get(op, "numpy (no device implementation)")


BACKEND_PLACEMENT = {"numpy": host_impl, "emu": emu_impl, "mesh": mesh_impl, "ttnn": device_impl}


def place(graph: Graph, backend: str) -> list[str]:
    """`Step.impl` of each node of `graph` (in order) on `backend`."""
    impl = BACKEND_PLACEMENT[backend]
    return [impl(node.op) for node in graph.nodes]
