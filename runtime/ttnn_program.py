"""ProgramDescription -> ttnn.ProgramDescriptor, and running it with ttnn.generic_op on a Tenstorrent card.

`to_program_descriptor` needs no device: it turns the description into real ttnn objects (SOURCE_CODE kernels with
the kernel text inlined, CBDescriptor/CBFormatDescriptor per circular buffer, SemaphoreDescriptor per semaphore (id =
its index), per-core RuntimeArgs, CoreRangeSets, Compute/Reader/WriterConfigDescriptor). Buffer addresses,
TensorAccessor compile-time args and NoC coordinates are placeholders until a device exists; on the host they
resolve to 0, to the interleaved-DRAM accessor words and to the emulator's Wormhole B0 NOC0 layout, on a card to the
buffers' addresses and `device.worker_core_from_logical_core`.

`run_on_device` allocates the tensors on a ttnn device (device 0 is opened once and kept), fills the placeholders from the real buffers
(`buffer_address()`, `TensorAccessorArgs(t).get_compile_time_args()`), calls `ttnn.generic_op` and reads the
outputs back. It is exercised only on a card: without one it raises DeviceError before touching ttnn's device API
(which aborts the process when no card is present).
"""

from __future__ import annotations

import atexit
import glob
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tilegraph.kernels import KERNEL_DIR
from tilegraph.kernels.description import (
    Core,
    CoreRange,
    ProgramDescription,
    TensorAccessorCTA,
    cores_of,
    resolve_args,
)

from tilegraph.errors import DeviceError, KernelError

L1_LIMIT_BYTES = 1536 * 1024  # Wormhole / Blackhole L1 per Tensix core
HOST_CB_SLOTS = 64  # NUM_CIRCULAR_BUFFERS as the host sizes per-CB tables (tt-metalium/circular_buffer_constants.h)


def _ttnn():
    try:
        import ttnn
    except ImportError as e:  # pragma: no cover - ttnn is a dependency on supported platforms
        raise DeviceError(f"the ttnn backend needs the ttnn package (pip install ttnn==0.81.1): {e}") from None
    return ttnn


def _dtype(ttnn, name: str):
    return {"float32": ttnn.float32, "bfloat16": ttnn.bfloat16, "bfloat8_b": ttnn.bfloat8_b}[name]


def _core_range_set(ttnn, ranges: tuple[CoreRange, ...]):
    return ttnn.CoreRangeSet([ttnn.CoreRange(ttnn.CoreCoord(*r.start), ttnn.CoreCoord(*r.end)) for r in ranges])


_LOCAL_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')


def kernel_source_text(source: str) -> str:
    """The kernel's source for SOURCE_CODE: tt-metal compiles the text from its own build folder, where the
    kernel's folder is not on the include path, so kernel-local headers (`#include "x.h"` naming a file next to the
    source, e.g. attention/attention_common.h) are inlined, each once (they are `#pragma once`)."""
    path = KERNEL_DIR / source
    if not path.is_file():
        raise KernelError(f"kernel source {source!r} not found under {KERNEL_DIR}")
    return _inline_local_headers(path, set())


def _inline_local_headers(path: Path, seen: set[Path]) -> str:
    out = []
    for line in path.read_text().splitlines(keepends=True):
        m = _LOCAL_INCLUDE.match(line)
        header = path.parent / m.group(1) if m else None
        if header is None or not header.is_file():
            out.append(line)  # api/... and system headers: resolved by tt-metal's include path
            continue
        header = header.resolve()
        if header not in seen:
            seen.add(header)
            out.append(f"// ---- inlined {m.group(1)} (kernel-local header)\n")
            body = _inline_local_headers(header, seen)
            out.append("".join(ln for ln in body.splitlines(keepends=True) if ln.strip() != "#pragma once"))
            out.append(f"// ---- end of {m.group(1)}\n")
    return "".join(out)


@dataclass
class BuiltProgram:
    """A ttnn.ProgramDescriptor plus the per-core L1 bytes its circular buffers take (computed from the descriptor)."""

    descriptor: object
    l1_bytes_per_core: dict[Core, int]

    @property
    def max_l1_bytes(self) -> int:
        return max(self.l1_bytes_per_core.values(), default=0)


def device_noc_xy(ttnn, device) -> Callable[[Core], tuple[int, int]]:
    """Logical core -> the NoC coordinates kernels must use on `device` (its virtual / translated worker
    coordinates, harvesting included): tt-metal's `worker_core_from_logical_core`. Needs a card."""
    def noc_xy(core: Core) -> tuple[int, int]:
        c = device.worker_core_from_logical_core(ttnn.CoreCoord(*core))
        return int(c.x), int(c.y)
    return noc_xy


