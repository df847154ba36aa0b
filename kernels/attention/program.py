"""Device side of the attention op: its tt-metal program description (kernels in this folder).

Moved from the end of ops/attention.py.
"""

from __future__ import annotations

import numpy as np
from tilegraph.kernels import description as _prog
from tilegraph.kernels import host as _host
from tilegraph.kernels.registry import DeviceOptions, KernelOp, register_kernel_op
from tilegraph.ops import get_op
from tilegraph.ops.attention import resolved_scale, visible_mask

from tilegraph.errors import DeviceError, ShapeError

INTERMEDIATE_FORMATS = ("float32", "bfloat16")


def check_head_dim(op: str, head_dim: int) -> None:
    """The kernels hold a head in whole tiles: any multiple of 32 (how many fit L1 is the builder's chunk choice)."""
    if head_dim < 32 or head_dim % 32:
        raise ShapeError(f"op {op!r}: head_dim {head_dim} is not a multiple of 32; the kernels hold a head in whole "
                         f"32-wide tiles (pad the heads, or run the step on the numpy backend)")


def head_dim_refusal(attrs, input_shapes) -> str | None:
    """Why the kernels cannot take the head_dim of q [B, S, heads*D] (the place pass falls back), or None."""
    if not input_shapes:
        return None
    d = int(input_shapes[0][-1]) // int(attrs["heads"])
    if d < 32 or d % 32:
        return f"head_dim {d} is not a multiple of 32: the kernels hold a head in whole 32-wide tiles"
    return None


def fit_chunks(op: str, qc: int, kc: int, head_dim: int, fits, budget: int) -> tuple[int, int]:
    """The largest (Q, K) chunk tiles, from the requested ones down, whose CBs `fits(qc, kc)`: the longer of the two
    is halved first (K on a tie: its CBs are double-buffered). ShapeError naming head_dim, chunks and budget when
    not even 32-row chunks fit."""
    want = (qc, kc)
    while not fits(qc, kc):
        if qc == kc == 1:
            raise ShapeError(f"op {op!r}: head_dim {head_dim} does not fit the {budget} B per-core circular-buffer "
                             f"budget with any chunks (asked q_chunk={32 * want[0]}, k_chunk={32 * want[1]}; "
                             f"even q_chunk=k_chunk=32 is over); use a smaller head_dim")
        if kc >= qc:
            kc //= 2
        else:
            qc //= 2
    return qc, kc


def check_interm(op: str, interm: str | None) -> None:
    if interm is not None and interm not in INTERMEDIATE_FORMATS:
        raise ShapeError(f"op {op!r}: interm={interm!r} must be one of {INTERMEDIATE_FORMATS} (or None: float32 "
                         f"where it fits L1)")


