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


def swiglu_program(
    m: int,
    k: int,
    n: int,
    dtype: str = "bfloat16",
    *,
    grid=(8, 8),
    out_dtype: str = "bfloat16",
    max_k_block: int = SWIGLU_MAX_K_BLOCK_TILES,
    weight_dtype: str | None = None,
    max_n_block: int | None = None,
) -> _prog.ProgramDescription:
    """Fused SwiGLU out[M, N] = silu(x W1) * (x W3) for x [M, K], W1/W3 [K, N]; output tiles split over the grid.

    Each core owns a contiguous range of output tiles (row-major over [M/32, N/32]), taken in subblocks of up to
    n_blk tiles of one row (x is read once per subblock); both matmuls accumulate in DST over all of K (2 * n_blk
    DST tiles) and the gate is applied there, so the [M, N] gate/up products never reach DRAM.
    Zero padding of M, K, N to tiles contributes nothing (silu(0) * 0 = 0 in the dropped padding).
    weight_dtype: device format of W1 / W3 (default: dtype), e.g. bfloat8_b weights with bfloat16 activations."""
    m, k, n = int(m), int(k), int(n)
    weight_dtype = weight_dtype or dtype
    if min(m, k, n) < 1:
        raise ShapeError(f"op 'swiglu': M={m}, K={k}, N={n} must all be >= 1")
    mt, kt, nt = _host.tiles(m), _host.tiles(k), _host.tiles(n)
    k_blk = _host.largest_divisor_at_most(kt, max_k_block)
    config = _prog.ComputeConfig(math_fidelity="HiFi4", fp32_dest_acc_en=True)
    n_blk = max(1, min(nt, config.dst_tiles // 2, max_n_block or nt))
    split = _host.split_work(mt * nt, grid[0] * grid[1])
    cores = _host.grid_cores(grid, len(split))
    ranges = _host.core_ranges(cores)
    tensors = [_prog.TensorSpec("x", (m, k), dtype), _prog.TensorSpec("w1", (k, n), weight_dtype),
               _prog.TensorSpec("w3", (k, n), weight_dtype), _prog.TensorSpec("out", (m, n), out_dtype, "output")]
    cbs = [_prog.CBSpec(index=0, data_format=dtype, num_pages=2 * k_blk, core_ranges=ranges)]
    cbs += [_prog.CBSpec(index=i, data_format=weight_dtype, num_pages=2 * k_blk * n_blk, core_ranges=ranges) for i in (1, 2)]
    cbs.append(_prog.CBSpec(index=16, data_format=out_dtype, num_pages=2, core_ranges=ranges))
    addr, cta = _prog.BufferAddress, _prog.TensorAccessorCTA
    reader_rt, compute_rt, writer_rt = {}, {}, {}
    for core, (start, count) in zip(cores, split):
        reader_rt[core] = (addr("x"), addr("w1"), addr("w3"), kt, nt, start, count, k_blk, n_blk)
        compute_rt[core] = (kt, nt, start, count, k_blk, n_blk)
        writer_rt[core] = (addr("out"), start, count)
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

    def error_bounds(self, x64, attrs, refs, backend):
        from tilegraph.runtime.fuzz import ACCUM_UNIT, MVMUL_ALIGN, OUT_ROUNDING

        rnd = OUT_ROUNDING[backend]
        x, w1, w3 = x64
        k = x.shape[-1]
        a, b = x @ w1, x @ w3
        unit = k * ACCUM_UNIT + (MVMUL_ALIGN if backend != "numpy" else 0.0)
        ea, eb = unit * (np.abs(x) @ np.abs(w1)), unit * (np.abs(x) @ np.abs(w3))
        # d(silu(a) b) <= |silu'(a)| |b| ea + |silu(a)| eb with |silu'| <= 1.1 and |silu(a)| <= |a|.
        return [rnd * np.abs(refs[0]) + 1.1 * np.abs(b) * ea + np.abs(a) * eb + 1e-30]