def to_program_descriptor(
    desc: ProgramDescription,
    addresses: Mapping[str, int] | None = None,
    accessor_args: Mapping[str, list[int]] | None = None,
    noc_xy: Callable[[Core], tuple[int, int]] | None = None,
) -> BuiltProgram:
    """Build the ttnn.ProgramDescriptor of `desc` (no device needed).

    addresses: tensor name -> DRAM address (0 for every tensor when not given, i.e. on the host).
    accessor_args: tensor name -> TensorAccessorArgs compile-time words (default: interleaved DRAM words).
    noc_xy: logical core -> NoC (x, y) for the NocX / NocY placeholders (default, on the host: the emulator's
    unharvested NOC0 layout; on a card pass device_noc_xy(ttnn, device))."""
    ttnn = _ttnn()
    addresses = dict(addresses or {t.name: 0 for t in desc.tensors})
    if noc_xy is None:
        from tilegraph.runtime.emulator import noc0_xy

        noc_xy = noc0_xy(desc.grid)

    def ct_args(args) -> list[int]:
        if accessor_args is None:
            return resolve_args(args, desc, addresses)
        words: list[int] = []
        for a in args:
            if isinstance(a, TensorAccessorCTA):
                words.extend(int(w) for w in accessor_args[a.tensor])
            else:
                words.extend(resolve_args([a], desc, addresses))
        return words

    cc = desc.compute_config

    def compute_config():
        config = ttnn.ComputeConfigDescriptor(
            math_fidelity=getattr(ttnn.MathFidelity, cc.math_fidelity),
            math_approx_mode=cc.math_approx_mode,
            fp32_dest_acc_en=cc.fp32_dest_acc_en,
            dst_full_sync_en=cc.dst_full_sync_en,
        )
        if cc.unpack_to_dest_fp32:
            # One mode per CB slot; the host sizes it for NUM_CIRCULAR_BUFFERS (64 on the host side,
            # tt-metalium/circular_buffer_constants.h), as tt-metal's program factories do.
            modes = [ttnn.UnpackToDestMode.Default] * HOST_CB_SLOTS
            for i in cc.unpack_to_dest_fp32:
                modes[i] = ttnn.UnpackToDestMode.UnpackToDestFp32
            config.unpack_to_dest_mode = modes
        return config

    configs = {"reader": ttnn.ReaderConfigDescriptor, "writer": ttnn.WriterConfigDescriptor, "compute": compute_config}
    kernels = []
    for k in desc.kernels:
        rt = ttnn.RuntimeArgs()
        for (x, y), args in k.runtime_args.items():
            rt[x][y] = resolve_args(args, desc, addresses, noc_xy)
        kernels.append(ttnn.KernelDescriptor(
            kernel_source=kernel_source_text(k.source),
            source_type=ttnn.KernelDescriptor.SourceType.SOURCE_CODE,
            core_ranges=_core_range_set(ttnn, k.core_ranges),
            compile_time_args=ct_args(k.compile_time_args),
            defines=sorted(k.defines.items()),
            runtime_args=rt,
            config=configs[k.role](),
        ))
    cbs = []
    l1: dict[Core, int] = {c: 0 for c in desc.cores}
    for cb in desc.cbs:
        fmt = ttnn.CBFormatDescriptor(buffer_index=cb.index, data_format=_dtype(ttnn, cb.data_format),
                                      page_size=cb.page_size)
        cbs.append(ttnn.CBDescriptor(total_size=cb.total_bytes, core_ranges=_core_range_set(ttnn, cb.core_ranges),
                                     format_descriptors=[fmt]))
        for c in cores_of(cb.core_ranges):
            l1[c] = l1.get(c, 0) + cbs[-1].total_size
    worst = max(l1.values(), default=0)
    if worst > L1_LIMIT_BYTES:
        raise KernelError(f"program {desc.name!r}: circular buffers need {worst} bytes of L1 on one core, over the "
                          f"{L1_LIMIT_BYTES} a core has; use smaller blocks/chunks")
    semaphores = [ttnn.SemaphoreDescriptor(id=i, core_type=ttnn.CoreType.WORKER,
                                           core_ranges=_core_range_set(ttnn, sem.core_ranges),
                                           initial_value=sem.initial_value)
                  for i, sem in enumerate(desc.semaphores)]
    return BuiltProgram(ttnn.ProgramDescriptor(kernels=kernels, semaphores=semaphores, cbs=cbs), l1)


def card_present() -> bool:
    """True when a Tenstorrent device node exists (checked without ttnn, whose device probe aborts without one)."""
    return bool(glob.glob("/dev/tenstorrent*"))


