"""swiglu(x[..., H], w1[H, F], w3[H, F]) -> silu(x @ w1) * (x @ w3): the fused MLP gate the custom kernel computes.

graph.build emits the unfused linear, linear, silu_mul form for training; a fuse pass may rewrite it to this op.
Its backward rule decomposes into the unfused ops (recomputing the two projections).
"""

from __future__ import annotations

import numpy as np
from tilegraph.ops._util import expect_arity, expect_float
from tilegraph.ops.base import Op, TensorType, get_op, register
from tilegraph.ops.elementwise import silu_mul_reference
from tilegraph.ops.placement import R, Shard, last_dim, no_partial
from tilegraph.ops.scratch import scratch

from tilegraph.errors import ShapeError


def swiglu_reference(x: np.ndarray, w1: np.ndarray, w3: np.ndarray) -> np.ndarray:
    return silu_mul_reference(x @ w1, x @ w3)


@register
class SwiGLU(Op):
    name = "swiglu"
    attrs = {}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): like its column-parallel linears: w1 and w3 split on F give
        an F-split output from whole rows of x; replicated weights let a row (batch) split of x pass."""
        x, w1 = no_partial(placements[0]), no_partial(placements[1])
        last = last_dim(node.inputs[0])
        if isinstance(w1, Shard) and w1.dim == 1 and w1.order is None:
            return [R, w1, w1], [Shard(last)]
        x = R if isinstance(x, Shard) and x.dim == last else x
        return [x, R, R], [x]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x", "w1", "w3"])
        x, w1, w3 = inputs
        for what, t in (("x", x), ("w1", w1), ("w3", w3)):
            expect_float(self.name, what, t)
            if t.dtype != x.dtype:
                raise ShapeError(f"op 'swiglu': x is {x.dtype} but {what} is {t.dtype}; give all the same dtype")
        if len(x.shape) < 1 or len(w1.shape) != 2 or w1.shape[0] != x.shape[-1]:
            raise ShapeError(
                f"op 'swiglu': w1 {list(w1.shape)} must be [H, F] with H = last dim of x {list(x.shape)}"
            )
        if w3.shape != w1.shape:
            raise ShapeError(f"op 'swiglu': w3 {list(w3.shape)} must have w1's shape {list(w1.shape)}")
        return [TensorType(x.shape[:-1] + (w1.shape[1],), x.dtype)]

    def reference(self, inputs, attrs):
        return [swiglu_reference(*inputs)]

    def numpy_forward(self, inputs, outputs, attrs):
        x, w1, w3 = inputs
        (y,) = outputs
        x2, y2 = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        gate = scratch(("swiglu", "gate"), y2.shape, y.dtype)
        up = scratch(("swiglu", "up"), y2.shape, y.dtype)
        np.matmul(x2, w1, out=gate)
        np.matmul(x2, w3, out=up)
        get_op("silu_mul").numpy_forward([gate, up], [y2], {})

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None, None, None]
        x, w1, w3 = node.inputs
        a = g.call("linear", x, w1)
        b = g.call("linear", x, w3)
        da, db = g.call("silu_mul_bwd", a, b, dy)
        dx = g.call("add", g.call("linear", da, w1, transpose_w=True), g.call("linear", db, w3, transpose_w=True))
        return [dx, g.call("linear_wgrad", x, da), g.call("linear_wgrad", x, db)]

    def flops(self, node):
        x, w1, _ = node.inputs
        m = x.type.numel // w1.shape[0]
        return 2 * 2 * m * w1.shape[0] * w1.shape[1] + 5 * m * w1.shape[1]


# =================================================================================================================
# Device program builder (custom kernels in kernels/swiglu/) -- owned by H-kern; H-ops' code is above this line.
# =================================================================================================================
from tilegraph.kernels import host as _host
from tilegraph.ops import program as _prog

SWIGLU_MAX_K_BLOCK_TILES = 8  # K tiles per reader push; 2 blocks per input CB keep reader and compute overlapped


# Output block candidates (tiles); the L1 budget of the CBs; see _choose_blocks.
SWIGLU_BLOCK_CANDIDATES = (1, 2, 4, 8)
SWIGLU_L1_BYTES = 1024 * 1024  # leaves the rest of the core's 1.5 MB to firmware, kernel binaries and stacks


def _swiglu_cbs(ranges, dtype, weight_dtype, out_dtype, kt, kb, mb, nb):
    cbs = [_prog.CBSpec(index=0, data_format=dtype, num_pages=2 * mb * kb, core_ranges=ranges)]
    cbs += [_prog.CBSpec(index=i, data_format=weight_dtype, num_pages=2 * kb * nb, core_ranges=ranges) for i in (1, 2)]
    cbs.append(_prog.CBSpec(index=16, data_format=out_dtype, num_pages=2, core_ranges=ranges))
    if kt > kb:  # partial sums between K blocks
        cbs += [_prog.CBSpec(index=i, data_format="float32", num_pages=mb * nb, core_ranges=ranges) for i in (24, 25)]
    return cbs


def _choose_blocks(mt, nt, kt, kb, cores, cb_bytes):
    """Output block (mb, nb) in tiles: the one with the least work on the busiest core, then the fewest DRAM reads
    per output tile (x is read once per block column, W1 and W3 once per block row: 1/nb + 2/mb), within L1."""
    best = None
    for mb in SWIGLU_BLOCK_CANDIDATES:
        for nb in SWIGLU_BLOCK_CANDIDATES:
            if (mb > 1 and mb // 2 >= mt) or (nb > 1 and nb // 2 >= nt) or cb_bytes(mb, nb) > SWIGLU_L1_BYTES:
                continue
            blocks = -(-mt // mb) * -(-nt // nb)
            busiest = -(-blocks // cores) * min(mb, mt) * min(nb, nt)
            key = (busiest, 1 / min(nb, nt) + 2 / min(mb, mt), -mb)
            if best is None or key < best[0]:
                best = (key, mb, nb)
    return best[1], best[2]


def swiglu_program(
    m: int,
    k: int,
    n: int,
    dtype: str = "bfloat16",
    *,
    grid=(8, 8),
    out_dtype: str = "bfloat16",
    weight_dtype: str | None = None,
    max_k_block: int = SWIGLU_MAX_K_BLOCK_TILES,
    max_n_block: int | None = None,
    block: tuple[int, int] | None = None,
    math_fidelity: str = "HiFi4",
) -> _prog.ProgramDescription:
    """Fused SwiGLU out[M, N] = silu(x W1) * (x W3) for x [M, K], W1/W3 [K, N]; output blocks split over the grid.

    The output tiles are cut into mb x nb blocks (`block`, default: _choose_blocks); each core owns a contiguous
    range of blocks and computes each K block of a block from one read of its x and W tiles, reused from L1 for
    every output subblock (one row of up to w = min(max_n_block, DST/2) tiles, both matmuls accumulating in DST);
    fp32 partial sums wait in L1 between K blocks (reloaded exactly). The gate is applied in DST, so the [M, N]
    gate/up products never reach DRAM. Zero padding of M, K, N to tiles contributes nothing (silu(0) * 0 = 0).
    weight_dtype: device format of W1 / W3 (default: dtype), e.g. bfloat8_b weights with bfloat16 activations.
    math_fidelity: of the matmuls (the fuzz tolerances are derived for HiFi4, the default)."""
    m, k, n = int(m), int(k), int(n)
    weight_dtype = weight_dtype or dtype
    if min(m, k, n) < 1:
        raise ShapeError(f"op 'swiglu': M={m}, K={k}, N={n} must all be >= 1")
    mt, kt, nt = _host.tiles(m), _host.tiles(k), _host.tiles(n)
    kb = _host.largest_divisor_at_most(kt, max_k_block)
    config = _prog.ComputeConfig(math_fidelity=math_fidelity, fp32_dest_acc_en=True,
                                 unpack_to_dest_fp32=(24, 25) if kt > kb else ())  # exact reload of partials
    w = max(1, min(nt, config.dst_tiles // 2, max_n_block or nt))

    def cb_bytes(mb, nb):
        return sum(c.num_pages * c.page_size for c in _swiglu_cbs((), dtype, weight_dtype, out_dtype, kt, kb, mb, nb))

    mb, nb = block or _choose_blocks(mt, nt, kt, kb, grid[0] * grid[1], cb_bytes)
    blocks_n = -(-nt // nb)
    split = _host.split_work(-(-mt // mb) * blocks_n, grid[0] * grid[1])
    cores = _host.grid_cores(grid, len(split))
    ranges = _host.core_ranges(cores)
    tensors = [_prog.TensorSpec("x", (m, k), dtype), _prog.TensorSpec("w1", (k, n), weight_dtype),
               _prog.TensorSpec("w3", (k, n), weight_dtype), _prog.TensorSpec("out", (m, n), out_dtype, "output")]
    cbs = _swiglu_cbs(ranges, dtype, weight_dtype, out_dtype, kt, kb, mb, nb)
    addr, cta = _prog.BufferAddress, _prog.TensorAccessorCTA
    reader_rt, compute_rt, writer_rt = {}, {}, {}
    for core, (start, count) in zip(cores, split):
        reader_rt[core] = (addr("x"), addr("w1"), addr("w3"), kt, mt, nt, start, count, kb, mb, nb, blocks_n)
        compute_rt[core] = (kt, mt, nt, start, count, kb, mb, nb, w, blocks_n)
        writer_rt[core] = (addr("out"), mt, nt, start, count, mb, nb, blocks_n)
    kernels = [
        _prog.KernelSpec("reader", "swiglu/reader.cpp", ranges, (cta("x"), cta("w1"), cta("w3")), {}, reader_rt),
        _prog.KernelSpec("compute", "swiglu/compute.cpp", ranges, (), {}, compute_rt),
        _prog.KernelSpec("writer", "swiglu/writer.cpp", ranges, (cta("out"),), {}, writer_rt),
    ]
    desc = _prog.ProgramDescription(
        name="swiglu", tensors=tensors, cbs=cbs, kernels=kernels,
        compute_config=config, grid=tuple(grid))
    desc.validate()
    return desc


def swiglu_device_inputs(x, w1, w3) -> dict:
    return {"x": x.reshape(-1, x.shape[-1]), "w1": w1, "w3": w3}


def swiglu_device_outputs(outputs: dict, x_shape) -> list:
    out = outputs["out"]
    return [out.reshape(tuple(x_shape[:-1]) + (out.shape[-1],))]
