"""rmsnorm(x[..., H], gamma[H]) {eps} -> x / sqrt(mean(x^2) + eps) * gamma,  and rmsnorm_bwd -> (dx, dgamma).

Backward, with r = 1/sqrt(mean(x^2) + eps), xhat = x*r and g = dy*gamma:
    dx = r * (g - xhat * mean(g * xhat))       dgamma = sum over leading dims of dy * xhat
"""

from __future__ import annotations

import numpy as np
from tilegraph.ops._util import expect_arity, expect_float, expect_same, float_attr
from tilegraph.ops.base import Op, TensorType, register
from tilegraph.ops.parallel import as_rows, parallel_rows, single_threaded_blas
from tilegraph.ops.placement import P, R, Shard, whole_rows
from tilegraph.ops.scratch import scratch

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


def _inv_rms(x2: np.ndarray, eps: float, r: np.ndarray) -> np.ndarray:
    """r[M, 1] = 1/sqrt(mean(x^2) + eps) per row, computed with one batched dot (no [M, H] temporary)."""
    np.einsum("ij,ij->i", x2, x2, out=r[:, 0])
    r *= 1.0 / x2.shape[1]
    r += eps
    np.sqrt(r, out=r)
    np.reciprocal(r, out=r)
    return r


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
        eps = float(attrs["eps"])

        def rows(r0, r1, worker):
            xs, ys = x2[r0:r1], y2[r0:r1]
            r = _inv_rms(xs, eps, scratch(("rmsnorm", worker), (r1 - r0, 1), x.dtype))
            np.multiply(xs, r, out=ys)
            ys *= gamma

        parallel_rows(x2.shape[0], x2.shape[1], rows)

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
        h = x.shape[-1]
        x2, dy2, dx2 = as_rows(x), as_rows(dy), as_rows(dx)
        eps = float(attrs["eps"])
        partials = {}  # first row of a chunk -> that chunk's contribution to dgamma

        # With xhat = x * r:  dgamma = sum over rows of r * (dy * x);  dx = r * dy * gamma - x * k  where
        # k = r^3 * ((dy * x) @ gamma) / H per row. The two row/column sums of t = dy * x are gemvs, so the
        # chunk makes 7 passes over [rows, H] and needs one [rows, H] scratch.
        def rows(r0, r1, worker):
            xs, dys, dxs = x2[r0:r1], dy2[r0:r1], dx2[r0:r1]
            key = ("rmsnorm_bwd", worker)
            r = _inv_rms(xs, eps, scratch(key + ("r",), (r1 - r0, 1), x.dtype))
            t = scratch(key + ("t",), xs.shape, x.dtype)
            np.multiply(dys, xs, out=t)
            # A fresh [H] array: it is read after the pool thread may have moved on to other work.
            partials[r0] = np.matmul(r[:, 0], t)
            k = scratch(key + ("k",), (r1 - r0, 1), x.dtype)
            np.matmul(t, gamma, out=k[:, 0])
            k *= r
            k *= r
            k *= r
            k *= 1.0 / h
            np.multiply(dys, gamma, out=dxs)
            dxs *= r
            np.multiply(xs, k, out=t)
            dxs -= t

        # The gemvs run on the worker threads: one BLAS thread each (a threaded BLAS called from two threads
        # at once spins against itself; measured 4x slower than the whole op on one thread).
        with single_threaded_blas():
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