def require_card(what: str) -> None:
    if not card_present():
        raise DeviceError(f"{what} needs a Tenstorrent card: no /dev/tenstorrent* device on this machine; "
                          f"use --backend emu (kernel emulator) or numpy")


def host_tensor(ttnn, spec, array: np.ndarray):
    """A host ttnn tensor in TILE layout and the spec's format, zero-padded to whole tiles (needs a card or a mock
    cluster description, as ttnn's host tilizer does)."""
    x = np.zeros(spec.padded_shape, np.float32)
    a = np.asarray(array, np.float32)
    x[tuple(slice(0, n) for n in a.shape)] = a
    return ttnn.Tensor(x, _dtype(ttnn, spec.dtype), None, ttnn.TILE_LAYOUT)


def read_back(ttnn, spec, host) -> np.ndarray:
    """float32 numpy array of a host TILE tensor, cropped to the spec's logical shape."""
    full = ttnn.to_layout(ttnn.typecast(host, ttnn.float32), ttnn.ROW_MAJOR_LAYOUT).to_numpy()
    return np.asarray(full).reshape(spec.padded_shape)[tuple(slice(0, n) for n in spec.shape)]


_default_device = None


def default_device():
    """Device 0, opened on first use and kept open (closed at exit): a fuzz run issues many programs."""
    global _default_device
    if _default_device is None:
        require_card("opening a ttnn device")
        ttnn = _ttnn()
        _default_device = ttnn.open_device(device_id=0)
        atexit.register(ttnn.close_device, _default_device)
    return _default_device


def run_on_device(desc: ProgramDescription, inputs: Mapping[str, np.ndarray], device=None) -> dict[str, np.ndarray]:
    """Run `desc` with ttnn.generic_op on a card (device 0 unless `device` is given); return its outputs."""
    return run_on_mesh(desc, [inputs], device)[0]


def run_on_mesh(desc: ProgramDescription, inputs_per_device: list[Mapping[str, np.ndarray]],
                mesh=None, finish=None) -> list[dict[str, np.ndarray]]:
    """Run `desc` SPMD with one ttnn.generic_op on `mesh` (a MeshDevice; device 0 when not given): each device
    gets its own input data (row-major mesh order), the program and its runtime args are the same everywhere (a
    mesh tensor's buffer has one address on every device); outputs per device. `finish(ttnn, tensors)` (a
    KernelOp's device_finish) adds device results computed from the program's tensors, read back padded."""
    require_card(f"program {desc.name!r} on the ttnn backend")
    ttnn = _ttnn()
    mesh = mesh if mesh is not None else default_device()
    if len(inputs_per_device) != mesh.get_num_devices():
        raise DeviceError(f"program {desc.name!r}: {len(inputs_per_device)} devices' inputs for a mesh of "
                          f"{mesh.get_num_devices()} devices")
    dram = ttnn.DRAM_MEMORY_CONFIG
    on_device = {}
    for t in desc.tensors:
        if t.role == "input":
            shards = [host_tensor(ttnn, t, inputs[t.name]) for inputs in inputs_per_device]
            on_device[t.name] = ttnn.to_device(ttnn.from_host_shards(shards, mesh.shape), mesh, memory_config=dram)
        else:
            on_device[t.name] = ttnn.allocate_tensor_on_device(
                ttnn.Shape(list(t.padded_shape)), _dtype(ttnn, t.dtype), ttnn.TILE_LAYOUT, mesh, dram)
    addresses = {n: v.buffer_address() for n, v in on_device.items()}
    accessor = {n: list(ttnn.TensorAccessorArgs(v).get_compile_time_args()) for n, v in on_device.items()}
    built = to_program_descriptor(desc, addresses, accessor, device_noc_xy(ttnn, mesh))
    ordered = [on_device[t.name] for t in desc.tensors if t.role == "input"]
    ordered += [on_device[t.name] for t in desc.tensors if t.role == "output"]
    ttnn.generic_op(ordered, built.descriptor)
    outputs = [{} for _ in inputs_per_device]
    for t in desc.tensors:
        if t.role == "output":
            for d, shard in enumerate(ttnn.get_device_tensors(ttnn.from_device(on_device[t.name]))):
                outputs[d][t.name] = read_back(ttnn, t, shard)
    for name, tensor in (finish(ttnn, on_device) if finish is not None else {}).items():
        shards = ttnn.get_device_tensors(ttnn.from_device(ttnn.typecast(tensor, ttnn.float32)))
        for d, shard in enumerate(shards):
            outputs[d][name] = np.asarray(ttnn.to_layout(shard, ttnn.ROW_MAJOR_LAYOUT).to_numpy(), np.float32)
    return outputs
