"""Sliding-window attention backward on the emulator (kernels/attention/*_bwd.cpp, `window` attr): hand-picked
windows against the float64 reference within the bounds of kernels/attention/backward.py, a kernel given no window
caught by the check, the blocks outside the window neither read nor computed (emulator counters against a block
count enumerated here from the reference's visible mask), the mask tiles equal to that mask, the window carried by
the ttnn ProgramDescriptor, and the place pass putting windowed attention_bwd on the kernel. The fuzz of
tests/test_kern_attention_bwd.py draws windows too."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from tilegraph.kernels.attention.backward import NUM_CONSTS, attention_bwd_program, bwd_consts
from tilegraph.kernels.registry import get_kernel_op
from tilegraph.ops.attention import visible_mask
from tilegraph.runtime import fuzz
from tilegraph.runtime.kernel_ops import run_kernel_op

from tilegraph.errors import ShapeError

BASE = {"batch": 1, "kv_heads": 1, "group": 2, "softmax_scale": None, "dtype": "bfloat16", "grid": [2, 2],
        "scale": 1.0, "causal": True, "head_dim": 32}
SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.mark.parametrize("seq, window, q_chunk, k_chunk", [
    (100, 7, 32, 32),    # window inside one tile: the diagonal tile carries both masks
    (160, 45, 64, 32),   # window across a tile edge, Q chunk of two tiles
    (160, 45, 32, 64),   # ... and K chunk of two tiles
    (130, 1, 32, 64),    # each row sees only itself
    (200, 64, 32, 32),   # window a multiple of the tile: the edge tile at delta window/32 + 1 is all masked
    (200, 32, 64, 64),   # window of exactly one tile
    (96, 33, 128, 32),   # one Q chunk covering the whole sequence
    (256, 100, 32, 128),  # pass 1: a long K chunk reached by Q chunks cut at both ends
    (70, 100, 32, 32),   # window longer than the sequence: plain causal through the window path
])
def test_window_cases(seq, window, q_chunk, k_chunk):
    case = {**BASE, "seed": seq + window, "seq": seq, "q_chunk": q_chunk, "k_chunk": k_chunk, "window": window}
    outcome = fuzz.run_case("attention_bwd", case, "emu")
    assert outcome.ok, f"{outcome.worst} (err/bound {outcome.ratio:.3g})"


def test_window_bfp8_gqa_batch2_head_dim_128():
    case = {**BASE, "batch": 2, "kv_heads": 2, "group": 2, "head_dim": 128, "seq": 150, "q_chunk": 64,
            "k_chunk": 32, "window": 50, "softmax_scale": 0.3, "dtype": "bfloat8_b", "seed": 5}
    outcome = fuzz.run_case("attention_bwd", case, "emu")
    assert outcome.ok, f"{outcome.worst} (err/bound {outcome.ratio:.3g})"


def _held(case):
    inputs, attrs, opts = fuzz.make_inputs("attention_bwd", case)
    held = fuzz.device_values(inputs, "attention_bwd", case["dtype"], "emu")
    refs = fuzz.reference("attention_bwd", held, attrs)
    return held, attrs, opts, refs, fuzz.error_bounds("attention_bwd", held, attrs, refs, "emu")


def test_kernel_without_the_window_fails_the_check():
    # The bounds see a window the kernel ignores (dQ, dK and dV all differ), and the windowed kernel meets them.
    held, attrs, opts, refs, bounds = _held({**BASE, "seed": 3, "seq": 128, "q_chunk": 32, "k_chunk": 32,
                                             "window": 16})
    no_window = run_kernel_op("attention_bwd", held, {**attrs, "window": None}, "emu", opts)
    assert not any(np.all(np.abs(g - r) <= b) for g, r, b in zip(no_window, refs, bounds))
    windowed = run_kernel_op("attention_bwd", held, attrs, "emu", opts)
    assert all(np.all(np.abs(g - r) <= b) for g, r, b in zip(windowed, refs, bounds))


def _expected_counts(seq, heads, kv_heads, qc, kc, dh, window, cores):
    """DRAM tiles the readers fetch and matrix-engine tile products the compute kernels do, from the blocks a
    (Q chunk, K chunk) pair must visit: those holding a visible (query, key) pair of the reference's mask.
    qc, kc: chunk rows in tiles; seq a multiple of both."""
    allowed = visible_mask(seq, True, window)
    nq, nk = seq // (32 * qc), seq // (32 * kc)
    blocks = 0
    for a in range(nq):
        for b in range(nk):
            part = allowed[32 * qc * a:32 * qc * (a + 1), 32 * kc * b:32 * kc * (b + 1)]
            blocks += bool(part.any())
    q_tiles, kv_tiles, s_tiles = qc * dh, kc * dh, qc * kc
    # pass 1: K, V per (kv head, K chunk); per block Q, dO, O, lse. pass 2: Q, dO, O, lse per (head, Q chunk); per
    # block K, V. Plus, once per core, the all-ones tile and the NUM_CONSTS tiles the masks are picked from (a
    # masked block reads nothing more).
    reads = (cores * (1 + NUM_CONSTS) + kv_heads * nk * 2 * kv_tiles + heads * nq * (3 * q_tiles + qc)
             + heads * blocks * (3 * q_tiles + qc + 2 * kv_tiles))
    # pass 1 per block: D's row sums (one product per dO * O tile), S^T, dP^T, dK += dS^T Q, dV += P^T dO;
    # pass 2: D once per Q chunk, per block S, dP, dQ += dS K.
    matmuls = heads * (blocks * (q_tiles + 7 * s_tiles * dh) + nq * q_tiles)
    return reads, matmuls, blocks


def test_blocks_outside_the_window_are_neither_read_nor_computed():
    from tilegraph.runtime.emulator import run_program_counted

    seq, heads, kv_heads, d, qc, kc = 256, 2, 1, 32, 1, 2  # chunks in tiles: 32 and 64 rows
    case = {**BASE, "seed": 9, "seq": seq, "q_chunk": 32 * qc, "k_chunk": 32 * kc, "window": 45}
    inputs, attrs, opts = fuzz.make_inputs("attention_bwd", case)
    got = {}
    for window in (None, 45):
        desc, dev = get_kernel_op("attention_bwd").program(inputs, {**attrs, "window": window}, opts)
        _, threads = run_program_counted(desc, dev)
        reads = sum(t.get("noc.read.dram.n") for t in threads if t.role == "reader")
        matmuls = sum(t.get(f"fpu.matmul.{desc.compute_config.math_fidelity}") for t in threads)
        cores = len(desc.kernels[0].runtime_args)
        want_reads, want_matmuls, blocks = _expected_counts(seq, heads, kv_heads, qc, kc, d // 32, window, cores)
        assert (reads, matmuls) == (want_reads, want_matmuls), window
        got[window] = (reads, matmuls, blocks)
    # 8 Q chunks x 4 K chunks: causal visits 20 blocks per head; window 45 only 14 (each Q chunk its diagonal K
    # chunk and, from the third Q chunk on, the K chunk left of it, whose keys its first row still sees).
    assert got[None][2] == 20 and got[45][2] == 14
    assert got[45][0] < got[None][0] and got[45][1] < got[None][1]


def test_mask_tiles_are_the_reference_mask():
    # Assemble the score mask of a whole sequence tile by tile, as the reader does (attention_bwd_common.h
    # mask_tile, here re-stated from its tile table: which consts tile each (query tile, key tile) gets) in both
    # orientations, and compare with the reference's visible mask.
    import re

    from tilegraph.kernels import KERNEL_DIR

    text = (KERNEL_DIR / "attention" / "attention_bwd_common.h").read_text()
    const = {m[1]: int(m[2]) for m in re.finditer(r"constexpr uint32_t (CONST_\w+) = (\d+);", text)}
    for window in (1, 7, 31, 32, 33, 45, 64, 65, 100):
        seq = 224
        tiles = bwd_consts(seq, window).reshape(-1, 32, 32)
        assert len(tiles) == len(const)
        want = visible_mask(seq, True, window)
        for transposed in (False, True):
            got = np.zeros((seq, seq), bool)
            for gq in range(seq // 32):
                for gk in range(gq + 1):
                    delta = gq - gk
                    if 32 * delta - 31 >= window:  # no pair of the tile in the window
                        t = const["CONST_WINDOW_FAR"]
                    elif 32 * delta + 31 >= window:  # the window's left edge cuts the tile
                        e = delta - window // 32
                        assert e in (0, 1)
                        t = const[f"CONST_WINDOW_EDGE{e}{'_T' if transposed else ''}"]
                    else:
                        t = const["CONST_CAUSAL_T" if transposed else "CONST_CAUSAL"] if delta == 0 else const["CONST_ZERO"]
                    tile = tiles[t].T if transposed else tiles[t]
                    got[32 * gq:32 * gq + 32, 32 * gk:32 * gk + 32] = tile == 0
            assert np.array_equal(got, want), (window, transposed)
        far = tiles[const["CONST_WINDOW_FAR"]]
        assert np.all(np.isfinite(far)) and np.all(far <= -1e29)  # exp(S - lse + far) is 0


def test_window_needs_causal():
    with pytest.raises(ShapeError, match=r"op 'attention_bwd': window=16 needs causal=True"):
        attention_bwd_program(1, 64, 2, 32, causal=False, window=16, grid=(1, 1))


os.environ.setdefault("TT_METAL_MOCK_CLUSTER_DESC_PATH", str(Path(__file__).parent / "data" / "wormhole_N150.yaml"))


def test_ttnn_program_descriptor_carries_the_window():
    pytest.importorskip("ttnn")
    from tilegraph.kernels.description import BufferAddress
    from tilegraph.runtime.ttnn_program import to_program_descriptor

    case = {**BASE, "seed": 1, "seq": 300, "q_chunk": 64, "k_chunk": 64, "window": 77}
    inputs, attrs, opts = fuzz.make_inputs("attention_bwd", case)
    desc, dev = get_kernel_op("attention_bwd").program(inputs, attrs, opts)
    pd = to_program_descriptor(desc).descriptor
    for spec, kd, index in zip(desc.kernels, pd.kernels, (20, 12, None)):
        for (x, y), args in spec.runtime_args.items():
            got = list(kd.runtime_args[x][y])
            assert len(got) == len(args)
            assert all(g == a for g, a in zip(got, args) if not isinstance(a, BufferAddress))
            if index is not None:  # reader arg 20, compute arg 12: the window the kernels read
                assert got[index] == 77
    # the consts it ships hold the window's edge tiles (checked against the mask in the test above)
    assert np.array_equal(dev["consts"], bwd_consts(300, 77))
    assert not np.array_equal(bwd_consts(300, 77), bwd_consts(300, None))


def test_place_puts_windowed_attention_bwd_on_the_kernel():
    from tilegraph.graph import load_spec, training_step
    from tilegraph.graph.passes.place import device_impl

    from tilegraph.compiler import Target, compile

    spec = load_spec(SPECS / "nano-trickster.yaml").to_dict()
    spec.update({"name": "windowed", "num_layers": 1, "attention_window": 40})
    step = training_step(load_spec(spec), 1, 96)
    windowed = [n for n in step.nodes if n.op == "attention_bwd"]
    assert windowed and all(n.attrs["window"] == 40 for n in windowed)
    program = compile(step, Target(backend="emu"))
    impls = {s.op: s.impl for s in program.steps if s.op.startswith("attention")}
    assert impls == {"attention": "kernel:attention", "attention_bwd": "kernel:attention_bwd"}
    assert all(device_impl(n) == "kernel:attention_bwd" for n in windowed)


def test_shipped_windowed_spec_trains_on_the_kernels():
    # specs/mistral-7b.yaml carries attention_window 4096: its training step (graph only, seq 64) places both
    # attention directions on the kernels for emu.
    from tilegraph.graph import load_spec, training_step

    from tilegraph.compiler import Target, compile

    step = training_step(load_spec(SPECS / "mistral-7b.yaml"), 1, 64)
    assert {n.attrs["window"] for n in step.nodes if n.op == "attention_bwd"} == {4096}
    program = compile(step, Target(backend="emu"))
    assert {(s.op, s.impl) for s in program.steps if s.op.startswith("attention")} == {
        ("attention", "kernel:attention"), ("attention_bwd", "kernel:attention_bwd")}
