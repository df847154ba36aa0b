"""rmsnorm(x[..., H], gamma[H]) {eps} -> x / sqrt(mean(x^2) + eps) * gamma,  and rmsnorm_bwd -> (dx, dgamma).

Backward, with r = 1/sqrt(mean(x^2) + eps), xhat = x*r and g = dy*gamma:
    dx = r * (g - xhat * mean(g * xhat))       dgamma = sum over leading dims of dy * xhat
"""

from __future__ import annotations

import numpy as np
from tilegraph.ops import cpu_kernels
from tilegraph.ops._util import expect_arity, expect_float, expect_same, float_attr
from tilegraph.ops.base import Op, TensorType, register
from tilegraph.ops.cpu_kernels import contiguous
from tilegraph.ops.parallel import as_rows, parallel_rows
from tilegraph.ops.placement import P, R, Shard, whole_rows

from tilegraph.errors import ShapeError


def rmsnorm_reference(x: np.ndarray, gamma: np.ndarray, eps: float) -> np.ndarray:
    dt = np.result_type(x.dtype, gamma.dtype)
    x = x.astype(dt, copy=False)
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + dt.type(eps))
    return x * r * gamma.astype(dt, copy=False)


def rmsnorm_bwd_reference(x: np.ndarray, gamma: np.ndarray, dy: np.ndarray, eps: float):
    dt = np.result_type(x.dtype, gamma.dtype, dy.dtype)
    x, gamma, dy = (a.astype(dt, copy=False) for a in (x, gamma, dy))
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + dt.type(eps))
    xhat = x * r
    g = dy * gamma
    dx = r * (g - xhat * np.mean(g * xhat, axis=-1, keepdims=True))
    dgamma = (dy * xhat).reshape(-1, x.shape[-1]).sum(axis=0)
    return dx, dgamma


def _check(op: str, x: TensorType, gamma: TensorType) -> None:
    expect_float(op, "x", x)
    expect_float(op, "gamma", gamma)
    if len(x.shape) < 1 or gamma.shape != (x.shape[-1],):
        raise ShapeError(
            f"op {op!r}: gamma {list(gamma.shape)} must be [H] with H = last dim of x {list(x.shape)}"
        )
    if x.dtype != gamma.dtype:
        raise ShapeError(f"op {op!r}: x is {x.dtype} but gamma is {gamma.dtype}; give both the same dtype")


