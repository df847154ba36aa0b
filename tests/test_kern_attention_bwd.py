"""attention_bwd kernels (kernels/attention/{reader,compute,writer}_bwd.cpp) in the emulator against the float64
FlashAttention-2 backward reference, with the per-element bounds derived in kernels/attention/backward.py
(`error_bounds`); the work split (race-free, balanced) and the ttnn ProgramDescriptor at a realistic shape."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from tilegraph.kernels import KERNEL_DIR
from tilegraph.kernels.attention.backward import attention_bwd_program, describe
from tilegraph.runtime import fuzz

# derandomize: CI sees the same 200 cases every run (explore new ones with `tilegraph fuzz attention_bwd --seed`).
FUZZ = settings(max_examples=200, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
BASE = {"batch": 1, "kv_heads": 2, "group": 2, "softmax_scale": None, "dtype": "bfloat16", "grid": (3, 2),
        "scale": 1.0, "seed": 11}


def _check(case, backend="emu"):
    outcome = fuzz.run_case("attention_bwd", case, backend)
    assert outcome.ok, f"{case}: {outcome.worst} (max abs {outcome.max_abs:.3g}, err/bound {outcome.ratio:.3g})"
    return outcome


@pytest.mark.parametrize("seq,causal,q_chunk,k_chunk,head_dim", [
    (256, True, 64, 64, 64), (256, True, 32, 128, 32), (256, True, 128, 32, 128),  # chunks around the diagonal
    (200, False, 64, 32, 64), (77, True, 32, 64, 32), (31, False, 128, 128, 128),   # padded sequences
    (96, True, 32, 32, 64),                                                          # several chunks per pass
])
def test_attention_bwd_matches_reference(seq, causal, q_chunk, k_chunk, head_dim):
    _check({**BASE, "seq": seq, "causal": causal, "q_chunk": q_chunk, "k_chunk": k_chunk, "head_dim": head_dim})


def test_attention_bwd_bfp8_gqa_batch2_explicit_scale():
    # dK / dV summed over a group of 4 query heads; two batch elements; bfloat8_b activations.
    _check({**BASE, "batch": 2, "seq": 70, "kv_heads": 1, "group": 4, "head_dim": 64, "causal": True, "q_chunk": 32,
            "k_chunk": 32, "softmax_scale": 0.3, "dtype": "bfloat8_b", "grid": (2, 2)})


def test_attention_bwd_catches_a_wrong_gradient():
    # The bound is tight enough to see a real mistake: dK of the wrong sign (or dropped) is far outside it.
    case = {**BASE, "seq": 50, "causal": True, "q_chunk": 32, "k_chunk": 32, "head_dim": 32}
    inputs, attrs, _ = fuzz.make_inputs("attention_bwd", case)
    held = fuzz.device_values(inputs, "attention_bwd", "bfloat16", "emu")
    refs = fuzz.reference("attention_bwd", held, attrs)
    bounds = fuzz.error_bounds("attention_bwd", held, attrs, refs, "emu")
    assert np.any(np.abs(-refs[1] - refs[1]) > bounds[1])
    assert np.any(np.abs(0.9 * refs[2] - refs[2]) > bounds[2])  # a 10% error in dV too


@FUZZ
@given(case=fuzz.case_strategy("attention_bwd", small=True))
def test_fuzz_attention_bwd(case):
    _check(case)


@FUZZ
@given(case=fuzz.case_strategy("attention_bwd"))
def test_fuzz_attention_bwd_numpy_backend(case):
    _check(case, "numpy")


def _units(desc):
    """Per core: (pass-1 range, pass-2 range) from the compute kernel's runtime args."""
    (compute,) = [k for k in desc.kernels if k.role == "compute"]
    return {core: ((a[6], a[7]), (a[8], a[9])) for core, a in compute.runtime_args.items()}


