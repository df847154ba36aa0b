"""kernels/description.py: program descriptions validate their own consistency, compute L1 use per core and resolve the
buffer-address / TensorAccessor placeholders."""

import pytest
from tilegraph.kernels.description import (
    L1_CB_BUDGET,
    BufferAddress,
    CBSpec,
    ComputeConfig,
    CoreRange,
    KernelSpec,
    ProgramDescription,
    TensorAccessorCTA,
    TensorSpec,
    resolve_args,
)

from tilegraph.errors import KernelError

ROW = (CoreRange((0, 0), (1, 0)),)


def program(**over):
    fields = {
        "name": "p",
        "tensors": [TensorSpec("x", (2, 40, 70), "bfloat8_b"), TensorSpec("y", (2, 40, 70), "float32", "output")],
        "cbs": [CBSpec(0, "bfloat8_b", 4, ROW), CBSpec(16, "float32", 2, ROW)],
        "kernels": [KernelSpec("reader", "r.cpp", ROW, (TensorAccessorCTA("x"),),
                            runtime_args={(0, 0): (BufferAddress("x"), 0), (1, 0): (BufferAddress("x"), 3)}),
                 KernelSpec("writer", "w.cpp", ROW, (TensorAccessorCTA("y"),))],
        "grid": (2, 1),
    }
    fields.update(over)
    return ProgramDescription(**fields)


def test_tensor_pages_and_l1():
    d = program()
    d.validate()
    x = d.tensor("x")
    assert x.padded_shape == (2, 64, 96) and x.num_pages == 2 * 2 * 3 and x.page_size == 1088
    assert d.l1_bytes_per_core() == {(0, 0): 4 * 1088 + 2 * 4096, (1, 0): 4 * 1088 + 2 * 4096}


def test_resolve_placeholders():
    d = program()
    assert resolve_args(d.kernels[0].compile_time_args, d, {}) == [2, 1088]
    assert resolve_args(d.kernels[0].runtime_args[(1, 0)], d, {"x": 4096}) == [4096, 3]


def test_dst_tiles_per_acquire():
    assert ComputeConfig().dst_tiles == 8
    assert ComputeConfig(fp32_dest_acc_en=True).dst_tiles == 4
    assert ComputeConfig(fp32_dest_acc_en=True, dst_full_sync_en=True).dst_tiles == 8


@pytest.mark.parametrize("over, match", [
    ({"grid": (1, 1)}, "outside grid"),
    ({"cbs": [CBSpec(0, "bfloat16", 2, ROW), CBSpec(0, "bfloat16", 2, ROW)]}, "CB 0 defined twice"),
    ({"cbs": [CBSpec(0, "float32", L1_CB_BUDGET // 4096 + 1, ROW)]}, "bytes of L1"),
    ({"kernels": [KernelSpec("reader", "a.cpp", ROW), KernelSpec("reader", "b.cpp", ROW)]}, "two reader kernels"),
    ({"kernels": [KernelSpec("reader", "a.cpp", ROW, (TensorAccessorCTA("nope"),))]}, "no tensor named 'nope'"),
    ({"kernels": [KernelSpec("reader", "a.cpp", ROW, runtime_args={(0, 0): (-1,)})]}, "not a uint32"),
    ({"kernels": [KernelSpec("reader", "a.cpp", ROW, runtime_args={(5, 5): (1,)})]}, "does not run on"),
    ({"tensors": [TensorSpec("x", (32, 32), "bfloat16"), TensorSpec("x", (32, 32), "bfloat16")]}, "duplicate"),
])
def test_validate_rejects(over, match):
    with pytest.raises(KernelError, match=match):
        program(**over).validate()


def test_bad_fields_rejected_at_construction():
    with pytest.raises(KernelError, match="dtype"):
        TensorSpec("x", (32, 32), "int8")
    with pytest.raises(KernelError, match="identifier"):
        TensorSpec("my tensor", (32, 32), "bfloat16")
    with pytest.raises(KernelError, match="CB index 40"):
        CBSpec(40, "bfloat16", 2, ROW)
    with pytest.raises(KernelError, match="role"):
        KernelSpec("dataflow", "a.cpp", ROW)
    with pytest.raises(KernelError, match="math_fidelity"):
        ComputeConfig(math_fidelity="HiFi5")
