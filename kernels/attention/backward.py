"""Device side of attention_bwd: the program description of the kernels reader_bwd / compute_bwd / writer_bwd.cpp
in this folder, the host layout of its inputs and outputs, and its fuzz cases and error bounds.

The op (ops/attention.py AttentionBwd): inputs (q, k, v, o, lse, do) with q, o, do [B, S, heads*D], k, v
[B, S, kv_heads*D], lse [B, heads, S] (the forward's outputs o and lse), attrs {heads, kv_heads, causal, scale,
window}; outputs (dq, dk, dv) in the layouts of q, k, v. How the work is split is in kernels/attention/README.md.
"""

from __future__ import annotations

import math

import numpy as np
from tilegraph.kernels import description as _prog
from tilegraph.kernels import host as _host
from tilegraph.kernels.attention.program import (
    case_knobs,
    check_head_dim,
    check_interm,
    fit_chunks,
    head_dim_refusal,
)
from tilegraph.kernels.registry import DeviceOptions, KernelOp, register_kernel_op

from tilegraph.errors import ShapeError

ATTENTION_BWD_L1_BUDGET = 1200 * 1024  # CB bytes per core we allow before P / dS fall back to bfloat16
NUM_CONSTS = 12  # tiles of the consts tensor (attention_bwd_common.h CONST_*)