@pytest.mark.parametrize("shape", [(1, 2048, 8, 64, 8), (2, 300, 4, 32, 2), (1, 64, 1, 128, 1)])
def test_every_output_chunk_is_written_by_exactly_one_core(shape):
    b, s, h, d, kvh = shape
    desc = attention_bwd_program(b, s, h, d, kvh, q_chunk=64, k_chunk=64, grid=(8, 8))
    n_chunks = desc.tensor("q").shape[2] // 64
    kv_units, q_units = [], []
    for (kv0, kvn), (q0, qn) in _units(desc).values():
        kv_units += range(kv0, kv0 + kvn)
        q_units += range(q0, q0 + qn)
    # Pass 1 writes dK, dV of unit (kv head, K chunk), pass 2 dQ of unit (head, Q chunk): each unit once.
    assert sorted(kv_units) == list(range(b * kvh * n_chunks))
    assert sorted(q_units) == list(range(b * h * n_chunks))


def test_causal_work_is_balanced_over_cores():
    # Blocks per core (pass 1: a K chunk sees the Q chunks from the diagonal on; pass 2: a Q chunk the K chunks
    # up to it), zigzag numbering: the busiest core does at most 15% more than the average.
    desc = attention_bwd_program(1, 2048, 8, 64, grid=(8, 8), q_chunk=128, k_chunk=128)
    n = 2048 // 128

    def zigzag(w):
        j = w % n
        return j // 2 if j % 2 == 0 else n - 1 - j // 2

    work = [sum(n - zigzag(w) for w in range(kv0, kv0 + kvn)) + sum(zigzag(w) + 1 for w in range(q0, q0 + qn))
            for (kv0, kvn), (q0, qn) in _units(desc).values()]
    assert max(work) <= 1.15 * np.mean(work), work


def test_l1_at_realistic_shape_is_below_a_core(capsys):
    desc = attention_bwd_program(1, 2048, 8, 64, grid=(8, 8))
    l1 = max(desc.l1_bytes_per_core().values())
    print(describe(1, 2048, 8, 64, grid=(8, 8)))
    assert 0 < l1 < 1536 * 1024
    assert {c.index: c.data_format for c in desc.cbs}[26] == "float32"  # fp32 P / dS fit at this shape
    assert "L1 (CBs) per core max" in capsys.readouterr().out


os.environ.setdefault("TT_METAL_MOCK_CLUSTER_DESC_PATH", str(Path(__file__).parent / "data" / "wormhole_N150.yaml"))


def test_ttnn_program_descriptor_at_realistic_shape():
    ttnn = pytest.importorskip("ttnn")
    from tilegraph.runtime.ttnn_program import L1_LIMIT_BYTES, kernel_source_text, to_program_descriptor

    desc = attention_bwd_program(1, 2048, 8, 64, grid=(8, 8))
    built = to_program_descriptor(desc)
    pd = built.descriptor
    assert len(pd.kernels) == 3 and len(pd.cbs) == len(desc.cbs)
    assert 0 < built.max_l1_bytes < L1_LIMIT_BYTES
    assert built.l1_bytes_per_core == desc.l1_bytes_per_core()
    for spec, kd in zip(desc.kernels, pd.kernels):
        assert kd.kernel_source == kernel_source_text(spec.source)
        assert len(list(kd.compile_time_args)) == 2 * len(spec.compile_time_args)
    (compute,) = [kd for spec, kd in zip(desc.kernels, pd.kernels) if spec.role == "compute"]
    modes = list(compute.config.unpack_to_dest_mode)
    got = {i for i, m in enumerate(modes) if m == ttnn.UnpackToDestMode.UnpackToDestFp32}
    assert got == {6, 25, 28, 29, 30}  # lse, D and the three running sums; not P (a matmul operand)


