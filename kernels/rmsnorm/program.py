"""Device side of the rmsnorm op: its tt-metal program description (kernels in this folder).

Moved from the end of ops/rmsnorm.py.
"""

from __future__ import annotations

import numpy as np
from tilegraph.kernels import description as _prog
from tilegraph.kernels import host as _host

from tilegraph.errors import ShapeError


RMSNORM_MAX_BLOCK_TILES = 8  # width block streamed per pass; 2 blocks per input CB keep reader and compute overlapped


def rmsnorm_program(
    shape,
    dtype: str = "bfloat16",
    *,
    eps: float = 1e-5,
    gamma: bool = True,
    residual: bool = False,
    grid=(8, 8),
    out_dtype: str = "bfloat16",
    interm: str = "float32",
    max_block: int = RMSNORM_MAX_BLOCK_TILES,
) -> _prog.ProgramDescription:
    """RMSNorm over the last dim of x[..., W] on a core grid: tile rows (32 rows each) split across cores.

    Device tensors: x [N, W] (N = product of leading dims), optional residual [N, W] (then h = x + residual is
    normalized and also written out as "h"), optional gamma [1, W] (row 0 of its tiles), consts [32, 32] (the
    reduce scaler), out [N, W]. Zero padding to tiles is harmless: it adds nothing to the sum of squares and the
    mean divides by the true W (passed as 1/W)."""
    *lead, w = (int(d) for d in shape)
    n = int(np.prod(lead)) if lead else 1
    if n < 1 or w < 1:
        raise ShapeError(f"op 'rmsnorm': shape {list(shape)} needs at least one row and one column")
    nt, wt = _host.tiles(n), _host.tiles(w)
    blk = _host.largest_divisor_at_most(wt, max_block)
    split = _host.split_work(nt, grid[0] * grid[1])
    cores = _host.grid_cores(grid, len(split))
    ranges = _host.core_ranges(cores)

    tensors = [_prog.TensorSpec("x", (n, w), dtype), _prog.TensorSpec("consts", (32, 32), "bfloat16")]
    if residual:
        tensors.append(_prog.TensorSpec("residual", (n, w), dtype))
    if gamma:
        tensors.append(_prog.TensorSpec("gamma", (1, w), "bfloat16"))
    tensors.append(_prog.TensorSpec("out", (n, w), out_dtype, "output"))
    if residual:
        tensors.append(_prog.TensorSpec("h", (n, w), out_dtype, "output"))

    def cb(index, fmt, pages):
        return _prog.CBSpec(index=index, data_format=fmt, num_pages=pages, core_ranges=ranges)

    cbs = [cb(0, dtype, 2 * blk), cb(4, "bfloat16", 1), cb(16, out_dtype, 2 * blk),
           cb(24, interm, blk), cb(25, "float32", 1), cb(26, "float32", 1)]
    if residual:
        cbs += [cb(1, dtype, 2 * blk), cb(17, out_dtype, 2 * blk), cb(27, interm, blk)]
    if gamma:
        cbs += [cb(2, "bfloat16", 2 * blk), cb(28, interm, blk)]

    defines = {**({"FUSE_RESIDUAL": "1"} if residual else {}), **({"FUSE_GAMMA": "1"} if gamma else {})}
    res_name = "residual" if residual else "x"
    gamma_name = "gamma" if gamma else "x"
    h_name = "h" if residual else "out"
    addr = _prog.BufferAddress
    reader_rt, compute_rt, writer_rt = {}, {}, {}
    for core, (start, count) in zip(cores, split):
        reader_rt[core] = (addr("x"), addr(res_name), addr(gamma_name), addr("consts"), wt, start, count, blk)
        compute_rt[core] = (wt, count, _host.f32_bits(1.0 / w), _host.f32_bits(eps), blk)
        writer_rt[core] = (addr("out"), addr(h_name), wt, start, count, blk)
    cta = _prog.TensorAccessorCTA
    kernels = [
        _prog.KernelSpec("reader", "rmsnorm/reader.cpp", ranges,
                         (cta("x"), cta(res_name), cta(gamma_name), cta("consts")), defines, reader_rt),
        _prog.KernelSpec("compute", "rmsnorm/compute.cpp", ranges, (), defines, compute_rt),
        _prog.KernelSpec("writer", "rmsnorm/writer.cpp", ranges, (cta("out"), cta(h_name)), defines, writer_rt),
    ]
    desc = _prog.ProgramDescription(
        name="rmsnorm", tensors=tensors, cbs=cbs, kernels=kernels,
        compute_config=_prog.ComputeConfig(math_fidelity="HiFi4", fp32_dest_acc_en=True), grid=tuple(grid))
    desc.validate()
    return desc


def rmsnorm_device_inputs(x, gamma=None, residual=None) -> dict:
    """Host arrays for rmsnorm_program's input tensors, in their logical device shapes."""
    w = x.shape[-1]
    arrays = {"x": x.reshape(-1, w), "consts": _host.reduce_scaler_tile(1.0)}
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