def _chunk_tiles(requested: int, seq_tiles: int, what: str) -> int:
    if requested < 32 or requested % 32 or (requested // 32) & (requested // 32 - 1):
        raise ShapeError(f"op 'attention_bwd': {what}={requested} must be a power-of-two multiple of 32 (32, 64, ...)")
    cover = 1  # no chunk longer than the padded sequence: the next power of two covering it
    while cover < seq_tiles:
        cover *= 2
    return min(requested // 32, cover)


def _bwd_cbs(ranges, qc, kc, dh, dtype, out_dtype, interm):
    """CBs at the indices of attention_bwd_common.h. Streamed inputs and the outputs are double-buffered, so the
    reader and the writer overlap the compute kernel; CB 3 holds the consts tiles the masks are picked from, read
    once per run."""
    q_tiles, kv_tiles, s_tiles = qc * dh, kc * dh, qc * kc

    def cb(index, fmt, pages):
        return _prog.CBSpec(index=index, data_format=fmt, num_pages=pages, core_ranges=ranges)

    return [cb(0, dtype, 2 * q_tiles), cb(1, dtype, 2 * kv_tiles), cb(2, dtype, 2 * kv_tiles),
            cb(3, "bfloat16", NUM_CONSTS), cb(4, dtype, 2 * q_tiles), cb(5, dtype, 2 * q_tiles),
            cb(6, "float32", 2 * qc), cb(7, "bfloat16", 1),
            cb(16, out_dtype, 2 * q_tiles), cb(17, out_dtype, 2 * kv_tiles), cb(18, out_dtype, 2 * kv_tiles),
            cb(24, "float32", q_tiles), cb(25, "float32", qc), cb(26, interm, s_tiles), cb(27, interm, s_tiles),
            cb(28, "float32", 2 * q_tiles), cb(29, "float32", 2 * kv_tiles), cb(30, "float32", 2 * kv_tiles)]


def attention_bwd_program(
    batch: int,
    seq: int,
    heads: int,
    head_dim: int,
    kv_heads: int | None = None,
    dtype: str = "bfloat16",
    *,
    causal: bool = True,
    scale: float | None = None,
    q_chunk: int | None = None,
    k_chunk: int | None = None,
    grid=(8, 8),
    out_dtype: str = "bfloat16",
    interm: str | None = None,
    window: int | None = None,
    math_fidelity: str = "HiFi4",
) -> _prog.ProgramDescription:
    """Attention backward for device tensors q, o, do [B, heads, S_pad, D], k, v [B, kv_heads, S_pad, D], lse in
    two broadcast layouts [B, heads, S_pad, 32] (fp32) -> dq [B, heads, S_pad, D], dk, dv [B, kv_heads, S_pad, D].

    Pass 1 units: (batch, kv head, K chunk), pass 2 units: (batch, head, Q chunk); both numbered zigzag within a
    head and dealt out in even-sized contiguous ranges (low + high chunk pairs balance causal work). Every core
    runs its pass-1 range, then its pass-2 range; no output tile is written by two cores. Chunks default to 128
    rows, or fewer so that a sequence has at least two (causal then skips the block above the diagonal).
    `window` (causal only): sliding-window attention; pass 1 skips the Q chunks past a K chunk's window, pass 2 the
    K chunks left of a Q chunk's window, and edge blocks are masked (bwd_consts).
    Any head_dim that is a multiple of 32: the chunks shrink from the requested ones (the longer first) until the
    CBs fit description.L1_CB_BUDGET. `interm`: the format of P and dS ("float32" / "bfloat16"; None: float32 when
    the CBs stay within ATTENTION_BWD_L1_BUDGET). `math_fidelity`: of every FPU multiply (the five block matmuls,
    dO * O and its row sum); its error terms are in error_bounds below."""
    kv_heads = kv_heads or heads
    if window is not None and (not causal or window < 1):
        raise ShapeError(f"op 'attention_bwd': window={window} needs causal=True and window >= 1 (None for no window)")
    check_head_dim("attention_bwd", head_dim)
    check_interm("attention_bwd", interm)
    if heads % kv_heads:
        raise ShapeError(f"op 'attention_bwd': kv_heads {kv_heads} must divide heads {heads}")
    if min(batch, seq, heads) < 1:
        raise ShapeError(f"op 'attention_bwd': batch={batch}, seq={seq}, heads={heads} must be >= 1")
    s_tiles = _host.tiles(seq)
    default_chunk = 32 * max(1, min(4, 2 ** max(0, (s_tiles // 2).bit_length() - 1)))
    q_chunk = default_chunk if q_chunk is None else q_chunk
    k_chunk = default_chunk if k_chunk is None else k_chunk
    dh = head_dim // 32

    def l1(qc, kc, fmt):
        return sum(c.total_bytes for c in _bwd_cbs((), qc, kc, dh, dtype, out_dtype, fmt))

    budget = _prog.L1_CB_BUDGET
    qc, kc = fit_chunks("attention_bwd", _chunk_tiles(q_chunk, s_tiles, "q_chunk"),
                        _chunk_tiles(k_chunk, s_tiles, "k_chunk"), head_dim,
                        lambda qc, kc: l1(qc, kc, interm or "bfloat16") <= budget, budget)
    pad_t = -(-s_tiles // max(qc, kc)) * max(qc, kc)  # both chunk sizes divide it (powers of two)
    k_full_t = pad_t if seq == pad_t * 32 else seq // 32
    n_cores = grid[0] * grid[1]
    kv_split = _host.split_work(batch * kv_heads * (pad_t // kc), n_cores, granule=2)
    q_split = _host.split_work(batch * heads * (pad_t // qc), n_cores, granule=2)
    used = max(len(kv_split), len(q_split))
    kv_split += [(0, 0)] * (used - len(kv_split))
    q_split += [(0, 0)] * (used - len(q_split))
    cores = _host.grid_cores(grid, used)
    ranges = _host.core_ranges(cores)
    if interm is None:
        interm = "float32" if l1(qc, kc, "float32") <= ATTENTION_BWD_L1_BUDGET else "bfloat16"
    scale = (1.0 / math.sqrt(head_dim)) if scale is None else float(scale)

    sp = pad_t * 32
    tensors = [_prog.TensorSpec("q", (batch, heads, sp, head_dim), dtype),
               _prog.TensorSpec("k", (batch, kv_heads, sp, head_dim), dtype),
               _prog.TensorSpec("v", (batch, kv_heads, sp, head_dim), dtype),
               _prog.TensorSpec("do", (batch, heads, sp, head_dim), dtype),
               _prog.TensorSpec("o", (batch, heads, sp, head_dim), dtype),
               _prog.TensorSpec("lse_rows", (batch, heads, sp, 32), "float32"),
               _prog.TensorSpec("lse_cols", (batch, heads, sp, 32), "float32"),
               _prog.TensorSpec("consts", (NUM_CONSTS * 32, 32), "bfloat16"),
               _prog.TensorSpec("dq", (batch, heads, sp, head_dim), out_dtype, "output"),
               _prog.TensorSpec("dk", (batch, kv_heads, sp, head_dim), out_dtype, "output"),
               _prog.TensorSpec("dv", (batch, kv_heads, sp, head_dim), out_dtype, "output")]
    addr, cta = _prog.BufferAddress, _prog.TensorAccessorCTA
    reader_rt, compute_rt, writer_rt = {}, {}, {}
    for core, (kv_start, kv_count), (q_start, q_count) in zip(cores, kv_split, q_split):
        reader_rt[core] = (addr("q"), addr("k"), addr("v"), addr("do"), addr("o"), addr("lse_rows"),
                           addr("lse_cols"), addr("consts"), heads, kv_heads, pad_t, int(causal), k_full_t,
                           kv_start, kv_count, q_start, q_count, qc, kc, dh, window or 0)
        compute_rt[core] = (qc, kc, dh, pad_t, int(causal), k_full_t, kv_start, kv_count, q_start, q_count,
                            _host.f32_bits(scale), heads // kv_heads, window or 0)
        writer_rt[core] = (addr("dq"), addr("dk"), addr("dv"), pad_t, kv_start, kv_count, q_start, q_count,
                           qc, kc, dh)
    kernels = [
        _prog.KernelSpec("reader", "attention/reader_bwd.cpp", ranges,
                         tuple(cta(t) for t in ("q", "k", "v", "do", "o", "lse_rows", "lse_cols", "consts")),
                         {}, reader_rt),
        _prog.KernelSpec("compute", "attention/compute_bwd.cpp", ranges, (), {}, compute_rt),
        _prog.KernelSpec("writer", "attention/writer_bwd.cpp", ranges, (cta("dq"), cta("dk"), cta("dv")), {},
                         writer_rt),
    ]
    desc = _prog.ProgramDescription(
        name="attention_bwd", tensors=tensors, cbs=_bwd_cbs(ranges, qc, kc, dh, dtype, out_dtype, interm),
        kernels=kernels,
        compute_config=_prog.ComputeConfig(
            math_fidelity=math_fidelity, fp32_dest_acc_en=True,
            # lse (6), D (25) and the running dQ/dK/dV (28-30) are copied into DST in fp32; P (26) is also a matmul
            # operand, which must come through SrcA / SrcB, so its copy into DST goes through SrcA (TF32) too
            unpack_to_dest_fp32=(6, 25, 28, 29, 30)),
        grid=tuple(grid))
    desc.validate()
    return desc


def bwd_consts(seq: int, window: int | None = None) -> np.ndarray:
    """The tiles the reader assembles masks from (attention_bwd_common.h CONST_*), plus the all-ones tile. The
    window tiles are the forward's (program.py attention_consts: the two edge tiles and the far tile), here also
    transposed for pass 1's blocks (rows = keys), so both kernels mask exactly the same scores."""
    from tilegraph.kernels.attention.program import attention_consts

    t = np.zeros((NUM_CONSTS, 32, 32), np.float32)
    t[1] = -np.inf
    upper = np.triu(np.ones((32, 32), bool), 1)
    t[2] = np.where(upper, -np.inf, 0.0)  # queries in rows: key (col) > query (row)
    t[3] = np.where(upper.T, -np.inf, 0.0)  # keys in rows: key (row) > query (col)
    t[4][:, seq % 32:] = -np.inf
    t[5][seq % 32:, :] = -np.inf
    t[6] = 1.0
    if window is not None:
        fwd = attention_consts(seq, window).reshape(-1, 32, 32)
        t[7:9] = fwd[5:7]  # edge tiles, delta = window//32 and window//32 + 1 (forward CONST_WINDOW_EDGE)
        t[9:11] = fwd[5:7].transpose(0, 2, 1)
        t[11] = fwd[7]  # forward CONST_WINDOW_FAR
    return t.reshape(NUM_CONSTS * 32, 32)


def attention_bwd_device_inputs(q, k, v, o, lse, do, heads: int, kv_heads: int | None,
                                desc: _prog.ProgramDescription, window: int | None = None) -> dict:
    """Op inputs -> device tensors: heads split and padded to S_pad (zeros: padded rows contribute nothing, see
    README), lse laid out as broadcast tiles in both forms (cols: lse of row r in every column; rows: tile t holds
    lse of query 32t + c in column c of every row)."""
    kv_heads = kv_heads or heads
    b, s, _ = q.shape
    sp = desc.tensor("q").shape[2]

    def split(x, n):
        xh = x.reshape(b, s, n, -1).transpose(0, 2, 1, 3)
        return _host.pad_to(np.ascontiguousarray(xh), (b, n, sp, xh.shape[-1]))

    lse_p = _host.pad_to(np.ascontiguousarray(lse, dtype=np.float32), (b, heads, sp))
    lse_cols = np.repeat(lse_p[..., None], 32, axis=-1)
    lse_rows = np.repeat(lse_p.reshape(b, heads, sp // 32, 1, 32), 32, axis=3).reshape(b, heads, sp, 32)
    return {"q": split(q, heads), "k": split(k, kv_heads), "v": split(v, kv_heads), "do": split(do, heads),
            "o": split(o, heads), "lse_rows": np.ascontiguousarray(lse_rows),
            "lse_cols": np.ascontiguousarray(lse_cols), "consts": bwd_consts(s, window)}


def attention_bwd_device_outputs(outputs: dict, q_shape, k_shape) -> list:
    """Device dq [B, heads, S_pad, D], dk / dv [B, kv_heads, S_pad, D] -> [B, S, heads*D], [B, S, kv_heads*D]."""
    def merge(x, shape):
        b, s, nd = shape
        return np.ascontiguousarray(x[:, :, :s, :].transpose(0, 2, 1, 3).reshape(b, s, nd))

    return [merge(outputs["dq"], q_shape), merge(outputs["dk"], k_shape), merge(outputs["dv"], k_shape)]


# ---------------------------------------------------------------------------------------------------------------
# Fuzz cases and error bounds (the KernelOp methods of kernels/registry.py; runtime/fuzz.py calls them)
# ---------------------------------------------------------------------------------------------------------------
LSE_INPUT = 4  # index of lse among the inputs: a float32 device tensor whatever the activations' format


@register_kernel_op
class AttentionBwdKernel(KernelOp):
    """attention_bwd as a kernel op (kernels/registry.py): inputs (q, k, v, o, lse, do), outputs (dq, dk, dv)."""

    name = "attention_bwd"

    def refuses(self, attrs, input_shapes=None):
        if attrs.get("alibi"):
            return "alibi=True: the backward kernels add no position bias to the scores"
        if attrs.get("dropout"):
            return f"dropout={attrs['dropout']:g}: the backward kernels draw no dropout mask over the probabilities"
        return head_dim_refusal(attrs, input_shapes)

    def program(self, inputs, attrs, opts):
        if (why := self.refuses(attrs)) is not None:
            raise ShapeError(f"op 'attention_bwd': {why}; run this step on the numpy backend (Target(backend='numpy'))")
        q, k, v, o, lse, do = inputs
        heads = int(attrs["heads"])
        kv_heads = int(attrs.get("kv_heads") or heads)
        b, s, hd = q.shape
        window = attrs.get("window")
        desc = attention_bwd_program(b, s, heads, hd // heads, kv_heads, opts.dtype,
                                     causal=bool(attrs.get("causal", True)), scale=attrs.get("scale"),
                                     grid=opts.grid, window=window, **dict(opts.knobs))
        return desc, attention_bwd_device_inputs(q, k, v, o, lse, do, heads, kv_heads, desc, window)

    def unpack(self, outputs, inputs, attrs):
        return attention_bwd_device_outputs(dict(outputs), inputs[0].shape, inputs[1].shape)

    def input_formats(self, dtype, count, knobs):
        fmts = [dtype] * count
        fmts[LSE_INPUT] = "float32"
        return fmts

    def case_strategy(self, common, small):
        from hypothesis import strategies as st
        from tilegraph.kernels.attention.program import attention_case_fields

        # sliding window, drawn for causal cases only (the kernels take none without causal): below, at and not a
        # multiple of the 32-row tile, across chunk sizes, and longer than any drawn sequence (160), which is plain
        # causal through the window code path
        windows = st.sampled_from([None, None, 1, 7, 31, 32, 45, 64, 100, 200])
        return st.fixed_dictionaries(attention_case_fields(common, small)).flatmap(
            lambda case: (windows if case["causal"] else st.none()).map(lambda w: {**case, "window": w}))

    def make_inputs(self, case, rng, randn, grid):
        """(q, k, v, o, lse, do) with o and lse the float64 forward of q, k, v (rounded to float32), do random."""
        from tilegraph.ops.attention import attention_reference

        b, s, d = case["batch"], case["seq"], case["head_dim"]
        hkv = case["kv_heads"]
        h = hkv * case["group"]
        q, k, v = randn(b, s, h * d), randn(b, s, hkv * d), randn(b, s, hkv * d)
        window = case.get("window") if case["causal"] else None
        attrs = {"heads": h, "kv_heads": hkv, "causal": case["causal"], "scale": case["softmax_scale"],
                 "window": window}
        o, lse = attention_reference(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64), h, hkv,
                                     case["causal"], case["softmax_scale"], window=window)
        do = randn(b, s, h * d)
        return ([q, k, v, o.astype(np.float32), lse.astype(np.float32), do], attrs,
                DeviceOptions(case["dtype"], grid, case_knobs(case)))

    def error_bounds(self, x64, attrs, refs, backend, opts=None):
        return error_bounds(x64, attrs, refs, backend, opts)


def error_bounds(x64, attrs, refs, backend: str, opts: DeviceOptions | None = None):
    """Per-element bounds on the dq, dk, dv errors, from the arithmetic compute_bwd.cpp has the hardware do (the
    units are runtime/fuzz.py's: ACCUM_UNIT per fp32 DST term, SRC_TF32 per fp32 operand through SrcA / SrcB,
    MVMUL_ALIGN per matrix-engine product relative to the sum of |terms|, OUT_ROUNDING for the bf16 packer):

    - S = scale * q.k: exact bf16 products (HiFi4), matrix engine then fp32 DST: (MVMUL_ALIGN + d ACCUM) * scale *
      sum|q||k|; the scale multiply, mask add and lse subtraction are fp32 SFPU ops in DST (one rounding each of a
      value <= |S| + |lse|) and exp is fp32-accurate: P = exp(S - lse) errs relatively by eP = that + ACCUM *
      (|S| + |lse| + 1), taken per query row (its maximum);
    - D = rowsum(dO * O): exact products (ELWMUL of bf16 at HiFi4) packed fp32, then summed by a matmul with an
      all-ones tile, which reads them as TF32: eD = (SRC_TF32 + MVMUL_ALIGN + d ACCUM) * sum|dO * O|;
    - dP = dO . v: eDP = (MVMUL_ALIGN + d ACCUM) * |dO| . |v|;
    - dS' = scale * P * (dP - D): P is re-read from its fp32 CB through SrcA (TF32, as it also feeds a matmul and
      so cannot be unpacked to DST), the sub / mul / scale are fp32 SFPU ops (counted as 4 ACCUM):
      eS = scale * P * (eDP + eD + |dP - D| * (eP + SRC_TF32 + 4 ACCUM));
    - dQ = dS' K, dK = dS'^T Q, dV = P^T dO: dS' / P enter the matrix engine as TF32 (SRC_TF32), products align
      (MVMUL_ALIGN), the running sums stay fp32 (reloaded into DST in fp32, unpack-to-dest) over n = group * S
      terms: per element sum_j (eS_ij + (SRC_TF32 + MVMUL_ALIGN + n ACCUM) |dS'_ij|) |K_j| (dK likewise with Q,
      dV with P, eP and dO);
    - the outputs are packed to bfloat16: OUT_ROUNDING * |ref|;
    - math fidelity (runtime/fuzz.py fidelity_error, zero at HiFi4), per product with the operand in SrcB (matmul
      in0, mul_tiles in1): S with Q (pass 2) or K (pass 1), dP with dO or V, dO * O with O, D's column-form row sum
      with the fp32 products (pass 2), dQ / dK / dV with dS' / P; each adds its relative error to the term above;
    - P and dS' stored in bfloat16 (`interm`): rounded by the packer (OUT_ROUNDING, 2x half an ulp) instead of
      truncated to TF32 on their way into the FPU.
    The numpy backend (float32 CPU kernels, kernels/cpu/attention.cpp) is held to the same form without the
    hardware terms (SRC_TF32 = MVMUL_ALIGN = 0) and its float32 OUT_ROUNDING."""
    from tilegraph.ops.attention import _probabilities, _split_heads, resolved_scale, visible_mask
    from tilegraph.runtime.fuzz import ACCUM_UNIT, MVMUL_ALIGN, OUT_ROUNDING, SRC_TF32, fidelity_error

    q, k, v, o, lse, do = x64
    heads = int(attrs["heads"])
    kv_heads = int(attrs.get("kv_heads") or heads)
    group = heads // kv_heads
    b, s, hd = q.shape
    d = hd // heads
    sc = resolved_scale(attrs, d)
    causal = bool(attrs.get("causal", True))
    window = attrs.get("window")
    hw = backend != "numpy"
    tf32, align, acc = (SRC_TF32 if hw else 0.0), (MVMUL_ALIGN if hw else 0.0), ACCUM_UNIT
    opts = opts or DeviceOptions()
    fidelity, interm = "HiFi4", "float32"
    if hw:
        desc = attention_bwd_program(b, s, heads, d, kv_heads, opts.dtype, causal=causal, scale=attrs.get("scale"),
                                     window=window, **dict(opts.knobs))
        fidelity = desc.compute_config.math_fidelity
        interm = {c.index: c.data_format for c in desc.cbs}[26]
    stored = (OUT_ROUNDING["emu"] if interm == "bfloat16" else tf32) if hw else 0.0
    f_in = fidelity_error(opts.dtype, opts.dtype, fidelity)  # an input (q, k, v, do, o) in SrcB
    f_sum = fidelity_error("bfloat16", "float32", fidelity)  # D's fp32 products in SrcB, the all-ones tile in SrcA
    f_acc = fidelity_error(opts.dtype, interm, fidelity)  # dS' / P in SrcB
    qh, oh, doh = _split_heads(q, heads), _split_heads(o, heads), _split_heads(do, heads)
    kh = np.repeat(_split_heads(k, kv_heads), group, axis=1)
    vh = np.repeat(_split_heads(v, kv_heads), group, axis=1)
    allowed = visible_mask(s, causal, window)
    p = _probabilities(qh, kh, lse, sc, causal, window)  # [B, H, S, S]
    scores = np.where(allowed, sc * qh @ kh.transpose(0, 1, 3, 2), 0.0)
    sabs = np.where(allowed, sc * np.abs(qh) @ np.abs(kh).transpose(0, 1, 3, 2), 0.0)
    e_p = ((align + f_in + d * acc) * sabs
           + acc * (np.abs(scores) + np.abs(lse)[..., None] + 1)).max(-1, keepdims=True)
    dp = doh @ vh.transpose(0, 1, 3, 2)
    e_dp = (align + f_in + d * acc) * (np.abs(doh) @ np.abs(vh).transpose(0, 1, 3, 2))
    dsum = (doh * oh).sum(-1, keepdims=True)
    e_d = (tf32 + align + f_in + f_sum + d * acc) * np.abs(doh * oh).sum(-1, keepdims=True)
    ds = sc * p * (dp - dsum)
    e_ds = sc * p * (e_dp + e_d + np.abs(dp - dsum) * (e_p + stored + 4 * acc))
    mm = stored + f_acc + align + group * s * acc
    e_dq = (e_ds + mm * np.abs(ds)) @ np.abs(kh)
    e_dk = (e_ds + mm * np.abs(ds)).transpose(0, 1, 3, 2) @ np.abs(qh)
    e_dv = (p * (e_p + mm)).transpose(0, 1, 3, 2) @ np.abs(doh)

    def merge(x):
        return x.transpose(0, 2, 1, 3).reshape(b, s, -1)

    def fold(x):  # sum over the query heads of each kv head, as dK / dV are
        return merge(x.reshape(b, kv_heads, group, s, d).sum(axis=2))

    rnd = OUT_ROUNDING[backend]
    return [rnd * np.abs(refs[0]) + merge(e_dq) + 1e-30,
            rnd * np.abs(refs[1]) + fold(e_dk) + 1e-30,
            rnd * np.abs(refs[2]) + fold(e_dv) + 1e-30]


def describe(batch=1, seq=2048, heads=8, head_dim=64, kv_heads=None, grid=(8, 8), **knobs) -> str:
    """One line per fact of the descriptor at a shape: L1 per core (the CBs) and the work of each pass."""
    desc = attention_bwd_program(batch, seq, heads, head_dim, kv_heads, grid=grid, **knobs)
    l1 = desc.l1_bytes_per_core()
    interm = {c.index: c.data_format for c in desc.cbs}[26]
    return (f"attention_bwd B{batch} H{heads} S{seq} D{head_dim} kv_heads {kv_heads or heads} on {grid[0]}x{grid[1]}: "
            f"{len(l1)} cores, L1 (CBs) per core max {max(l1.values()):,} B of {_prog.L1_BYTES_PER_CORE:,} B, "
            f"P / dS in {interm}")
