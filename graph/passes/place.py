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
    "rope": "ttnn:rotary_embedding_llama",
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
    "moe_router": "ttnn:composite (softmax, topk)",
    "moe_router_bwd": "ttnn:composite",
    "moe_experts": "ttnn:sparse matmuls (routed tokens)",
    "moe_experts_bwd": "ttnn:sparse matmuls (routed tokens)",
    "moe_dispatch": "ttnn:gather (routed rows)",
    "moe_dispatch_bwd": "ttnn:scatter",
    "moe_combine": "ttnn:scatter-add",
    "moe_combine_bwd": "ttnn:gather",
    "all_to_all": "ttnn:all_to_all",
    # issue 14 (arch-a): the spec vocabulary's ops, as the ttnn ops they would lower to (no custom kernels).
    "layernorm": "ttnn:layer_norm",
    "layernorm_bwd": "ttnn:composite",
    "gelu": "ttnn:gelu",
    "gelu_bwd": "ttnn:gelu_bw",
    "relu": "ttnn:relu",
    "relu_bwd": "ttnn:relu_bw",
    "mul": "ttnn:multiply",
    "add_bias": "ttnn:add (broadcast row)",
    "bias_grad": "ttnn:sum (dim 0)",
    "position_ids": "ttnn:arange",
    "sinusoidal": "host constant (ttnn:from_torch)",
    "dropout": "ttnn:dropout",
    # inference (graph/inference.py) and the distributed norm of a hidden-split residual
    "attention_decode": "ttnn:scaled_dot_product_attention_decode",
    "kv_cache_write": "ttnn:update_cache / fill_cache",
    "take_last": "ttnn:slice",
    "rmsnorm_stats": "ttnn:rms_norm_pre_all_gather",
    "rmsnorm_apply": "ttnn:rms_norm_post_all_gather",
}


def host_impl(node) -> str:
    return "numpy" if get_op(node.op).numpy_into is not None else "reference"


def kernel_refusal(node) -> str | None:
    """None when our kernels run `node`; else why not (an op without kernels, or attrs its kernels refuse)."""
    kernel = KERNEL_OPS.get(node.op)
    if kernel is None:
        return f"op {node.op!r} has no custom kernel"
    return kernel.refuses(node.attrs, [v.shape for v in node.inputs])


def emu_impl(node) -> str:
    return f"kernel:{node.op}" if kernel_refusal(node) is None else host_impl(node)


def mesh_impl(node) -> str:
    return "collective" if get_op(node.op).collective is not None else "reference"


# Kernel ops whose kernels refuse a call (kernel_refusal) run on a device as these ttnn composites instead.
TTNN_FALLBACK = {
    "attention": "ttnn:composite (matmul + softmax + matmul)",
    "attention_bwd": "ttnn:composite (matmul + softmax_bw + matmul)",
}


def device_impl(node) -> str:
    if kernel_refusal(node) is None:
        return f"kernel:{node.op}"
    if node.op in KERNEL_OPS:
        return TTNN_FALLBACK.get(node.op, "numpy (no device implementation)")
    return TTNN_IMPLEMENTATION.get(node.op, "numpy (no device implementation)")


BACKEND_PLACEMENT = {"numpy": host_impl, "emu": emu_impl, "mesh": mesh_impl, "ttnn": device_impl}


def place(graph: Graph, backend: str) -> list[str]:
    """`Step.impl` of each node of `graph` (in order) on `backend`."""
    impl = BACKEND_PLACEMENT[backend]
    return [impl(node) for node in graph.nodes]