@pytest.mark.parametrize("role", ["reader_bwd", "compute_bwd", "writer_bwd"])
def test_bwd_sources_are_self_contained(role, tmp_path):
    # tt-metal compiles SOURCE_CODE text outside the kernel folder: both local headers (attention_bwd_common.h and
    # the attention_common.h it includes) must be inlined.
    from tilegraph.runtime.ttnn_program import kernel_source_text

    text = kernel_source_text(f"attention/{role}.cpp")
    assert '#include "attention_bwd_common.h"' not in text and '#include "attention_common.h"' not in text
    alone = tmp_path / f"{role}.cpp"
    alone.write_text(text)
    r = subprocess.run(["g++", "-std=c++17", "-fsyntax-only", f"-I{KERNEL_DIR / 'emu'}",
                        "-DKERNEL_COMPILE_TIME_ARGS=" + ",".join(["2", "2048"] * 8), str(alone)],
                       check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[:2000]


def test_backward_kernel_takes_the_forward_kernels_outputs():
    # The interface the training Program uses: the forward kernel's (o, lse) go straight into attention_bwd.
    from tilegraph.runtime.kernel_ops import DeviceOptions, run_kernel_op

    rng = np.random.default_rng(4)
    b, s, h, kvh, d = 2, 45, 4, 2, 32
    attrs = {"heads": h, "kv_heads": kvh, "causal": True, "scale": None}
    q, k, v = (rng.standard_normal((b, s, n * d)).astype(np.float32) for n in (h, kvh, kvh))
    do = rng.standard_normal((b, s, h * d)).astype(np.float32)
    held = fuzz.device_values([q, k, v], "attention", "bfloat16", "emu")
    o, lse = run_kernel_op("attention", held, attrs, "emu", DeviceOptions("bfloat16", (2, 2)))
    inputs = fuzz.device_values([*held, o, lse, do], "attention_bwd", "bfloat16", "emu")
    got = run_kernel_op("attention_bwd", inputs, attrs, "emu", DeviceOptions("bfloat16", (2, 2)))
    refs = fuzz.reference("attention_bwd", inputs, attrs)
    bounds = fuzz.error_bounds("attention_bwd", inputs, attrs, refs, "emu")
    for g, r, bound, want in zip(got, refs, bounds, [q.shape, k.shape, v.shape]):
        assert g.shape == want
        assert np.all(np.abs(g - r) <= bound)


def test_builder_defines_exactly_the_cbs_the_bwd_header_names():
    import re

    from tilegraph.kernels.attention.backward import bwd_consts

    text = (KERNEL_DIR / "attention" / "attention_bwd_common.h").read_text()
    names = {m[1]: int(m[2]) for m in re.finditer(r"constexpr uint32_t (cb_\w+) = (\d+);", text)}
    consts = {m[1]: int(m[2]) for m in re.finditer(r"constexpr uint32_t (CONST_\w+) = (\d+);", text)}
    desc = attention_bwd_program(1, 100, 2, 64, grid=(2, 1))
    assert sorted(cb.index for cb in desc.cbs) == sorted(names.values())
    # Unpacked straight to DST: what only copy_tile reads (lse, D, the running sums), never a matmul operand.
    want = {names[n] for n in ("cb_lse", "cb_dbc", "cb_dq_acc", "cb_dk_acc", "cb_dv_acc")}
    assert set(desc.compute_config.unpack_to_dest_fp32) == want
    c = bwd_consts(70).reshape(-1, 32, 32)  # 70 = 2 full key tiles + 6 valid keys in the third
    assert len(c) == len(consts)
    causal, causal_t = c[consts["CONST_CAUSAL"]], c[consts["CONST_CAUSAL_T"]]
    assert np.all(np.isneginf(causal[np.triu_indices(32, 1)])) and np.all(causal[np.tril_indices(32)] == 0)
    assert np.array_equal(causal_t, causal.T)
    pad, pad_t = c[consts["CONST_KEY_PAD"]], c[consts["CONST_KEY_PAD_T"]]
    assert np.all(pad[:, :6] == 0) and np.all(np.isneginf(pad[:, 6:])) and np.array_equal(pad_t, pad.T)
    assert np.all(c[consts["CONST_ONES"]] == 1) and np.all(np.isneginf(c[consts["CONST_NEG_INF"]]))


def test_emu_program_runs_attention_and_its_backward_on_the_kernels():
    # The place pass puts both attention steps on kernel:<op> for the emu backend (kernels/registry.py), and the
    # Program runs them there: same interface as the numpy backend, results within the kernel bounds.
    from tilegraph.graph.ir import Graph
    from tilegraph.runtime.emu_backend import Executor

    from tilegraph.compiler import Target, compile

    b, s, h, kvh, d = 1, 40, 2, 1, 32
    g = Graph("attn")
    q, k, v = g.input("q", (b, s, h * d)), g.input("k", (b, s, kvh * d)), g.input("v", (b, s, kvh * d))
    do = g.input("do", (b, s, h * d))
    attrs = {"heads": h, "kv_heads": kvh, "causal": True, "scale": None}
    o, lse = g.call("attention", q, k, v, name="o", **attrs)
    dq, dk, dv = g.call("attention_bwd", q, k, v, o, lse, do, name="dq", **attrs)
    for name, val in (("dq", dq), ("dk", dk), ("dv", dv)):
        g.output(name, val)
    program = compile(g, Target(backend="emu"))
    assert [st.impl for st in program.steps] == ["kernel:attention", "kernel:attention_bwd"]
    rng = np.random.default_rng(2)
    feeds = {n: rng.standard_normal(t).astype(np.float32)
             for n, t in (("q", (b, s, h * d)), ("k", (b, s, kvh * d)), ("v", (b, s, kvh * d)), ("do", (b, s, h * d)))}
    ex = Executor(program)
    assert ex.kernel_steps == ["attention", "attention_bwd"] and ex.fallback_steps() == []
    got = ex.run({}, feeds)
    want = compile(g).run({}, feeds)
    for name in ("dq", "dk", "dv"):
        # Loose on purpose (forward and backward in bf16, two kernels in a row): the per-element bounds of each
        # kernel are tested above; this checks the Program's plumbing (layouts, lse, output order).
        scale = np.abs(want[name]).max()
        np.testing.assert_allclose(got[name], want[name], atol=2**-4 * scale)
        assert not np.array_equal(got[name], want[name])


def test_bfp8_case_that_hits_the_wormhole_accumulate_erratum():
    """A case the fuzz found (no window; it fails on the kernels before the window work too): one FPU accumulation
    of dV in it lands on a magnitude of exactly 1 on the negative side, which Wormhole B0 renormalises wrongly
    (kernels/emu/API.md, "Accumulation into DST": ttsim's erratum), so that element comes out 2^6 too low; with the
    erratum line taken out of the emulator the case passes at 0.03 of its bounds. The bounds do not model the
    erratum (it errs by up to 2^4 times the largest addend); pinned here so the miss stays visible."""
    from tilegraph.runtime.kernel_ops import run_kernel_op

    case = {"dtype": "bfloat8_b", "grid": (1, 1), "scale": 3.0, "seed": 6070, "batch": 1, "seq": 42, "kv_heads": 2,
            "group": 2, "head_dim": 128, "causal": True, "q_chunk": 32, "k_chunk": 32, "softmax_scale": 0.5}
    inputs, attrs, opts = fuzz.make_inputs("attention_bwd", case)
    held = fuzz.device_values(inputs, "attention_bwd", case["dtype"], "emu")
    refs = fuzz.reference("attention_bwd", held, attrs)
    bounds = fuzz.error_bounds("attention_bwd", held, attrs, refs, "emu")
    got = run_kernel_op("attention_bwd", held, attrs, "emu", opts)
    misses = [np.argwhere(np.abs(g - r) > b).tolist() for g, r, b in zip(got, refs, bounds)]
    assert misses == [[], [], [[0, 9, 133]]]
    assert abs(got[2][0, 9, 133] - (refs[2][0, 9, 133] - 64)) <= 0.25  # 2^6 low, then packed to bf16 (ulp 0.25)
    # the emulator counts the erratum where it fires, so a fuzz miss can be told apart from a kernel bug
    from tilegraph.kernels.registry import get_kernel_op
    from tilegraph.runtime.emulator import run_program_counted

    desc, dev_inputs = get_kernel_op("attention_bwd").program(held, attrs, opts)
    _, threads = run_program_counted(desc, dev_inputs)
    assert sum(t.get("fpu.accumulate_erratum") for t in threads if t.role == "compute") >= 1
    assert all(t.get("fpu.accumulate_erratum") == 0 for t in threads if t.role != "compute")
