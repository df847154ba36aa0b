"""Device side of the rmsnorm op: its tt-metal program description (kernels in this folder).

Moved from the end of ops/rmsnorm.py.
"""

from __future__ import annotations

import numpy as np
from tilegraph.kernels import description as _prog
from tilegraph.kernels import host as _host
from tilegraph.kernels.registry import DeviceOptions, KernelOp, register_kernel_op
from tilegraph.ops import get_op

from tilegraph.errors import ShapeError

RMSNORM_MAX_BLOCK_TILES = 8  # width block streamed per pass; 2 blocks per input CB keep reader and compute overlapped


def rmsnorm_program(
    shape,
    dtype: str = "bfloat16",
    *,
    eps: float | None = None,  # None: the rmsnorm op's default (ops/rmsnorm.py attrs)
    gamma: bool = True,
    residual: bool = False,
    grid=(8, 8),
    out_dtype: str = "bfloat16",
    interm: str = "float32",
    max_block: int = RMSNORM_MAX_BLOCK_TILES,
    row_resident: bool | None = None,
    math_fidelity: str = "HiFi4",
) -> _prog.ProgramDescription:
    """RMSNorm over the last dim of x[..., W] on a core grid: tile rows (32 rows each) split across cores.

    Device tensors: x [N, W] (N = product of leading dims), optional residual [N, W] (then h = x + residual is
    normalized and also written out as "h"), optional gamma [1, W] (row 0 of its tiles), out [N, W] (the reader
    writes the reduce scaler into L1 itself). Zero padding to tiles is harmless: it adds nothing to the sum of squares and the
    mean divides by the true W (passed as 1/W).
    row_resident: read each row from DRAM once and keep it (and gamma) in L1 for the second pass; default: when
    the CBs (two whole rows of x and the residual, all of gamma) fit description.L1_CB_BUDGET (True that does not fit is an error from the L1 check).
    math_fidelity: of the squares, the row reduce and the multiplies (fuzz tolerances are derived for HiFi4)."""
    eps = get_op("rmsnorm").attrs["eps"] if eps is None else eps
    *lead, w = (int(d) for d in shape)
    n = int(np.prod(lead)) if lead else 1
    if n < 1 or w < 1:
        raise ShapeError(f"op 'rmsnorm': shape {list(shape)} needs at least one row and one column")
    nt, wt = _host.tiles(n), _host.tiles(w)
    blk = _host.largest_divisor_at_most(wt, max_block)
    split = _host.split_work(nt, grid[0] * grid[1])
    cores = _host.grid_cores(grid, len(split))
    ranges = _host.core_ranges(cores)

    tensors = [_prog.TensorSpec("x", (n, w), dtype)]
    if residual:
        tensors.append(_prog.TensorSpec("residual", (n, w), dtype))
    if gamma:
        tensors.append(_prog.TensorSpec("gamma", (1, w), "bfloat16"))
    tensors.append(_prog.TensorSpec("out", (n, w), out_dtype, "output"))
    if residual:
        tensors.append(_prog.TensorSpec("h", (n, w), out_dtype, "output"))

    def cb(index, fmt, pages):
        return _prog.CBSpec(index=index, data_format=fmt, num_pages=pages, core_ranges=ranges)

    def cbs_for(resident):
        rows = 2 * wt if resident else 2 * blk  # resident: two whole rows, so the next row streams in meanwhile
        out = [cb(0, dtype, rows), cb(4, "bfloat16", 1), cb(16, out_dtype, 2 * blk),
               cb(24, interm, blk), cb(25, "float32", 1), cb(26, "float32", 1)]
        if residual:
            out += [cb(1, dtype, rows), cb(17, out_dtype, 2 * blk), cb(27, interm, blk)]
        if gamma:
            out += [cb(2, "bfloat16", wt if resident else 2 * blk), cb(28, interm, blk)]
        return out

    if row_resident is None:
        row_resident = sum(c.num_pages * c.page_size for c in cbs_for(True)) <= _prog.L1_CB_BUDGET
    cbs = cbs_for(row_resident)

    gamma_mcast = bool(gamma and row_resident and len(cores) > 1)
    defines = {**({"FUSE_RESIDUAL": "1"} if residual else {}), **({"FUSE_GAMMA": "1"} if gamma else {}),
               **({"ROW_RESIDENT": "1"} if row_resident else {}), **({"GAMMA_MCAST": "1"} if gamma_mcast else {})}
    res_name = "residual" if residual else "x"
    gamma_name = "gamma" if gamma else "x"
    h_name = "h" if residual else "out"
    addr = _prog.BufferAddress
    reader_rt, compute_rt, writer_rt = {}, {}, {}
    for core, (start, count) in zip(cores, split):
        reader_rt[core] = (addr("x"), addr(res_name), addr(gamma_name), wt, start, count, blk)
        if gamma_mcast:
            reader_rt[core] += _gamma_multicast_args(core, cores, grid)
        compute_rt[core] = (wt, count, _host.f32_bits(1.0 / w), _host.f32_bits(eps), blk)
        writer_rt[core] = (addr("out"), addr(h_name), wt, start, count, blk)
    cta = _prog.TensorAccessorCTA
    kernels = [
        _prog.KernelSpec("reader", "rmsnorm/reader.cpp", ranges,
                         (cta("x"), cta(res_name), cta(gamma_name)), defines, reader_rt),
        _prog.KernelSpec("compute", "rmsnorm/compute.cpp", ranges, (), defines, compute_rt),
        _prog.KernelSpec("writer", "rmsnorm/writer.cpp", ranges, (cta("out"), cta(h_name)), defines, writer_rt),
    ]
    semaphores = [_prog.SemaphoreSpec(ranges, 0), _prog.SemaphoreSpec(ranges, 0)] if gamma_mcast else []
    desc = _prog.ProgramDescription(
        name="rmsnorm", tensors=tensors, cbs=cbs, kernels=kernels, semaphores=semaphores,
        compute_config=_prog.ComputeConfig(math_fidelity=math_fidelity, fp32_dest_acc_en=True,
                                           unpack_to_dest_fp32=(25,)),  # the fp32 partial sum, reloaded per block
        grid=tuple(grid))
    return desc