@register
class RMSNorm(Op):
    name = "rmsnorm"
    attrs = {"eps": 1e-5}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): whole rows needed, so a hidden split is gathered first
        (distributed RMSNorm as all_gather -> normalize; the next column-parallel matmul needs whole rows anyway)."""
        x = whole_rows(placements[0], node.inputs[0])
        return [x, R], [x]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x", "gamma"])
        _check(self.name, *inputs)
        float_attr(self.name, attrs, "eps")
        return [inputs[0]]

    def reference(self, inputs, attrs):
        return [rmsnorm_reference(*inputs, float(attrs["eps"]))]

    def numpy_forward(self, inputs, outputs, attrs):
        x, gamma = inputs
        x2, y2 = as_rows(x), as_rows(outputs[0])
        contiguous(self.name, x=x2, gamma=gamma, y=y2)
        kernel = cpu_kernels.kernel("rmsnorm", x.dtype)
        h, eps = x2.shape[1], float(attrs["eps"])

        (xp, gp, yp), row = (a.ctypes.data for a in (x2, gamma, y2)), h * x.itemsize

        def rows(r0, r1, _):
            kernel(xp + r0 * row, gp, yp + r0 * row, r1 - r0, h, eps)

        parallel_rows(x2.shape[0], h, rows)

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None, None]
        x, gamma = node.inputs
        dx, dgamma = g.call("rmsnorm_bwd", x, gamma, dy, eps=node.attrs["eps"])
        return [dx, dgamma]

    def flops(self, node):
        return 4 * node.inputs[0].type.numel


@register
class RMSNormBwd(Op):
    name = "rmsnorm_bwd"
    attrs = {"eps": 1e-5}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): whole rows; dgamma sums over rows, so it is a partial sum
        when the rows (batch) are split."""
        x = whole_rows(placements[0], node.inputs[0])
        return [x, R, x], [x, P if isinstance(x, Shard) else R]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x", "gamma", "dy"])
        x, gamma, dy = inputs
        _check(self.name, x, gamma)
        expect_same(self.name, "x", x, "dy", dy)
        float_attr(self.name, attrs, "eps")
        return [x, gamma]

    def reference(self, inputs, attrs):
        return list(rmsnorm_bwd_reference(*inputs, float(attrs["eps"])))

    def numpy_forward(self, inputs, outputs, attrs):
        x, gamma, dy = inputs
        dx, dgamma = outputs
        x2, dy2, dx2 = as_rows(x), as_rows(dy), as_rows(dx)
        contiguous(self.name, x=x2, gamma=gamma, dy=dy2, dx=dx2)
        kernel = cpu_kernels.kernel("rmsnorm_bwd", x.dtype)
        h, eps = x2.shape[1], float(attrs["eps"])
        partials = {}  # first row of a chunk -> that chunk's contribution to dgamma

        (xp, gp, dyp, dxp), row = (a.ctypes.data for a in (x2, gamma, dy2, dx2)), h * x.itemsize

        def rows(r0, r1, _):
            part = partials[r0] = np.zeros(h, x.dtype)  # fresh: read after the worker has moved on
            kernel(xp + r0 * row, gp, dyp + r0 * row, dxp + r0 * row, part.ctypes.data, r1 - r0, h, eps)

        parallel_rows(x2.shape[0], h, rows)
        dgamma.fill(0)
        for r0 in sorted(partials):  # fixed order: the result does not depend on thread timing
            dgamma += partials[r0]

    def flops(self, node):
        return 10 * node.inputs[0].type.numel


# =================================================================================================================
# Device program builder (custom kernels in kernels/rmsnorm/) -- owned by H-kern; H-ops' code is above this line.
# =================================================================================================================
from tilegraph.kernels import host as _host
from tilegraph.ops import program as _prog

RMSNORM_MAX_BLOCK_TILES = 8  # width block streamed per pass; 2 blocks per input CB keep reader and compute overlapped
# Row-resident mode keeps two whole rows of x (and of the residual) and all of gamma in L1: allowed while the CBs
# stay within this much of the core's 1.5 MB, leaving the rest to firmware, kernel binaries and stacks.
RMSNORM_RESIDENT_L1_BYTES = 1024 * 1024


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
    row_resident: bool | None = None,
    math_fidelity: str = "HiFi4",
) -> _prog.ProgramDescription:
    """RMSNorm over the last dim of x[..., W] on a core grid: tile rows (32 rows each) split across cores.

    Device tensors: x [N, W] (N = product of leading dims), optional residual [N, W] (then h = x + residual is
    normalized and also written out as "h"), optional gamma [1, W] (row 0 of its tiles), consts [32, 32] (the
    reduce scaler), out [N, W]. Zero padding to tiles is harmless: it adds nothing to the sum of squares and the
    mean divides by the true W (passed as 1/W).
    row_resident: read each row from DRAM once and keep it (and gamma) in L1 for the second pass; default: when
    the CBs fit RMSNORM_RESIDENT_L1_BYTES (True that does not fit is an error from the L1 check).
    math_fidelity: of the squares, the row reduce and the multiplies (fuzz tolerances are derived for HiFi4)."""
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
        row_resident = sum(c.num_pages * c.page_size for c in cbs_for(True)) <= RMSNORM_RESIDENT_L1_BYTES
    cbs = cbs_for(row_resident)

    defines = {**({"FUSE_RESIDUAL": "1"} if residual else {}), **({"FUSE_GAMMA": "1"} if gamma else {}),
               **({"ROW_RESIDENT": "1"} if row_resident else {})}
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
        compute_config=_prog.ComputeConfig(math_fidelity=math_fidelity, fp32_dest_acc_en=True,
                                           unpack_to_dest_fp32=(25,)),  # the fp32 partial sum, reloaded per block
        grid=tuple(grid))
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
