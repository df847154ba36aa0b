"""Device side of the swiglu op: its tt-metal program description (kernels in this folder).

Moved from the end of ops/swiglu.py.
"""

from __future__ import annotations

import math

import numpy as np
from tilegraph.kernels import description as _prog
from tilegraph.kernels import host as _host
from tilegraph.kernels.registry import DeviceOptions, KernelOp, register_kernel_op

from tilegraph.errors import ShapeError

SWIGLU_MAX_K_BLOCK_TILES = 8  # K tiles per reader push; 2 blocks per input CB keep reader and compute overlapped


# Output block candidates (tiles), within description.L1_CB_BUDGET; see _choose_blocks.
SWIGLU_BLOCK_CANDIDATES = (1, 2, 4, 8)


def _swiglu_cbs(ranges, dtype, weight_dtype, out_dtype, kt, kb, mb, nb):
    cbs = [_prog.CBSpec(index=0, data_format=dtype, num_pages=2 * mb * kb, core_ranges=ranges)]
    cbs += [_prog.CBSpec(index=i, data_format=weight_dtype, num_pages=2 * kb * nb, core_ranges=ranges) for i in (1, 2)]
    cbs.append(_prog.CBSpec(index=16, data_format=out_dtype, num_pages=2, core_ranges=ranges))
    if kt > kb:  # partial sums between K blocks
        cbs += [_prog.CBSpec(index=i, data_format="float32", num_pages=mb * nb, core_ranges=ranges) for i in (24, 25)]
    return cbs


# Cycles per output tile, for choosing the block: the two HiFi4 tile matmuls per K tile (2 x 64 cycles,
# tech_reports/GEMM_FLOPS/GEMM_FLOPS.md), and one 2 KB tile read from DRAM per K tile at a core's share of an
# n150's DRAM (288 GB/s / 64 cores / 1 GHz = 4.5 B/cycle, tech_reports/FlashAttention/FlashAttention.md).
SWIGLU_MATH_CYCLES_PER_K_TILE = 128
SWIGLU_DRAM_CYCLES_PER_K_TILE = 2048 / 4.5


def _choose_blocks(mt, nt, kt, kb, cores, cb_bytes):
    """Output block (mb, nb) in tiles, within the L1 budget: the least time of the busiest core, taking the larger
    of its matmul time and its share of the DRAM reads (x once per block column, W1 and W3 once per block row:
    1/nb + 2/mb reads per output tile and K tile), then fewer reads."""
    best = None
    for mb in SWIGLU_BLOCK_CANDIDATES:
        for nb in SWIGLU_BLOCK_CANDIDATES:
            if (mb > 1 and mb // 2 >= mt) or (nb > 1 and nb // 2 >= nt) or cb_bytes(mb, nb) > _prog.L1_CB_BUDGET:
                continue
            blocks = -(-mt // mb) * -(-nt // nb)
            busiest = -(-blocks // cores) * min(mb, mt) * min(nb, nt)
            reads = 1 / min(nb, nt) + 2 / min(mb, mt)
            cost = max(busiest * SWIGLU_MATH_CYCLES_PER_K_TILE,
                       mt * nt / min(cores, blocks) * reads * SWIGLU_DRAM_CYCLES_PER_K_TILE)
            key = (cost, reads, -mb)
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
    return desc


def swiglu_device_inputs(x, w1, w3) -> dict:
    return {"x": x.reshape(-1, x.shape[-1]), "w1": w1, "w3": w3}


def swiglu_device_outputs(outputs: dict, x_shape) -> list:
    out = outputs["out"]
    return [out.reshape(tuple(x_shape[:-1]) + (out.shape[-1],))]


@register_kernel_op
class SwiGLUKernel(KernelOp):
    name = "swiglu"

    def program(self, inputs, attrs, opts):
        knobs = dict(opts.knobs)
        x, w1, w3 = inputs
        m = int(np.prod(x.shape[:-1])) if x.ndim > 1 else 1
        desc = swiglu_program(m, w1.shape[0], w1.shape[1], opts.dtype, grid=opts.grid, **knobs)
        return desc, swiglu_device_inputs(x, w1, w3)

    def unpack(self, outputs, inputs, attrs):
        return swiglu_device_outputs(dict(outputs), inputs[0].shape)

    def case_strategy(self, common, small):
        from hypothesis import strategies as st

        return st.fixed_dictionaries({
            **common,
            "m": st.integers(1, 70), "k": st.integers(1, 200), "n": st.integers(1, 70), "max_k_block": st.integers(1, 8),
            "max_n_block": st.integers(1, 2),
            "weight_dtype": st.sampled_from([None, "bfloat8_b"]),  # None: the weights take `dtype` too
        })

    def make_inputs(self, case, rng, randn, grid):
        x = randn(case["m"], case["k"])
        w1 = (rng.standard_normal((case["k"], case["n"])) / math.sqrt(case["k"])).astype(np.float32)
        w3 = (rng.standard_normal((case["k"], case["n"])) / math.sqrt(case["k"])).astype(np.float32)
        knobs = {"max_k_block": case["max_k_block"], "max_n_block": case.get("max_n_block"),
                 "weight_dtype": case.get("weight_dtype")}
        return [x, w1, w3], {}, DeviceOptions(case["dtype"], grid, knobs)

    def input_formats(self, dtype, count, knobs):
        weights = knobs.get("weight_dtype") or dtype  # bfloat8_b weights with bfloat16 activations, or both dtype
        return [dtype, weights, weights]

    def error_bounds(self, x64, attrs, refs, backend, opts=None):
        from tilegraph.runtime.fuzz import ACCUM_UNIT, MVMUL_ALIGN, OUT_ROUNDING

        rnd = OUT_ROUNDING[backend]
        x, w1, w3 = x64
        k = x.shape[-1]
        a, b = x @ w1, x @ w3
        unit = k * ACCUM_UNIT + (MVMUL_ALIGN if backend != "numpy" else 0.0)
        ea, eb = unit * (np.abs(x) @ np.abs(w1)), unit * (np.abs(x) @ np.abs(w3))
        # d(silu(a) b) <= |silu'(a)| |b| ea + |silu(a)| eb with |silu'| <= 1.1 and |silu(a)| <= |a|.
        return [rnd * np.abs(refs[0]) + 1.1 * np.abs(b) * ea + np.abs(a) * eb + 1e-30]
