"""Program builder of the SwiGLU gate backward kernel (kernels/swiglu/{reader,compute,writer}_bwd.cpp).

swiglu_bwd(x[M, K], W1[K, F], W3[K, F], dh[M, F]) -> dx, dW1, dW3 is split into
1. this kernel, swiglu_gate_bwd: (x, W1, W3, dh) -> (da, db), recomputing a = x W1 and b = x W3 in the forward's
   output blocks (x and W tiles read once per K block of a block and reused from L1; the gate and up projections
   never reach DRAM) and applying the gate's derivative per tile in DST: da = dh * b * silu'(a), db = dh * silu(a);
2. three matmuls: dx = da W1^T + db W3^T (reduces over F), dW1 = x^T da and dW3 = x^T db (reduce over M).
Why split rather than one kernel: the three products reduce over different dims than the recompute (K), so one
kernel would either hold a core's [M, F] slice of da / db while every other core needs it (multicast and
semaphores, which tt-metal's tuned matmuls already do well) or recompute a and
b once per consumer (3x the forward's FLOPs). Writing da and db once (2 * M * F bf16) costs far less than either
at training shapes (arithmetic intensity of the matmuls ~ K / 2 flops per byte), and the matmuls run as the
matmul built-in (`ttnn.matmul` with transpose flags on a card, numpy on the host).
"""

from __future__ import annotations

import math

import numpy as np
from tilegraph.kernels import description as _prog
from tilegraph.kernels import host as _host
from tilegraph.kernels.registry import DeviceOptions, KernelOp, register_kernel_op

from tilegraph.errors import ShapeError

SWIGLU_BWD_MAX_K_BLOCK_TILES = 8


def _gate_bwd_cbs(ranges, dtype, weight_dtype, out_dtype, kt, kb, mb, nb, w):
    """The forward's x / W / partial-sum CBs (swiglu_common.h) plus dh (one block row, double-buffered), da / db
    (two tiles: handed over a page at a time) and the last K block's a / b of one subblock (fp32, reloaded exactly)."""
    def cb(index, fmt, pages):
        return _prog.CBSpec(index=index, data_format=fmt, num_pages=pages, core_ranges=ranges)

    cbs = [cb(0, dtype, 2 * mb * kb), cb(1, weight_dtype, 2 * kb * nb), cb(2, weight_dtype, 2 * kb * nb),
           cb(3, dtype, 2 * nb), cb(16, out_dtype, 2), cb(17, out_dtype, 2),
           cb(26, "float32", w), cb(27, "float32", w)]
    if kt > kb:  # partial sums between K blocks
        cbs += [cb(24, "float32", mb * nb), cb(25, "float32", mb * nb)]
    return cbs


