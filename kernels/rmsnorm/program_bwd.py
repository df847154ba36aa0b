"""Program builder of the RMSNorm backward kernel (kernels/rmsnorm/{reader,compute,writer}_bwd.cpp).

rmsnorm_bwd(x[N, W], gamma[W], dy[N, W]) -> dx[N, W], dgamma[W]. Tile rows (32 rows each) split over cores as in
the forward; each row is streamed twice in width blocks (hidden up to 8192 and beyond: L1 holds blocks, never a row).

dgamma sums over all rows, i.e. over cores. Each core accumulates the rows it owns into its own partial tiles
(fp32, in L1 for the whole program: one tile per group of 32 width tiles, see compute_bwd.cpp) and writes
them once, at the end, into its own tile row of the `dgamma_partials` tensor [cores * 32, groups * 32]. No two
cores write the same page, so there is no race and no semaphore. The partials are then summed over cores in core
order (a fixed order: the result does not depend on timing) by the host, from the read-back partials (this module's
unpack), on a card as in the emulator: the combine reads cores * W floats, 1/(32 * rows per core) of the kernel's
own traffic, and the tile layout of the partials (selector-matmul rows) would need a reshape and a permute on the
device for a ttnn.sum.
"""

from __future__ import annotations

import numpy as np
from tilegraph.kernels import description as _prog
from tilegraph.kernels import host as _host
from tilegraph.kernels.registry import DeviceOptions, KernelOp, register_kernel_op

from tilegraph.errors import ShapeError

RMSNORM_BWD_MAX_BLOCK_TILES = 8  # width block per pass; 2 blocks per input CB keep reader and compute overlapped
TILE = 32


GROUP = TILE  # width tiles per dgamma partial tile: one per row of the tile


def width_block(wt: int, max_block: int) -> int:
    """The width block: the largest power of two <= max_block dividing the row's wt tiles, so that it divides the
    row (CB reservations never wrap) and the group of 32 (a block never straddles two partial tiles)."""
    blk = 1
    while blk * 2 <= max_block and wt % (blk * 2) == 0:
        blk *= 2
    return blk


