"""The blocked attention backward compute kernel (kernels/attention/compute_bwd.cpp: matmul_block subblocks, inits
and reconfigs hoisted out of the tile loops) against the per-tile kernel it replaced, bit for bit: the rewrite
keeps every output element's fp32 accumulation order, so dq, dk and dv must not differ in a single bit. The old
kernel is taken from git history (commit PER_TILE below, with its reader, which assembled mask blocks, and the
headers of that commit) into the test's tmp dir and run in place of the current reader and compute kernels of the
same program, with the mask CB sized as that reader needs it; the writer is the current one."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tilegraph.kernels import KERNEL_DIR
from tilegraph.kernels.registry import get_kernel_op
from tilegraph.runtime import fuzz

PER_TILE = "216442c64abcb6275a1538b9af1d03303e28c5c6"  # last commit with the per-tile compute_bwd.cpp
OLD_FILES = ("attention/compute_bwd.cpp", "attention/reader_bwd.cpp", "attention/attention_bwd_common.h",
             "attention/attention_common.h")
CB_MASK = 3
BASE = {"batch": 1, "kv_heads": 1, "group": 1, "softmax_scale": None, "dtype": "bfloat16", "grid": (2, 2),
        "scale": 1.0, "seed": 5}


@pytest.fixture(scope="module")
def old_kernels(tmp_path_factory) -> Path:
    root = KERNEL_DIR.parent
    out = tmp_path_factory.mktemp("per_tile_kernel")
    for rel in OLD_FILES:
        repo_path = (KERNEL_DIR / rel).relative_to(_git_root(root))
        text = subprocess.run(["git", "-C", str(root), "show", f"{PER_TILE}:{repo_path}"], check=True,
                              capture_output=True, text=True).stdout
        (out / Path(rel).name).write_text(text)
    return out


def _git_root(path: Path) -> Path:
    try:
        top = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"], check=True,
                             capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the per-tile kernel comes from git history")
    return Path(top)


def _run(case, old_dir=None):
    from tilegraph.runtime.emulator import run_program

    inputs, attrs, opts = fuzz.make_inputs("attention_bwd", case)
    held = fuzz.device_values(inputs, "attention_bwd", case["dtype"], "emu")
    op = get_kernel_op("attention_bwd")
    desc, dev_inputs = op.program([np.asarray(a, np.float32) for a in held], attrs, opts)
    if old_dir is not None:
        (compute,) = [k for k in desc.kernels if k.role == "compute"]
        qc, kc = next(iter(compute.runtime_args.values()))[:2]
        old = {"reader": old_dir / "reader_bwd.cpp", "compute": old_dir / "compute_bwd.cpp"}
        desc = dataclasses.replace(
            desc,
            kernels=[dataclasses.replace(k, source=str(old[k.role])) if k.role in old else k for k in desc.kernels],
            # the per-tile reader shipped a mask block per masked score block, double-buffered
            cbs=[dataclasses.replace(c, num_pages=2 * qc * kc) if c.index == CB_MASK else c for c in desc.cbs])
    out = run_program(desc, dev_inputs)
    return [np.asarray(o, np.float32) for o in op.unpack(out, held, attrs)]


@pytest.mark.parametrize("fields", [
    {"seq": 128, "causal": True, "q_chunk": 64, "k_chunk": 64, "head_dim": 64},
    {"seq": 128, "causal": False, "q_chunk": 32, "k_chunk": 128, "head_dim": 32},   # q_chunk != k_chunk
    {"seq": 77, "causal": True, "q_chunk": 128, "k_chunk": 32, "head_dim": 128},    # seq not a multiple of 32
    {"seq": 100, "causal": False, "q_chunk": 64, "k_chunk": 32, "head_dim": 96, "kv_heads": 2, "group": 2},  # GQA
    {"seq": 160, "causal": True, "q_chunk": 32, "k_chunk": 64, "head_dim": 32, "group": 3, "window": 45},
    {"seq": 96, "causal": True, "q_chunk": 32, "k_chunk": 32, "head_dim": 160, "dtype": "bfloat8_b"},  # dh > DST
])
def test_blocked_kernel_is_bit_identical_to_the_per_tile_kernel(fields, old_kernels):
    # head_dim 96 and 160: 3 and 5 tiles, a DST subblock that does not divide the head, and one wider than DST
    case = {**BASE, **fields}
    if "window" in case:  # make_inputs draws the window from the case only for causal cases
        assert case["causal"]
    new = _run(case)
    old = _run(case, old_kernels)
    for name, a, b in zip(("dq", "dk", "dv"), new, old):
        assert np.all(np.isfinite(a)), name
        assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), (
            f"{name}: {np.count_nonzero(a.view(np.uint32) != b.view(np.uint32))} of {a.size} elements differ")