def swiglu_gate_bwd_program(m: int, k: int, n: int, dtype: str = "bfloat16", *, grid=(8, 8),
                            out_dtype: str = "bfloat16", weight_dtype: str | None = None,
                            max_k_block: int = SWIGLU_BWD_MAX_K_BLOCK_TILES, block: tuple[int, int] | None = None,
                            math_fidelity: str = "HiFi4") -> _prog.ProgramDescription:
    """da, db [M, N] for x [M, K], W1/W3 [K, N], dh [M, N]; output blocks split over the grid.

    a = x W1 and b = x W3 are recomputed in the forward's mb x nb output blocks (`block`, default: the forward's
    choice for this shape without multicast, swiglu.program._choose_layout, within the L1 budget of these CBs), so x and W tiles are
    read once per K block of a block and reused from L1, and round exactly as in the forward. Zero padding is
    harmless: padded a = b = 0 and padded dh = 0 give da = db = 0 in the dropped padding."""
    from tilegraph.kernels.swiglu.program import _choose_layout

    m, k, n = int(m), int(k), int(n)
    weight_dtype = weight_dtype or dtype
    if min(m, k, n) < 1:
        raise ShapeError(f"op 'swiglu_bwd': M={m}, K={k}, N={n} must all be >= 1")
    mt, kt, nt = _host.tiles(m), _host.tiles(k), _host.tiles(n)
    kb = _host.largest_divisor_at_most(kt, max_k_block)
    reloaded = (24, 25, 26, 27) if kt > kb else (26, 27)
    config = _prog.ComputeConfig(math_fidelity=math_fidelity, fp32_dest_acc_en=True, unpack_to_dest_fp32=reloaded)
    w = max(1, min(nt, config.dst_tiles // 2))

    def cb_bytes(mb, nb):
        return sum(c.total_bytes for c in _gate_bwd_cbs((), dtype, weight_dtype, out_dtype, kt, kb, mb, nb, w))

    # the forward's block choice without multicast (group 1: this kernel's cores each read their own W tiles)
    mb, nb, _ = _choose_layout(mt, nt, kt, kb, tuple(grid), cb_bytes, block=block, group=1)
    blocks_n = -(-nt // nb)
    split = _host.split_work(-(-mt // mb) * blocks_n, grid[0] * grid[1])
    cores = _host.grid_cores(grid, len(split))
    ranges = _host.core_ranges(cores)
    tensors = [_prog.TensorSpec("x", (m, k), dtype), _prog.TensorSpec("w1", (k, n), weight_dtype),
               _prog.TensorSpec("w3", (k, n), weight_dtype), _prog.TensorSpec("dh", (m, n), dtype),
               _prog.TensorSpec("da", (m, n), out_dtype, "output"), _prog.TensorSpec("db", (m, n), out_dtype, "output")]
    cbs = _gate_bwd_cbs(ranges, dtype, weight_dtype, out_dtype, kt, kb, mb, nb, w)
    addr, cta = _prog.BufferAddress, _prog.TensorAccessorCTA
    reader_rt, compute_rt, writer_rt = {}, {}, {}
    for core, (start, count) in zip(cores, split):
        reader_rt[core] = (addr("x"), addr("w1"), addr("w3"), addr("dh"), kt, mt, nt, start, count, kb, mb, nb,
                           blocks_n)
        compute_rt[core] = (kt, mt, nt, start, count, kb, mb, nb, w, blocks_n, _host.f32_bits(1.0))
        writer_rt[core] = (addr("da"), addr("db"), mt, nt, start, count, mb, nb, blocks_n)
    kernels = [
        _prog.KernelSpec("reader", "swiglu/reader_bwd.cpp", ranges,
                         (cta("x"), cta("w1"), cta("w3"), cta("dh")), {}, reader_rt),
        _prog.KernelSpec("compute", "swiglu/compute_bwd.cpp", ranges, (), {}, compute_rt),
        _prog.KernelSpec("writer", "swiglu/writer_bwd.cpp", ranges, (cta("da"), cta("db")), {}, writer_rt),
    ]
    return _prog.ProgramDescription(
        name="swiglu_gate_bwd", tensors=tensors, cbs=cbs, kernels=kernels, compute_config=config, grid=tuple(grid))


def swiglu_bwd_device_inputs(x, w1, w3, dh) -> dict:
    return {"x": x.reshape(-1, x.shape[-1]), "w1": w1, "w3": w3, "dh": dh.reshape(-1, dh.shape[-1])}


def swiglu_bwd_finish(outputs: dict, x, w1, w3) -> list:
    """[dx, dW1, dW3] from the kernel's da, db: the three matmuls of the split, float32 on the host after the
    emulator; on a card they ran on the device (SwiGLUBwdKernel.device_finish) and are cropped here."""
    k, f = w1.shape
    if "dx" in outputs:  # padded device results (tile multiples)
        m = int(np.prod(x.shape[:-1])) if x.ndim > 1 else 1
        dx = np.asarray(outputs["dx"], np.float32).reshape(-1, outputs["dx"].shape[-1])[:m, :k]
        return [dx.reshape(x.shape), np.asarray(outputs["dw1"])[:k, :f], np.asarray(outputs["dw3"])[:k, :f]]
    da = np.asarray(outputs["da"], np.float32)
    db = np.asarray(outputs["db"], np.float32)
    x2 = np.asarray(x, np.float32).reshape(-1, x.shape[-1])
    dx = da @ np.asarray(w1, np.float32).T + db @ np.asarray(w3, np.float32).T
    return [dx.reshape(x.shape), x2.T @ da, x2.T @ db]


def swiglu_bwd_error_bounds(x64, refs, rnd: float, align: float, accum: float, sfpu: float) -> list[np.ndarray]:
    """Per-element |error| bounds of [dx, dW1, dW3] (inputs as the device holds them, float64).

    - a = x W1, b = x W3: bf16 products exact (HiFi4), the matrix engine's lane alignment (align, 2^-8 of
      sum |terms| per face product; 0 on numpy) and fp32 sums of K terms: ea = (align + K accum) (|x| |W1|).
    - da = dh b silu'(a), db = dh silu(a): |silu'| <= 1.1 and |silu''| <= 0.5, so da errs by
      |dh| (1.1 eb + 0.5 |b| ea) and db by 1.1 |dh| ea; the SFPU chain (sigmoid, 1 - s, products; fp32, a few
      roundings) adds sfpu |dh| |b| (s + |silu(a)|) and sfpu |dh| |silu(a)|; da and db are rounded to bf16 (rnd).
    - dx = da W1^T + db W3^T, dW1 = x^T da, dW3 = x^T db (float32 matmuls of the rounded da, db): the da / db
      bounds pushed through |W|^T and |x|^T, plus F (resp. M) accum times the sums of |terms|."""
    x, w1, w3, dh = x64
    x2, dh2 = x.reshape(-1, x.shape[-1]), dh.reshape(-1, dh.shape[-1])
    k, m, f = x2.shape[1], x2.shape[0], w1.shape[1]
    a, b = x2 @ w1, x2 @ w3
    unit = align + k * accum
    ea, eb = unit * (np.abs(x2) @ np.abs(w1)), unit * (np.abs(x2) @ np.abs(w3))
    s = 1.0 / (1.0 + np.exp(-a))
    silu = a * s
    da = dh2 * b * s * (1.0 + a * (1.0 - s))
    db = dh2 * silu
    bda = rnd * np.abs(da) + np.abs(dh2) * (1.1 * eb + 0.5 * np.abs(b) * ea) + sfpu * np.abs(dh2 * b) * (s + np.abs(silu))
    bdb = rnd * np.abs(db) + 1.1 * np.abs(dh2) * ea + sfpu * np.abs(dh2 * silu)
    aw1, aw3, ax = np.abs(w1), np.abs(w3), np.abs(x2)
    dx = bda @ aw1.T + bdb @ aw3.T + f * accum * (np.abs(da) @ aw1.T + np.abs(db) @ aw3.T) + 1e-30
    dw1 = ax.T @ bda + m * accum * (ax.T @ np.abs(da)) + 1e-30
    dw3 = ax.T @ bdb + m * accum * (ax.T @ np.abs(db)) + 1e-30
    return [dx.reshape(x.shape), dw1, dw3]


@register_kernel_op
class SwiGLUBwdKernel(KernelOp):
    """swiglu_bwd(x, w1, w3, dy) -> [dx, dw1, dw3]: the gate-backward kernel (da, db), then the three matmuls: on a
    card ttnn.matmul on the device tensors (device_finish: da and db never leave DRAM), in the emulator float32 on
    the host."""

    name = "swiglu_bwd"

    def program(self, inputs, attrs, opts):
        x, w1, w3, dy = inputs
        m = int(np.prod(x.shape[:-1])) if x.ndim > 1 else 1
        desc = swiglu_gate_bwd_program(m, w1.shape[0], w1.shape[1], opts.dtype, grid=opts.grid, **dict(opts.knobs))
        return desc, swiglu_bwd_device_inputs(x, w1, w3, dy)

    def device_finish(self, ttnn, tensors):
        # fp32 results, as the host's float32 matmuls of the same bf16 da, db give
        def mm(a, b, **transpose):
            return ttnn.matmul(tensors[a], tensors[b], dtype=ttnn.float32, **transpose)

        dx = ttnn.add(mm("da", "w1", transpose_b=True), mm("db", "w3", transpose_b=True))
        return {"dx": dx, "dw1": mm("x", "da", transpose_a=True), "dw3": mm("x", "db", transpose_a=True)}

    def unpack(self, outputs, inputs, attrs):
        x, w1, w3, _ = inputs
        return swiglu_bwd_finish(dict(outputs), x, w1, w3)

    def case_strategy(self, common, small):
        from hypothesis import strategies as st

        return st.fixed_dictionaries({
            **common,
            "m": st.integers(1, 70), "k": st.integers(1, 200), "n": st.integers(1, 70), "max_k_block": st.integers(1, 8),
            "math_fidelity": st.sampled_from(["HiFi4", "HiFi2"]),
        })  # fmt: skip

    def make_inputs(self, case, rng, randn, grid):
        k = case["k"]
        x, dy = randn(case["m"], k), randn(case["m"], case["n"])
        w1 = (rng.standard_normal((k, case["n"])) / math.sqrt(k)).astype(np.float32)
        w3 = (rng.standard_normal((k, case["n"])) / math.sqrt(k)).astype(np.float32)
        knobs = {"max_k_block": case["max_k_block"], "math_fidelity": case.get("math_fidelity", "HiFi4")}
        return [x, w1, w3, dy], {}, DeviceOptions(case["dtype"], grid, knobs)

    def error_bounds(self, x64, attrs, refs, backend, opts=None):
        from tilegraph.kernels.swiglu.program import gate_up_fidelity_error
        from tilegraph.runtime.fuzz import ACCUM_UNIT, MVMUL_ALIGN, OUT_ROUNDING

        # SFPU chain on the device (fp32, a few roundings: 2^-20); numpy's float32 the same order. The recompute's
        # products x W leave out the partial products of the phases the program's fidelity skips (one-sided,
        # relative to |x| |W| like the lane alignment).
        align = 0.0
        if backend != "numpy":
            desc, _ = self.program(x64, attrs, opts or DeviceOptions())
            align = MVMUL_ALIGN + gate_up_fidelity_error(desc)
        return swiglu_bwd_error_bounds(x64, refs, OUT_ROUNDING[backend], align, ACCUM_UNIT, 2.0**-20)