def _chunk_tiles(requested: int, seq_tiles: int, what: str) -> int:
    if requested < 32 or requested % 32 or (requested // 32) & (requested // 32 - 1):
        raise ShapeError(f"op 'attention': {what}={requested} must be a power-of-two multiple of 32 (32, 64, 128, ...)")
    # No point in a chunk longer than the (padded) sequence: shrink to the next power of two covering it.
    cover = 1
    while cover < seq_tiles:
        cover *= 2
    return min(requested // 32, cover)


def _attention_cbs(ranges, qc, kc, dh, dtype, out_dtype, interm, q_buffers=1, mask_buffers=1, out_buffers=1):
    q_tiles, kv_tiles, s_tiles = qc * dh, kc * dh, qc * kc

    def cb(index, fmt, pages):
        return _prog.CBSpec(index=index, data_format=fmt, num_pages=pages, core_ranges=ranges)

    return [cb(0, dtype, q_buffers * q_tiles), cb(1, dtype, 2 * kv_tiles), cb(2, dtype, 2 * kv_tiles),
            cb(3, "bfloat16", mask_buffers * s_tiles), cb(4, "bfloat16", 1), cb(5, "bfloat16", ATTENTION_CONST_TILES), cb(16, out_dtype, out_buffers * q_tiles), cb(17, "float32", out_buffers * qc),
            cb(24, interm, s_tiles), cb(25, interm, s_tiles), cb(26, "float32", qc), cb(27, "float32", 2 * qc),
            cb(28, interm, 2 * q_tiles), cb(29, "float32", qc), cb(30, "float32", qc), cb(31, "float32", qc)]


def attention_program(
    batch: int,
    seq: int,
    heads: int,
    head_dim: int,
    kv_heads: int | None = None,
    dtype: str = "bfloat16",
    *,
    causal: bool = True,
    scale: float | None = None,
    q_chunk: int = 128,
    k_chunk: int = 128,
    grid=(8, 8),
    out_dtype: str = "bfloat16",
    interm: str | None = None,
    window: int | None = None,
    math_fidelity: str = "HiFi2",
) -> _prog.ProgramDescription:
    """Flash attention forward for q [B, heads, S, D], k/v [B, kv_heads, S, D] (device layout, heads split).

    S is padded to a multiple of the larger chunk; padded keys are masked (-inf) and padded query rows dropped.
    Work unit = one Q chunk of one (batch, head), numbered zigzag per head (0, n-1, 1, n-2, ...); each core takes
    an even-sized contiguous range, i.e. low + high chunk pairs, which balances causal work. Intermediates are
    fp32 unless that would not fit the L1 budget (then bf16, as tt-metal's own sdpa); `interm` chooses them
    ("float32" / "bfloat16"; error bounds for both in AttentionKernel.error_bounds). Any head_dim that is a
    multiple of 32: the chunks shrink from the requested ones (the longer first) until the CBs fit
    description.L1_CB_BUDGET. `window` (causal only): sliding-window attention; K chunks wholly left of a Q chunk's
    window are not read, edge blocks are masked. `math_fidelity`: of every FPU multiply (Q K^T, P V, the row sums,
    the alpha and 1/l rescales); its error terms are in AttentionKernel.error_bounds. HiFi2 by default, as ttnn's
    scaled_dot_product_attention (its default compute config is HiFi2 for the same products): within its derived
    bound in the fuzz, at half HiFi4's matrix-engine time."""
    kv_heads = kv_heads or heads
    if window is not None and (not causal or window < 1):
        raise ShapeError(f"op 'attention': window={window} needs causal=True and window >= 1 (None for no window)")
    check_head_dim("attention", head_dim)
    check_interm("attention", interm)
    if heads % kv_heads:
        raise ShapeError(f"op 'attention': kv_heads {kv_heads} must divide heads {heads}")
    if min(batch, seq, heads) < 1:
        raise ShapeError(f"op 'attention': batch={batch}, seq={seq}, heads={heads} must be >= 1")
    s_tiles = _host.tiles(seq)
    dh = head_dim // 32

    def l1(qc, kc, fmt, q_buffers=1, mask_buffers=1, out_buffers=1):
        return sum(c.total_bytes for c in _attention_cbs((), qc, kc, dh, dtype, out_dtype, fmt, q_buffers,
                                                         mask_buffers, out_buffers))

    budget = _prog.L1_CB_BUDGET
    qc, kc = fit_chunks("attention", _chunk_tiles(q_chunk, s_tiles, "q_chunk"), _chunk_tiles(k_chunk, s_tiles, "k_chunk"),
                        head_dim, lambda qc, kc: l1(qc, kc, interm or "bfloat16") <= budget, budget)
    if interm is None:
        interm = "float32" if l1(qc, kc, "float32") <= budget else "bfloat16"
    pad_t = -(-s_tiles // max(qc, kc)) * max(qc, kc)  # both chunk sizes divide it (powers of two)
    # Key tiles free of padding: the first partially/fully padded key tile gets the KEY_PAD mask, later ones -inf.
    k_full_t = pad_t if seq == pad_t * 32 else seq // 32
    units = batch * heads * (pad_t // qc)
    split = _host.split_work(units, grid[0] * grid[1], granule=2)
    cores = _host.grid_cores(grid, len(split))
    ranges = _host.core_ranges(cores)
    # Double-buffer, as far as L1 allows: the mask (CB 3: the reader assembles the next block's mask while this one
    # is computed), the output and lse (CBs 16, 17: the writer drains a chunk while the next is computed), then Q
    # (the reader fetches the next chunk while this one is computed).
    mask_buffers = 2 if l1(qc, kc, interm, 1, 2) <= budget else 1
    out_buffers = 2 if l1(qc, kc, interm, 1, mask_buffers, 2) <= budget else 1
    q_buffers = 2 if l1(qc, kc, interm, 2, mask_buffers, out_buffers) <= budget else 1
    scale = resolved_scale({"scale": scale}, head_dim)
    scale_bits = _host.f32_bits(scale)
    # exp_tile's scale operand is bf16: fold the scale into exp only when it is a bf16 value (compute.cpp).
    scale_fold = int((scale_bits & 0xFFFF) == 0)

    sp = pad_t * 32
    tensors = [_prog.TensorSpec("q", (batch, heads, sp, head_dim), dtype),
               _prog.TensorSpec("k", (batch, kv_heads, sp, head_dim), dtype),
               _prog.TensorSpec("v", (batch, kv_heads, sp, head_dim), dtype),
               _prog.TensorSpec("consts", (ATTENTION_CONST_TILES * 32, 32), "bfloat16"),
               _prog.TensorSpec("out", (batch, heads, sp, head_dim), out_dtype, "output"),
               _prog.TensorSpec("lse", (batch, heads, sp, 32), "float32", "output")]
    addr, cta = _prog.BufferAddress, _prog.TensorAccessorCTA
    reader_rt, compute_rt, writer_rt = {}, {}, {}
    for core, (start, count) in zip(cores, split):
        reader_rt[core] = (addr("q"), addr("k"), addr("v"), addr("consts"), heads, kv_heads, pad_t, pad_t,
                           int(causal), k_full_t, start, count, qc, kc, dh, window or 0)
        compute_rt[core] = (qc, kc, dh, pad_t, pad_t, int(causal), k_full_t, start, count, scale_bits,
                            window or 0, scale_fold)
        writer_rt[core] = (addr("out"), addr("lse"), pad_t, start, count, qc, dh)
    kernels = [
        _prog.KernelSpec("reader", "attention/reader.cpp", ranges,
                         (cta("q"), cta("k"), cta("v"), cta("consts")), {}, reader_rt),
        _prog.KernelSpec("compute", "attention/compute.cpp", ranges, (), {}, compute_rt),
        _prog.KernelSpec("writer", "attention/writer.cpp", ranges, (cta("out"), cta("lse")), {}, writer_rt),
    ]
    desc = _prog.ProgramDescription(
        name="attention", tensors=tensors,
        cbs=_attention_cbs(ranges, qc, kc, dh, dtype, out_dtype, interm, q_buffers, mask_buffers, out_buffers),
        kernels=kernels,
        compute_config=_prog.ComputeConfig(
            math_fidelity=math_fidelity, fp32_dest_acc_en=True,
            # The running sum (27) is an fp32 partial reloaded per K chunk through copy_tile only: unpacked straight
            # to DST it keeps all 23 mantissa bits instead of TF32's 10. The running max (26, 31) and output (28) are
            # also fp32 partials, but sub/mul_tiles_bcast_cols read them through SrcA, and a CB unpacked to DST
            # cannot feed a source register (ttsim: undefined), so they stay on the SrcA path (TF32).
            unpack_to_dest_fp32=(27,)),
        grid=tuple(grid))
    return desc


ATTENTION_CONST_TILES = 8
WINDOW_MASKED = -1e30  # finite: see reader.cpp (a row may see no key in its first K chunk)


def attention_consts(seq: int, window: int | None = None) -> np.ndarray:
    """The constant tiles the reader assembles masks from: reduce scaler, zero, -inf, causal diagonal
    (-inf above the diagonal), key padding (-inf in columns at or past seq % 32), and for a sliding window the two
    edge tiles (query tile minus key tile = window//32 and window//32 + 1; the first also causal when it is the
    diagonal) and the tile wholly left of the window (reader.cpp causal_mask_tile)."""
    t = np.zeros((ATTENTION_CONST_TILES, 32, 32), np.float32)
    t[0] = _host.reduce_scaler_tile(1.0)
    t[2] = -np.inf
    t[3] = np.where(np.triu(np.ones((32, 32), bool), 1), -np.inf, 0.0)
    t[4][:, seq % 32:] = -np.inf
    if window is not None:
        row, col = np.arange(32)[:, None], np.arange(32)[None, :]
        for e in range(2):
            delta = window // 32 + e
            visible = (col - row > 32 * delta - window) & ((col <= row) if delta == 0 else True)
            t[5 + e] = np.where(visible, 0.0, WINDOW_MASKED)
        t[7] = WINDOW_MASKED
    return t.reshape(ATTENTION_CONST_TILES * 32, 32)


def attention_device_inputs(q, k, v, heads: int, kv_heads: int | None, desc: _prog.ProgramDescription,
                            window: int | None = None) -> dict:
    """[B, S, heads*D] activations -> device tensors [B, heads, S_pad, D] (+ consts)."""
    kv_heads = kv_heads or heads
    b, s, _ = q.shape
    sp = desc.tensor("q").shape[2]

    def split(x, n):
        xh = x.reshape(b, s, n, -1).transpose(0, 2, 1, 3)
        return _host.pad_to(np.ascontiguousarray(xh), (b, n, sp, xh.shape[-1]))

    return {"q": split(q, heads), "k": split(k, kv_heads), "v": split(v, kv_heads), "consts": attention_consts(s, window)}


def attention_device_outputs(outputs: dict, q_shape, heads: int) -> list:
    """Device out [B, heads, S_pad, D] and lse [B, heads, S_pad, 32] -> (o [B, S, heads*D], lse [B, heads, S])."""
    b, s, hd = q_shape
    o = outputs["out"][:, :, :s, :].transpose(0, 2, 1, 3).reshape(b, s, hd)
    return [np.ascontiguousarray(o), np.ascontiguousarray(outputs["lse"][:, :, :s, 0])]


def attention_case_fields(common: dict, small: bool) -> dict:
    """The fuzz-case fields attention and attention_bwd share (shapes, GQA, causal, chunks, scale), as strategies."""
    from hypothesis import strategies as st

    return {
        **common,
        "scale": st.sampled_from([0.3, 1.0, 3.0]),
        "batch": st.integers(1, 1 if small else 2), "seq": st.integers(1, 100 if small else 160),
        "kv_heads": st.integers(1, 2),
        # any multiple of 32 up to 256 (8 tiles: the emulated time per case grows with it)
        "group": st.integers(1, 2), "head_dim": st.integers(1, 8).map(lambda t: 32 * t), "causal": st.booleans(),
        "q_chunk": st.sampled_from([32, 64, 128]), "k_chunk": st.sampled_from([32, 64, 128]),
        "softmax_scale": st.sampled_from([None, 0.05, 0.5]),
        "math_fidelity": st.sampled_from(["HiFi4", "HiFi2"]), "interm": st.sampled_from([None, "bfloat16"]),
    }


def case_knobs(case: dict) -> dict:
    """The builder knobs of an attention / attention_bwd fuzz case (fidelity and intermediates: cases saved before
    those fields existed ran at the builder's defaults)."""
    knobs = {"q_chunk": case["q_chunk"], "k_chunk": case["k_chunk"]}
    for name in ("math_fidelity", "interm"):
        if case.get(name) is not None:
            knobs[name] = case[name]
    return knobs


@register_kernel_op
class AttentionKernel(KernelOp):
    name = "attention"

    def refuses(self, attrs, input_shapes=None):
        if attrs.get("alibi"):
            return "alibi=True: kernels/attention adds no position bias to the scores"
        if attrs.get("dropout"):
            return f"dropout={attrs['dropout']:g}: kernels/attention draws no dropout mask over the probabilities"
        return head_dim_refusal(attrs, input_shapes)

    def program(self, inputs, attrs, opts):
        if (why := self.refuses(attrs)) is not None:
            raise DeviceError(f"op 'attention': {why}; run ALiBi specs on the numpy backend, or use positions: rope")
        knobs = dict(opts.knobs)
        q, k, v = inputs
        heads = int(attrs["heads"])
        kv_heads = int(attrs["kv_heads"] or heads)
        b, s, hd = q.shape
        desc = attention_program(b, s, heads, hd // heads, kv_heads, opts.dtype,
                                 causal=bool(attrs["causal"]), scale=attrs["scale"], window=attrs["window"],
                                 grid=opts.grid, **knobs)
        return desc, attention_device_inputs(q, k, v, heads, kv_heads, desc, attrs["window"])

    def unpack(self, outputs, inputs, attrs):
        return attention_device_outputs(dict(outputs), inputs[0].shape, int(attrs["heads"]))

    def case_strategy(self, common, small):
        from hypothesis import strategies as st

        return st.fixed_dictionaries({
            **attention_case_fields(common, small),
            # sliding window (used when causal): below, at and across tile and chunk sizes
            "window": st.sampled_from([None, None, 1, 7, 32, 45, 64, 100]),
        })

    def make_inputs(self, case, rng, randn, grid):
        b, sq, d = case["batch"], case["seq"], case["head_dim"]
        hkv = case["kv_heads"]
        h = hkv * case["group"]
        q, k, v = randn(b, sq, h * d), randn(b, sq, hkv * d), randn(b, sq, hkv * d)
        attrs = {"heads": h, "kv_heads": hkv, "causal": case["causal"], "scale": case["softmax_scale"],
                 "window": case.get("window") if case["causal"] else None}
        return [q, k, v], attrs, DeviceOptions(case["dtype"], grid, case_knobs(case))

    def error_bounds(self, x64, attrs, refs, backend, opts=None):
        from tilegraph.runtime.fuzz import ACCUM_UNIT, MVMUL_ALIGN, OUT_ROUNDING, SRC_TF32, fidelity_error

        rnd = OUT_ROUNDING[backend]
        # attention: o = P V / l; its error is relative to P |V| / l (cancellation in P V), plus the scores' errors,
        # which perturb each P entry of a query row relatively by up to twice that row's largest score error.
        q, k, v = x64
        heads = int(attrs["heads"])
        kv_heads = int(attrs.get("kv_heads") or heads)
        o_abs, _ = get_op("attention").reference([q, k, np.abs(v)], attrs)
        b, s, hd = q.shape
        d = hd // heads
        sc = resolved_scale(attrs, d)
        qh = q.reshape(b, s, heads, d).transpose(0, 2, 1, 3)
        kh = np.repeat(k.reshape(b, s, kv_heads, d).transpose(0, 2, 1, 3), heads // kv_heads, axis=1)
        allowed = visible_mask(s, attrs.get("causal", True), attrs.get("window"))
        # Per query row: the largest |score| (TF32 rounding of S in the row max / subtract is relative to it) and
        # the largest sum of |q_d k_d| (the fp32 accumulation error of one score is d * ACCUM_UNIT times that).
        smax = np.where(allowed, np.abs(sc * qh @ kh.transpose(0, 1, 3, 2)), 0).max(-1)  # [B, H, S]
        sabs = np.where(allowed, sc * np.abs(qh) @ np.abs(kh).transpose(0, 1, 3, 2), 0).max(-1)
        hw = backend != "numpy"
        tf32, align = (SRC_TF32, MVMUL_ALIGN) if hw else (0.0, 0.0)
        # What the program ran with: fidelity, intermediates' format, and the K chunks a row visits at most (without
        # opts: the builder's defaults, and one chunk per key tile, the most there can be).
        opts = opts or DeviceOptions()
        fidelity, interm, nk = "HiFi4", "float32", _host.tiles(s)
        if hw:
            desc = attention_program(b, s, heads, d, kv_heads, opts.dtype, causal=attrs.get("causal", True),
                                     scale=attrs.get("scale"), window=attrs.get("window"), **dict(opts.knobs))
            fidelity = desc.compute_config.math_fidelity
            interm = {c.index: c.data_format for c in desc.cbs}[24]
            _, kc, _, sq_t = next(iter(desc.kernels[1].runtime_args.values()))[:4]
            nk = sq_t // kc if opts.knobs else nk
        # An intermediate (S, P, running O) stored in bf16 is rounded by the packer (half an ulp, 2^-8, allowed 2x:
        # OUT_ROUNDING), then reaches the FPU exactly; in fp32 it is exact in L1 and truncated to TF32 on the way.
        stored = (OUT_ROUNDING["emu"] if interm == "bfloat16" else tf32) if hw else 0.0
        # Math fidelity (zero at HiFi4): Q K^T with Q in SrcB (matmul in0), P V and the row sum of P with P in SrcB,
        # alpha * O_old (alpha in SrcB, once per K chunk after the first) and O * (1/l) (1/l in SrcB, fp32).
        f_qk = fidelity_error(opts.dtype, opts.dtype, fidelity)
        f_p = fidelity_error(opts.dtype, interm, fidelity)
        f_rescale = fidelity_error(interm, "float32", fidelity)
        # Scores: the Q K^T dot products (matrix-engine alignment, fidelity, fp32 sum), counted twice (row max,
        # exp). S is stored and then read twice through SrcA (row max, subtract): abs error smax * `stored` each;
        # P once (P V and its row sum read the same P), the running output once per K chunk, l and 1/l (fp32) twice
        # more: relative; P V and the row sum of P align in the matrix engine; fidelity drops bits of P (twice: P V
        # and l), of alpha (nk - 1 rescales) and of 1/l.
        p_err = (2 * (align + f_qk + d * ACCUM_UNIT) * sabs + 2 * smax * stored + (1 + nk) * stored + 2 * tf32
                 + 2 * align + 2 * f_p + (nk - 1) * f_rescale + f_rescale + (s + d) * ACCUM_UNIT)  # [B, H, S]
        p_err_o = p_err.transpose(0, 2, 1).repeat(d, axis=-1).reshape(b, s, hd)  # per output element
        lse = refs[1]
        return [rnd * np.abs(refs[0]) + p_err_o * o_abs + 1e-30,
                2.0**-16 * (1 + np.abs(lse)) + p_err + s * ACCUM_UNIT]


# attention_bwd (kernels in this folder too) registers its KernelOp from its own module.
from tilegraph.kernels.attention import backward as _backward  # noqa: E402, F401