def _gamma_multicast_args(core, cores, grid) -> tuple:
    """Reader args of GAMMA_MCAST (reader.cpp): is_sender, the sender's NoC x / y, the receiver rectangles. The
    cores are the first n of the grid in row-major order: whole rows (the sender, core (0, 0), inside) and a
    partial last row, so one rectangle or two; each as NoC corners (start <= end: the logical -> NoC map keeps the
    order) and its receiver count (the sender excluded)."""
    nx, ny = _prog.NocX, _prog.NocY
    gx = grid[0]
    full, rem = divmod(len(cores), gx)
    rects = []
    if full:
        rects.append(((0, 0), (gx - 1, full - 1), full * gx - 1))
    if rem:
        rects.append(((0, full), (rem - 1, full), rem - (0 if full else 1)))
    sender = cores[0]
    args = [int(core == sender), nx(sender), ny(sender), len(rects)]
    for lo, hi, dests in rects:
        args += [nx(lo), ny(lo), nx(hi), ny(hi), dests]
    return tuple(args)


def rmsnorm_device_inputs(x, gamma=None, residual=None) -> dict:
    """Host arrays for rmsnorm_program's input tensors, in their logical device shapes."""
    w = x.shape[-1]
    arrays = {"x": x.reshape(-1, w)}
    if residual is not None:
        arrays["residual"] = residual.reshape(-1, w)
    if gamma is not None:
        arrays["gamma"] = gamma.reshape(1, w)
    return arrays


def rmsnorm_device_outputs(outputs: dict, x_shape) -> list:
    """[y] (and h when the residual was fused) in x's shape, from the device output arrays."""
    result = [outputs["out"].reshape(x_shape)]
    if "h" in outputs:
        result.append(outputs["h"].reshape(x_shape))
    return result


@register_kernel_op
class RMSNormKernel(KernelOp):
    """rmsnorm with an optional third input, a residual: it then returns [norm(x + residual) * gamma, x + residual]."""

    name = "rmsnorm"

    def program(self, inputs, attrs, opts):
        knobs = dict(opts.knobs)
        x, gamma, *rest = inputs
        residual = rest[0] if rest else None
        desc = rmsnorm_program(x.shape, opts.dtype, eps=float(attrs["eps"]), gamma=True,
                               residual=residual is not None, grid=opts.grid, **knobs)
        return desc, rmsnorm_device_inputs(x, gamma, residual)

    def unpack(self, outputs, inputs, attrs):
        return rmsnorm_device_outputs(dict(outputs), inputs[0].shape)

    def input_formats(self, dtype, count, knobs):
        # rmsnorm's gamma is always a bfloat16 device tensor; everything else takes the case's format.
        fmts = [dtype] * count
        fmts[1] = "bfloat16"
        return fmts

    def on_host(self, inputs, attrs, run):
        """With a residual: norm(x + r) * gamma, and x + r (the kernel adds it first)."""
        if len(inputs) == 3:
            h = inputs[0] + inputs[2]
            return run([h, inputs[1]]) + [h]
        return run(inputs)

    def case_strategy(self, common, small):
        from hypothesis import strategies as st

        return st.fixed_dictionaries({
            **common,
            "rows": st.integers(1, 80), "width": st.integers(1, 400), "residual": st.booleans(),
            "eps": st.sampled_from([1e-6, 1e-5, 0.1]), "max_block": st.integers(1, 8),
        })

    def make_inputs(self, case, rng, randn, grid):
        x = randn(case["rows"], case["width"])
        gamma = (1.0 + 0.5 * rng.standard_normal(case["width"])).astype(np.float32)
        inputs = [x, gamma] + ([randn(case["rows"], case["width"])] if case["residual"] else [])
        return inputs, {"eps": case["eps"]}, DeviceOptions(case["dtype"], grid, {"max_block": case["max_block"]})

    def error_bounds(self, x64, attrs, refs, backend, opts=None):
        from tilegraph.runtime.fuzz import ACCUM_UNIT, MVMUL_ALIGN, OUT_ROUNDING, SRC_TF32

        rnd = OUT_ROUNDING[backend]
        w = x64[0].shape[-1]
        # y = h * r * gamma: relative rounding per element, the mean of squares' fp32 sum (w terms), its matrix-
        # engine alignment and x^2's TF32 truncation (both halved by the square root), rstd and the normalized tile
        # truncated to TF32 into the two multiplies.
        fpu = (MVMUL_ALIGN + SRC_TF32) / 2 + 2 * SRC_TF32 if backend != "numpy" else 0.0
        bounds = [(rnd + fpu + w * ACCUM_UNIT) * np.abs(refs[0]) + 1e-30]
        if len(refs) == 2:
            bounds.append(rnd * np.abs(refs[1]) + 1e-30)
        return bounds
