"""NoC semaphores and multicast in the emulator (tt-metal 0.81.1 dataflow_api.h semantics): a sender multicasts tiles
to a row and to 2-D rectangles of receivers with the sender/receiver semaphore handshake, and every receiver's L1 holds
the bytes; planted bugs (wrong num_dests, reversed rectangle, a write outside every CB, a wait nothing satisfies)
fail with messages naming kernel, core, rectangle, counts or semaphore; the perf counters count a multicast once at
the sender; the ttnn descriptor carries the semaphores. Test kernels: tests/kernels/mcast/."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from tilegraph.kernels.description import (
    BufferAddress,
    CBSpec,
    CoreRange,
    KernelSpec,
    NocX,
    NocY,
    ProgramDescription,
    SemaphoreSpec,
    TensorAccessorCTA,
    TensorSpec,
)
from tilegraph.runtime.emulator import quantize, run_program, run_program_counted

from tilegraph.errors import KernelError
from tilegraph.perf.counters import ThreadCounters
from tilegraph.perf.devices import get_device
from tilegraph.perf.model import estimate

KERNELS = Path(__file__).parent / "kernels" / "mcast"
TILES = 3

# Wormhole B0 NOC0 worker columns / rows, read off ttnn/tt_metal/soc_descriptors/wormhole_b0_80_arch.yaml
# (functional_workers) for this test, independently of the emulator's table.
WH_NOC0_X = {0: 1, 1: 2, 2: 3, 3: 4, 4: 6, 5: 7, 6: 8, 7: 9}
WH_NOC0_Y = {0: 1, 1: 2, 2: 3, 3: 4, 4: 5, 5: 7}


def mcast_program(first, last, sender, *, num_dests=None, swap_corners=False, dst_skew=0, skip_valid=False,
                  loopback=False):
    """Cores of the rectangle first..last (logical); `sender` reads x and multicasts each tile to the others."""
    rect = (CoreRange(first, last),)
    cores = list(rect[0].cores())
    receivers = len(cores) - (0 if loopback else 1)
    num_dests = receivers if num_dests is None else num_dests
    start, end = (last, first) if swap_corners else (first, last)
    reader_rt, writer_rt = {}, {}
    for i, c in enumerate(cores):
        reader_rt[c] = (BufferAddress("x"), TILES, int(c == sender), NocX(sender), NocY(sender),
                        NocX(start), NocY(start), NocX(end), NocY(end), num_dests, dst_skew, int(skip_valid),
                        int(loopback), len(cores) - 1)
        writer_rt[c] = (BufferAddress("out"), TILES, i * TILES)
    return ProgramDescription(
        name="mcast",
        tensors=[TensorSpec("x", (32 * TILES, 32), "bfloat16"),
                 TensorSpec("out", (32 * TILES * len(cores), 32), "bfloat16", "output")],
        cbs=[CBSpec(0, "bfloat16", 2, rect)],
        kernels=[KernelSpec("reader", str(KERNELS / "reader.cpp"), rect, (TensorAccessorCTA("x"),),
                            runtime_args=reader_rt),
                 KernelSpec("writer", str(KERNELS / "writer.cpp"), rect, (TensorAccessorCTA("out"),),
                            runtime_args=writer_rt)],
        semaphores=[SemaphoreSpec((CoreRange(sender, sender),), 0), SemaphoreSpec(rect, 0)],
        grid=(8, 8),
    )


def x_input(seed=0):
    return {"x": np.random.default_rng(seed).standard_normal((32 * TILES, 32)).astype(np.float32)}


@pytest.mark.parametrize("first, last, sender", [
    ((0, 0), (3, 0), (0, 0)),   # a row, sender at its start
    ((1, 1), (3, 2), (2, 1)),   # a 3 x 2 rectangle, sender inside it
    ((3, 0), (5, 1), (3, 0)),   # across NOC0 column 5 (DRAM / Ethernet, no workers): 6 cores in NOC x 4..7
])
def test_multicast_reaches_every_receiver(first, last, sender):
    x = x_input()
    out = run_program(mcast_program(first, last, sender), x)["out"]
    ncores = (last[0] - first[0] + 1) * (last[1] - first[1] + 1)
    want = np.tile(quantize(x["x"], "bfloat16"), (ncores, 1))  # every core's slice: all tiles, in order
    assert np.array_equal(out, want)


def test_loopback_multicast_counts_the_sender():
    x = x_input(1)
    out = run_program(mcast_program((0, 0), (2, 0), (0, 0), loopback=True), x)["out"]
    assert np.array_equal(out, np.tile(quantize(x["x"], "bfloat16"), (3, 1)))
    with pytest.raises(KernelError, match=r"num_dests is 2, but NOC0 rectangle \(1,1\)-\(3,1\) holds 3 receiving"):
        run_program(mcast_program((0, 0), (2, 0), (0, 0), loopback=True, num_dests=2), x)


def reader_where(core=(0, 0)):
    return f"program 'mcast': kernel {KERNELS / 'reader.cpp'} (reader) on core ({core[0]},{core[1]}): "


def run_bug(**kw):
    with pytest.raises(KernelError) as e:
        run_program(mcast_program((0, 0), (2, 1), (0, 0), **kw), x_input(), timeout_s=30)
    return str(e.value)


def test_wrong_num_dests_names_rectangle_and_counts():
    # 6 cores, sender inside: 5 receivers. On a card the sender would wait for 6 acks forever.
    msg = run_bug(num_dests=6)
    rect = f"NOC0 rectangle ({WH_NOC0_X[0]},{WH_NOC0_Y[0]})-({WH_NOC0_X[2]},{WH_NOC0_Y[1]})"
    assert msg == (reader_where() + f"noc_async_write_multicast: num_dests is 6, but {rect} holds 5 receiving "
                   "worker core(s) (the sender excluded); a card would wait for 6 acks and hang")


def test_reversed_rectangle_is_an_error():
    msg = run_bug(swap_corners=True)
    assert msg.startswith(reader_where() + "noc_async_write_multicast: NOC0 rectangle (3,2)-(1,1) is reversed")


def test_multicast_outside_every_cb_is_an_error():
    msg = run_bug(dst_skew=1 << 20)  # 1 MB past the CB page: inside L1, in no CB or semaphore
    assert msg.startswith(reader_where() + "noc_async_write_multicast: 2048 bytes at L1 offset ")
    assert "lie outside every circular buffer and semaphore defined there" in msg


def test_wait_nothing_satisfies_is_a_deadlock_naming_the_semaphore():
    msg = run_bug(skip_valid=True)  # the sender never marks the receivers' pages valid
    assert msg.startswith("program 'mcast': deadlock: every running kernel thread waits")
    # Every receiver's reader: semaphore 1 waited for value 1, still 0.
    for x, y in [(1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]:
        assert (f"\n  kernel {KERNELS / 'reader.cpp'} (reader) on core ({x},{y}): blocked in "
                f"noc_semaphore_wait(semaphore 1, 1) on semaphore 1 of core ({x},{y}), whose value is 0") in msg


def test_semaphore_must_be_defined_where_it_is_used():
    desc = mcast_program((0, 0), (1, 0), (0, 0))
    # "ready" moved off the sender, which waits on it.
    moved = ProgramDescription(desc.name, desc.tensors, desc.cbs, desc.kernels, grid=desc.grid,
                               semaphores=[SemaphoreSpec((CoreRange((1, 0), (1, 0)),)), desc.semaphores[1]])
    with pytest.raises(KernelError) as e:
        run_program(moved, x_input())
    # Whichever comes first: the sender's wait on it, or the receiver's increment of the sender's word.
    sender = re.escape(reader_where()) + (r"noc_semaphore_wait: address 0x[0-9a-f]+ is not a semaphore of this core; "
                                          r"pass get_semaphore\(id\) for an id of ProgramDescription.semaphores that "
                                          r"covers core \(0,0\)")
    receiver = re.escape(reader_where((1, 0))) + (r"noc_semaphore_inc: NoC address 0x[0-9a-f]+ is not a semaphore "
                                                  r"word of a core of this program; build it with get_noc_addr\(noc_x, "
                                                  r"noc_y, get_semaphore\(id\)\)")
    assert re.fullmatch(f"{sender}|{receiver}", str(e.value))
    only_one = ProgramDescription(desc.name, desc.tensors, desc.cbs, desc.kernels, grid=desc.grid,
                                  semaphores=desc.semaphores[:1])
    with pytest.raises(KernelError, match=r"get_semaphore\(1\): the program defines no semaphore 1"):
        run_program(only_one, x_input())


def test_perf_counts_a_multicast_once_with_its_destinations():
    desc = mcast_program((0, 0), (3, 0), (0, 0))
    _, threads = run_program_counted(desc, x_input())
    readers = {t.core: t for t in threads if t.role == "reader"}
    sender = readers.pop((0, 0))
    # Per tile: the tile (2048 B) and the "valid" word (4 B), each one multicast to the 3 receivers.
    assert sender.get("noc.write.mcast.n") == 2 * TILES
    assert sender.get("noc.write.mcast.bytes") == TILES * (2048 + 4)
    assert sender.get("noc.write.mcast.dests") == 2 * TILES * 3
    assert sender.get("noc.write.l1.bytes") == 0  # not counted again as unicast writes
    for r in readers.values():
        assert r.get("noc.write.mcast.n") == 0 and r.get("noc.atomic.n") == TILES  # one "ready" per tile


def test_model_charges_a_multicast_once_on_the_senders_noc():
    dev = get_device("n150")

    def reader_time(dests):
        t = ThreadCounters((0, 0), "reader", "r", {"noc.write.mcast.bytes": 64 * 2048, "noc.write.mcast.n": 64,
                                                    "noc.write.mcast.dests": 64 * dests})
        return estimate([t], dev, {}, "HiFi4").time_s

    unicast = ThreadCounters((0, 0), "reader", "r", {"noc.write.l1.bytes": 64 * 2048, "noc.write.l1.n": 64})
    assert reader_time(1) == reader_time(63) == estimate([unicast], dev, {}, "HiFi4").time_s > 0


def test_ttnn_descriptor_has_the_semaphores_and_noc_coordinates():
    os.environ.setdefault("TT_METAL_MOCK_CLUSTER_DESC_PATH", str(Path(__file__).parent / "data" / "wormhole_N150.yaml"))
    import ttnn
    from tilegraph.runtime.ttnn_program import to_program_descriptor

    desc = mcast_program((1, 1), (3, 2), (2, 1))
    desc = ProgramDescription(desc.name, desc.tensors, desc.cbs, desc.kernels, grid=desc.grid,
                              semaphores=[SemaphoreSpec((CoreRange((2, 1), (2, 1)),), 7), desc.semaphores[1]])
    pd = to_program_descriptor(desc, noc_xy=lambda c: (c[0] + 18, c[1] + 18)).descriptor  # translated-style coords
    got = [(s.id, s.initial_value, s.core_type, str(s.core_ranges)) for s in pd.semaphores]
    assert got == [(0, 7, ttnn.CoreType.WORKER, "{[2-1 - 2-1]}"), (1, 0, ttnn.CoreType.WORKER, "{[1-1 - 3-2]}")]
    args = list(pd.kernels[0].runtime_args[2][1])
    assert args[3:9] == [20, 19, 19, 19, 21, 20]  # sender (2,1), rectangle (1,1)-(3,2), each + 18
    host = list(to_program_descriptor(desc).descriptor.kernels[0].runtime_args[2][1])  # host default: NOC0 map
    assert host[3:9] == [WH_NOC0_X[2], WH_NOC0_Y[1], WH_NOC0_X[1], WH_NOC0_Y[1], WH_NOC0_X[3], WH_NOC0_Y[2]]


def semaphore_desc(sem, args=()):
    r = (CoreRange((0, 0), (1, 0)),)
    return ProgramDescription("s", [TensorSpec("x", (32, 32), "bfloat16")], [],
                              [KernelSpec("reader", str(KERNELS / "reader.cpp"), r, runtime_args={(0, 0): args})],
                              semaphores=[sem], grid=(8, 8))


@pytest.mark.parametrize("value", [-1, 2**32, 1.5])
def test_semaphore_initial_value_must_be_uint32(value):
    with pytest.raises(KernelError, match=r"program 's': semaphores\[0\].initial_value .* is not a uint32"):
        semaphore_desc(SemaphoreSpec((CoreRange((0, 0), (0, 0)),), value))


def test_semaphore_cores_inside_the_grid():
    with pytest.raises(KernelError, match=r"semaphores\[0\]: core \(8,0\) is outside grid \(8, 8\)"):
        semaphore_desc(SemaphoreSpec((CoreRange((7, 0), (8, 0)),)))


def test_noc_placeholder_core_inside_the_grid():
    with pytest.raises(KernelError, match=r"arg NocY\(core=\(0, 9\)\) names a core outside grid"):
        semaphore_desc(SemaphoreSpec((CoreRange((0, 0), (0, 0)),)), (NocY((0, 9)),))