def rmsnorm_bwd_program(shape, dtype: str = "bfloat16", *, eps: float = 1e-5, grid=(8, 8),
                        out_dtype: str = "bfloat16", interm: str = "float32",
                        max_block: int = RMSNORM_BWD_MAX_BLOCK_TILES) -> _prog.ProgramDescription:
    """RMSNorm backward over the last dim of x[..., W] on a core grid.

    Device tensors: x, dy [N, W] (zero padding to tiles is harmless: padded dy is 0, so padded rows and columns add
    nothing to either sum, and the means divide by the true W), gamma [1, W] (bf16), consts (the reduce scaler,
    then the row selectors E_0..E_{group-1}), outputs dx [N, W] and dgamma_partials (fp32)."""
    *lead, w = (int(d) for d in shape)
    n = int(np.prod(lead)) if lead else 1
    if n < 1 or w < 1:
        raise ShapeError(f"op 'rmsnorm_bwd': shape {list(shape)} needs at least one row and one column")
    if max_block < 1 or max_block > TILE:
        raise ShapeError(f"op 'rmsnorm_bwd': max_block {max_block} must be 1..32 tiles")
    nt, wt = _host.tiles(n), _host.tiles(w)
    blk = width_block(wt, max_block)
    group = GROUP
    n_groups = -(-wt // group)
    split = _host.split_work(nt, grid[0] * grid[1])
    cores = _host.grid_cores(grid, len(split))
    ranges = _host.core_ranges(cores)

    tensors = [
        _prog.TensorSpec("x", (n, w), dtype),
        _prog.TensorSpec("gamma", (1, w), "bfloat16"),
        _prog.TensorSpec("dy", (n, w), dtype),
        _prog.TensorSpec("consts", (TILE, TILE * (1 + group)), "bfloat16"),
        _prog.TensorSpec("dx", (n, w), out_dtype, "output"),
        _prog.TensorSpec("dgamma_partials", (len(cores) * TILE, n_groups * TILE), "float32", "output"),
    ]

    def cb(index, fmt, pages):
        return _prog.CBSpec(index=index, data_format=fmt, num_pages=pages, core_ranges=ranges)

    cbs = [cb(0, dtype, 2 * blk), cb(2, "bfloat16", 2 * blk), cb(3, dtype, 2 * blk), cb(4, "bfloat16", 1),
           cb(5, "bfloat16", group), cb(16, out_dtype, 2 * blk), cb(17, "float32", 1),
           cb(24, interm, blk), cb(25, "float32", 2), cb(26, "float32", 1), cb(27, "float32", 1),
           cb(28, interm, blk), cb(29, interm, 1), cb(30, interm, blk), cb(31, "float32", n_groups),
           cb(23, "float32", 1)]

    addr = _prog.BufferAddress
    reader_rt, compute_rt, writer_rt = {}, {}, {}
    for slot, (core, (start, count)) in enumerate(zip(cores, split)):
        reader_rt[core] = (addr("x"), addr("dy"), addr("gamma"), addr("consts"), wt, start, count, blk, group)
        compute_rt[core] = (wt, count, _host.f32_bits(1.0 / w), _host.f32_bits(eps), blk, group, n_groups)
        writer_rt[core] = (addr("dx"), addr("dgamma_partials"), wt, start, count, blk, n_groups, slot)
    cta = _prog.TensorAccessorCTA
    kernels = [
        _prog.KernelSpec("reader", "rmsnorm/reader_bwd.cpp", ranges,
                         (cta("x"), cta("dy"), cta("gamma"), cta("consts")), {}, reader_rt),
        _prog.KernelSpec("compute", "rmsnorm/compute_bwd.cpp", ranges, (), {}, compute_rt),
        _prog.KernelSpec("writer", "rmsnorm/writer_bwd.cpp", ranges, (cta("dx"), cta("dgamma_partials")), {},
                         writer_rt),
    ]
    desc = _prog.ProgramDescription(
        name="rmsnorm_bwd", tensors=tensors, cbs=cbs, kernels=kernels,
        compute_config=_prog.ComputeConfig(math_fidelity="HiFi4", fp32_dest_acc_en=True,
                                           unpack_to_dest_fp32=(25, 31, 23)),  # the fp32 partials, reloaded
        grid=tuple(grid))
    desc.validate()
    return desc


def rmsnorm_bwd_consts(group: int) -> np.ndarray:
    """[32, 32 * (1 + group)]: the reduce scaler tile, then the selectors E_k (ones in row k) for k < group."""
    tiles = [_host.reduce_scaler_tile(1.0)]
    for k in range(group):
        e = np.zeros((TILE, TILE), np.float32)
        e[k, :] = 1.0
        tiles.append(e)
    return np.concatenate(tiles, axis=1)


def rmsnorm_bwd_device_inputs(x, gamma, dy) -> dict:
    """Host arrays for rmsnorm_bwd_program's input tensors, in their logical device shapes."""
    w = x.shape[-1]
    return {"x": x.reshape(-1, w), "gamma": gamma.reshape(1, w), "dy": dy.reshape(-1, w),
            "consts": rmsnorm_bwd_consts(GROUP)}


def combine_dgamma_partials(partials: np.ndarray, width: int, group: int = GROUP) -> np.ndarray:
    """dgamma[W] from the cores' partial tiles: element (core c, row k, partial tile p, column i) holds the sum over
    core c's rows of column (p * group + k) * 32 + i. Summed over cores in core order, in float32."""
    cores, n_groups = partials.shape[0] // TILE, partials.shape[1] // TILE
    per_core = partials.reshape(cores, TILE, n_groups, TILE)[:, :group]  # [c, k, p, i]
    total = np.zeros(per_core.shape[1:], np.float32)
    for c in range(cores):  # fixed order
        total += per_core[c]
    return total.transpose(1, 0, 2).reshape(-1)[:width]


def rmsnorm_bwd_device_outputs(outputs: dict, x_shape) -> list:
    """[dx in x's shape, dgamma[W]] from the device output arrays."""
    dgamma = combine_dgamma_partials(np.asarray(outputs["dgamma_partials"], np.float32), x_shape[-1])
    return [outputs["dx"].reshape(x_shape), dgamma]


def rmsnorm_bwd_error_bounds(x64, eps: float, refs, rnd: float, tf32: float, align: float, accum: float
                             ) -> list[np.ndarray]:
    """Per-element |error| bounds of [dx, dgamma] (inputs as the device holds them, float64).

    rnd: output rounding (bf16 dx: 2^-7, 2x its unit roundoff); tf32: one fp32 value through SrcA / SrcB (TF32
    truncation, 2^-9, 2x); align: the matrix engine's lane alignment per face product, relative to sum |terms|
    (2^-8); accum: per accumulated fp32 term (2^-22, 4x). tf32 = align = 0 on numpy. What the kernel does:
    - r = rsqrt(sum(x^2) / W + eps): x^2 exact in fp32 (bf16 products), TF32 into the reduce (tf32), the reduce's
      alignment (align), fp32 sum of W terms (W accum), all halved by the square root; r is TF32 again as the
      broadcast operand, counted twice (both operands of the multiply may be fp32): r_rel = (tf32 + align +
      W accum) / 2 + 2 tf32.
    - A = r g (g = dy gamma exact in fp32, TF32 when read back, 2 tf32): r_rel + 2 tf32.
    - B = x coef, coef = r^3 sum(x g) / W: x g exact, TF32 into the reduce, aligned, W-term sum: abs error
      (tf32 + align + W accum) mean|x g| r^3 |x|; r^3 adds 3 (tf32 + align + W accum) / 2 relative, coef's
      broadcast 2 tf32.
    - dx = A - B (fp32 SFPU, cancels): the bound is relative to E = |A| + |x| r^3 mean|x g| >= |A| + |B|, with
      c = 7 tf32 + 3 align + 3 W accum covering all of the above; plus the output rounding relative to |dx|.
    - dgamma = sum over N rows of dy x r: r_rel, one TF32 read of each term into the selector matmul (tf32), its
      alignment (align), an fp32 sum of N terms: (4 tf32 + 2 align + (W + N) accum) sum|dy x r|; stored in fp32.
    numpy (float32 throughout): the same form with the hardware terms 0 and a few float32 roundings (4 rnd)."""
    x, gamma, dy = x64
    w = x.shape[-1]
    x2, dy2 = x.reshape(-1, w), dy.reshape(-1, w)
    n = x2.shape[0]
    r = 1.0 / np.sqrt(np.mean(x2 * x2, axis=-1, keepdims=True) + eps)
    g = dy2 * gamma
    e = np.abs(r * g) + np.abs(x2) * r**3 * np.mean(np.abs(x2 * g), axis=-1, keepdims=True)
    host = 4 * rnd if tf32 == 0 else 0.0
    c = 7 * tf32 + 3 * align + 3 * w * accum + host
    dx = rnd * np.abs(refs[0]).reshape(x2.shape) + c * e + 1e-30
    dgamma = (4 * tf32 + 2 * align + (w + n) * accum + host) * np.abs(dy2 * x2 * r).sum(axis=0) + 1e-30
    return [dx.reshape(x.shape), dgamma]


@register_kernel_op
class RMSNormBwdKernel(KernelOp):
    """rmsnorm_bwd(x, gamma, dy) -> [dx, dgamma]: dx per row, dgamma from the cores' partials (summed here)."""

    name = "rmsnorm_bwd"

    def program(self, inputs, attrs, opts):
        x, gamma, dy = inputs
        desc = rmsnorm_bwd_program(x.shape, opts.dtype, eps=float(attrs["eps"]), grid=opts.grid, **dict(opts.knobs))
        return desc, rmsnorm_bwd_device_inputs(x, gamma, dy)

    def unpack(self, outputs, inputs, attrs):
        return rmsnorm_bwd_device_outputs(dict(outputs), inputs[0].shape)

    def input_formats(self, dtype, count, knobs):
        return [dtype, "bfloat16", dtype]  # gamma is always a bfloat16 device tensor

    def case_strategy(self, common, small):
        from hypothesis import strategies as st

        return st.fixed_dictionaries({
            **common,
            "rows": st.integers(1, 80), "width": st.integers(1, 400),
            "eps": st.sampled_from([1e-6, 1e-5, 0.1]), "max_block": st.integers(1, 8),
        })  # fmt: skip

    def make_inputs(self, case, rng, randn, grid):
        x, dy = randn(case["rows"], case["width"]), randn(case["rows"], case["width"])
        gamma = (1.0 + 0.5 * rng.standard_normal(case["width"])).astype(np.float32)
        return [x, gamma, dy], {"eps": case["eps"]}, DeviceOptions(case["dtype"], grid, {"max_block": case["max_block"]})

    def error_bounds(self, x64, attrs, refs, backend, opts=None):
        from tilegraph.runtime.fuzz import ACCUM_UNIT, MVMUL_ALIGN, OUT_ROUNDING, SRC_TF32

        device = backend != "numpy"
        return rmsnorm_bwd_error_bounds(x64, float(attrs["eps"]), refs, OUT_ROUNDING[backend],
                                        SRC_TF32 if device else 0.0, MVMUL_ALIGN if device else 0.0, ACCUM_UNIT)
