"""Program descriptions: what a custom-kernel program builder produces, and what every consumer reads.

One `ProgramDescription` says everything a tt-metal program needs: the core grid and which cores run which kernel,
the circular buffers (index, data format, page size, pages), the DRAM tensors (tile layout, interleaved pages),
compile-time args, defines, per-core runtime args and the compute config. It is consumed by
- the emulator (`tilegraph.runtime.emulator.run_program`): kernels compiled for the host, run as threads per core;
- the ttnn backend (`runtime/ttnn_program.py`): turned into a `ttnn.ProgramDescriptor` for `ttnn.generic_op`;
- the cost / memory checks (`ProgramDescription.l1_bytes_per_core`).

Buffer addresses, TensorAccessor compile-time args and NoC coordinates are not known when a program is described
(they depend on where the consumer allocates the tensors and on the chip's coordinate layout), so runtime and
compile-time arg lists may hold placeholders:
- `BufferAddress("x")` in runtime args: the DRAM address of tensor "x" (one uint32 word);
- `TensorAccessorCTA("x")` in compile-time args: `TensorAccessorArgs` of tensor "x", which for an interleaved
  DRAM tensor is two words `[ArgConfig::IsDram (=2), aligned page size]` (tt-metal 0.81.1 tensor_accessor_args.h);
- `NocX(core)` / `NocY(core)`: the NoC x / y coordinate of a logical core, what `get_noc_addr(x, y, addr)` and
  `get_noc_multicast_addr` take on a card (the emulator maps logical -> Wormhole B0 NOC0 itself; the ttnn backend
  asks the device, `worker_core_from_logical_core`).
Consumers resolve them with `resolve_args`.

Semaphores (`semaphores=[SemaphoreSpec(core_ranges, initial_value), ...]`): a semaphore's id is its index in the
list, as tt-metal's CreateSemaphore returns it; kernels get its L1 address with `get_semaphore(id)`.

Example (a copy kernel over two cores)::

    from tilegraph.kernels.description import *
    cores = CoreRange((0, 0), (1, 0))
    desc = ProgramDescription(
        name="copy",
        tensors=[TensorSpec("x", (64, 64), "bfloat16", "input"), TensorSpec("y", (64, 64), "bfloat16", "output")],
        cbs=[CBSpec(index=0, data_format="bfloat16", num_pages=2, core_ranges=(cores,)),
             CBSpec(index=16, data_format="bfloat16", num_pages=2, core_ranges=(cores,))],
        kernels=[
            KernelSpec("reader", "copy/reader.cpp", (cores,), compile_time_args=(TensorAccessorCTA("x"),),
                       runtime_args={(0, 0): (BufferAddress("x"), 0, 2), (1, 0): (BufferAddress("x"), 2, 2)}),
            KernelSpec("compute", "copy/compute.cpp", (cores,), runtime_args={(0, 0): (2,), (1, 0): (2,)}),
            KernelSpec("writer", "copy/writer.cpp", (cores,), compile_time_args=(TensorAccessorCTA("y"),),
                       runtime_args={(0, 0): (BufferAddress("y"), 0, 2), (1, 0): (BufferAddress("y"), 2, 2)}),
        ],
        grid=(2, 1),
    )
    desc.l1_bytes_per_core()   # {(0, 0): 8192, (1, 0): 8192}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from tilegraph.errors import KernelError
from tilegraph.tiles import FACE, TILE, TILE_BYTES, padded_shape  # noqa: F401 (FACE, TILE: part of this API)

DATA_FORMATS = ("float32", "bfloat16", "bfloat8_b")
# Wormhole / Blackhole L1 per Tensix core (1.5 MB). Firmware reserves some of it; CBs must stay well below.
L1_BYTES_PER_CORE = 1536 * 1024
# The one L1 budget: circular-buffer bytes per core a program may use (the rest is left to firmware, kernel
# binaries and stacks). validate() rejects more; builders that can trade L1 for speed (attention's fp32
# intermediates, double-buffered Q) choose the faster form only while it fits.
L1_CB_BUDGET = 1200 * 1024
KERNEL_ROLES = ("reader", "compute", "writer")
# Semaphores per core (tt-metal's NUM_SEMAPHORES host constant: ids 0..15).
MAX_SEMAPHORES = 16
MATH_FIDELITIES = ("LoFi", "HiFi2", "HiFi3", "HiFi4")
# The ArgConfig flag of an interleaved DRAM tensor (hostdevcommon/tensor_accessor/arg_config.hpp: IsDram = 1 << 1).
TENSOR_ACCESSOR_IS_DRAM = 1 << 1

Core = tuple[int, int]  # (x, y) logical core coordinate, as tt-metal's CoreCoord


@dataclass(frozen=True)
class CoreRange:
    """Inclusive rectangle of cores, like tt-metal's CoreRange(start, end)."""

    start: Core
    end: Core

    def __post_init__(self):
        if self.start[0] > self.end[0] or self.start[1] > self.end[1]:
            raise KernelError(f"CoreRange start {self.start} is past end {self.end}; give start <= end per axis")

    def cores(self) -> Iterator[Core]:
        for y in range(self.start[1], self.end[1] + 1):
            for x in range(self.start[0], self.end[0] + 1):
                yield (x, y)


def cores_of(ranges: Sequence[CoreRange]) -> list[Core]:
    """All cores of a core-range set, in row-major order, without duplicates."""
    seen: dict[Core, None] = {}
    for r in ranges:
        for c in r.cores():
            seen[c] = None
    return list(seen)


@dataclass(frozen=True)
class BufferAddress:
    """Runtime-arg placeholder: the DRAM address of the named tensor."""

    tensor: str


@dataclass(frozen=True)
class TensorAccessorCTA:
    """Compile-time-arg placeholder: the TensorAccessorArgs words of the named tensor (2 words when interleaved)."""

    tensor: str


@dataclass(frozen=True)
class NocX:
    """Runtime-arg placeholder: the NoC x coordinate of logical core `core` (as get_noc_addr(x, y, addr) takes it)."""

    core: Core


@dataclass(frozen=True)
class NocY:
    """Runtime-arg placeholder: the NoC y coordinate of logical core `core`."""

    core: Core


Arg = int | BufferAddress | TensorAccessorCTA | NocX | NocY


@dataclass(frozen=True)
class TensorSpec:
    """A DRAM tensor in tile layout, interleaved by pages (one page = one 32x32 tile).

    `shape` is logical; the last two dims are padded up to multiples of 32 (padding is zero on the way in and dropped
    on the way out). Pages are numbered row-major over (leading dims..., tile row, tile col)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    role: str = "input"  # "input" (read by kernels) or "output" (written by kernels)

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if not self.name.isidentifier():
            raise KernelError(f"tensor name {self.name!r} must be an identifier (letters, digits, underscore)")
        if self.dtype not in DATA_FORMATS:
            raise KernelError(f"tensor {self.name!r}: dtype {self.dtype!r} unsupported; use one of {DATA_FORMATS}")
        if self.role not in ("input", "output"):
            raise KernelError(f"tensor {self.name!r}: role {self.role!r} must be 'input' or 'output'")
        if len(self.shape) < 2 or min(self.shape) < 1:
            raise KernelError(f"tensor {self.name!r}: shape {self.shape} needs >= 2 dims, each >= 1")

    @property
    def padded_shape(self) -> tuple[int, ...]:
        return padded_shape(self.shape)

    @property
    def page_size(self) -> int:
        return TILE_BYTES[self.dtype]

    @property
    def num_pages(self) -> int:
        *lead, h, w = self.padded_shape
        return math.prod(lead) * (h // TILE) * (w // TILE)

    @property
    def nbytes(self) -> int:
        return self.num_pages * self.page_size


@dataclass(frozen=True)
class CBSpec:
    """A circular buffer on each core of `core_ranges`: `num_pages` pages of `page_size` bytes in `data_format`."""

    index: int
    data_format: str
    num_pages: int
    core_ranges: tuple[CoreRange, ...]
    page_size: int = 0  # 0 = one tile of data_format

    def __post_init__(self):
        object.__setattr__(self, "core_ranges", tuple(self.core_ranges))
        if not 0 <= self.index < 32:
            raise KernelError(f"CB index {self.index} out of range; tt-metal has CBs 0..31")
        if self.data_format not in DATA_FORMATS:
            raise KernelError(f"CB {self.index}: data format {self.data_format!r} unsupported; use {DATA_FORMATS}")
        if self.page_size == 0:
            object.__setattr__(self, "page_size", TILE_BYTES[self.data_format])
        if self.num_pages < 1 or self.page_size < 1:
            raise KernelError(f"CB {self.index}: needs num_pages >= 1 and page_size >= 1")

    @property
    def total_bytes(self) -> int:
        return self.num_pages * self.page_size


@dataclass(frozen=True)
class SemaphoreSpec:
    """A 32-bit semaphore word in the L1 of each core of `core_ranges`, set to `initial_value` before the kernels
    start (tt-metal's CreateSemaphore / ttnn.SemaphoreDescriptor). Its id is its index in ProgramDescription.semaphores."""

    core_ranges: tuple[CoreRange, ...]
    initial_value: int = 0

    def __post_init__(self):
        object.__setattr__(self, "core_ranges", tuple(self.core_ranges))


@dataclass(frozen=True)
class ComputeConfig:
    """Compute-kernel configuration (ttnn.ComputeConfigDescriptor)."""

    math_fidelity: str = "HiFi4"
    fp32_dest_acc_en: bool = False
    math_approx_mode: bool = False
    dst_full_sync_en: bool = False  # False: DST is double-buffered, half of it per tile_regs_acquire
    unpack_to_dest_fp32: tuple[int, ...] = ()  # CB indices unpacked straight to DST as fp32 (UnpackToDestFp32)

    def __post_init__(self):
        if self.math_fidelity not in MATH_FIDELITIES:
            raise KernelError(f"math_fidelity {self.math_fidelity!r} unknown; use one of {MATH_FIDELITIES}")

    @property
    def dst_tiles(self) -> int:
        """Tiles one tile_regs_acquire may use: 16 bf16 tiles of DST, halved for fp32 and for double buffering."""
        tiles = 16 // (2 if self.fp32_dest_acc_en else 1)
        return tiles if self.dst_full_sync_en else tiles // 2


@dataclass(frozen=True)
class KernelSpec:
    """One kernel (reader, compute or writer) on a set of cores."""

    role: str
    # path relative to kernels/, e.g. "rmsnorm/reader.cpp", or absolute (a test kernel, or one of tt-metal's own
    # kernels in the ttnn wheel: tilegraph.kernels.ttnn_kernel_path("ttnn/cpp/ttnn/operations/...cpp"))
    source: str
    core_ranges: tuple[CoreRange, ...]
    compile_time_args: tuple[Arg, ...] = ()
    defines: Mapping[str, str] = field(default_factory=dict)
    runtime_args: Mapping[Core, tuple[Arg, ...]] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "core_ranges", tuple(self.core_ranges))
        object.__setattr__(self, "compile_time_args", tuple(self.compile_time_args))
        object.__setattr__(self, "defines", dict(self.defines))
        object.__setattr__(self, "runtime_args", {tuple(c): tuple(a) for c, a in self.runtime_args.items()})
        if self.role not in KERNEL_ROLES:
            raise KernelError(f"kernel {self.source}: role {self.role!r} must be one of {KERNEL_ROLES}")

    @property
    def cores(self) -> list[Core]:
        return cores_of(self.core_ranges)


@dataclass(frozen=True)
class ProgramDescription:
    """A whole tt-metal program: tensors, CBs, kernels, compute config and the core grid (x, y)."""

    name: str
    tensors: Sequence[TensorSpec]
    cbs: Sequence[CBSpec]
    kernels: Sequence[KernelSpec]
    compute_config: ComputeConfig = ComputeConfig()
    grid: Core = (8, 8)
    semaphores: Sequence[SemaphoreSpec] = ()

    def __post_init__(self):
        object.__setattr__(self, "tensors", tuple(self.tensors))
        object.__setattr__(self, "cbs", tuple(self.cbs))
        object.__setattr__(self, "kernels", tuple(self.kernels))
        object.__setattr__(self, "semaphores", tuple(self.semaphores))
        self.validate()  # once, here: a description that exists is consistent, so no consumer re-checks it

    def tensor(self, name: str) -> TensorSpec:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KernelError(f"program {self.name!r}: no tensor named {name!r}; have {[t.name for t in self.tensors]}")

    @property
    def cores(self) -> list[Core]:
        """Every core that runs at least one kernel."""
        return cores_of([r for k in self.kernels for r in k.core_ranges])

    def l1_bytes_per_core(self) -> dict[Core, int]:
        """Bytes of L1 each core spends on circular buffers (the sum of its CBs' sizes)."""
        used: dict[Core, int] = {c: 0 for c in self.cores}
        for cb in self.cbs:
            for c in cores_of(cb.core_ranges):
                used[c] = used.get(c, 0) + cb.total_bytes
        return used

    def max_l1_bytes(self) -> int:
        return max(self.l1_bytes_per_core().values(), default=0)

    def validate(self) -> None:
        """Raise KernelError for an inconsistent description (names the field and the fix)."""
        names = [t.name for t in self.tensors]
        if len(set(names)) != len(names):
            raise KernelError(f"program {self.name!r}: duplicate tensor names {names}")
        gx, gy = self.grid
        for k in self.kernels:
            for x, y in k.cores:
                if not (0 <= x < gx and 0 <= y < gy):
                    raise KernelError(f"program {self.name!r}: kernel {k.source} on core ({x},{y}) outside grid {self.grid}")
            for core in k.runtime_args:
                if core not in k.cores:
                    raise KernelError(f"program {self.name!r}: kernel {k.source} has runtime args for core {core} "
                                      f"which it does not run on")
            for a in k.compile_time_args:
                if isinstance(a, (NocX, NocY)):
                    raise KernelError(f"program {self.name!r}: kernel {k.source} compile-time arg {a!r}: NoC "
                                      f"coordinates are runtime args here (move it to runtime_args)")
            for args in [k.compile_time_args, *k.runtime_args.values()]:
                for a in args:
                    if isinstance(a, (BufferAddress, TensorAccessorCTA)):
                        self.tensor(a.tensor)
                    elif isinstance(a, (NocX, NocY)):
                        x, y = a.core
                        if not (0 <= x < gx and 0 <= y < gy):
                            raise KernelError(f"program {self.name!r}: kernel {k.source} arg {a!r} names a core "
                                              f"outside grid {self.grid}; give a logical core inside the grid")
                    elif not isinstance(a, int) or not 0 <= a < 2**32:
                        raise KernelError(f"program {self.name!r}: kernel {k.source} arg {a!r} is not a uint32")
        for role in KERNEL_ROLES:
            seen: dict[Core, str] = {}
            for k in self.kernels:
                if k.role != role:
                    continue
                for c in k.cores:
                    if c in seen:
                        raise KernelError(f"program {self.name!r}: core {c} runs two {role} kernels "
                                          f"({seen[c]}, {k.source})")
                    seen[c] = k.source
        per_core: dict[tuple[Core, int], None] = {}
        for cb in self.cbs:
            for c in cores_of(cb.core_ranges):
                if (c, cb.index) in per_core:
                    raise KernelError(f"program {self.name!r}: CB {cb.index} defined twice on core {c}")
                per_core[(c, cb.index)] = None
        cc = self.compute_config
        formats = {cb.index: cb.data_format for cb in self.cbs}
        for i in cc.unpack_to_dest_fp32:
            if formats.get(i) != "float32":
                what = f"a {formats[i]} CB" if i in formats else "a CB this program does not define"
                raise KernelError(f"program {self.name!r}: compute_config.unpack_to_dest_fp32 names CB {i}, {what}; "
                                  f"only float32 CBs unpack straight to DST")
        if cc.unpack_to_dest_fp32 and not cc.fp32_dest_acc_en:
            raise KernelError(f"program {self.name!r}: compute_config.unpack_to_dest_fp32 needs fp32_dest_acc_en=True "
                              f"(DST holds 32-bit datums only in fp32 mode)")
        self._validate_semaphores()
        worst = self.max_l1_bytes()
        if worst > L1_CB_BUDGET:
            raise KernelError(f"program {self.name!r}: circular buffers need {worst} bytes of L1 on one core, "
                              f"more than {L1_CB_BUDGET}; use fewer/smaller CB pages")


    def _validate_semaphores(self) -> None:
        gx, gy = self.grid
        for sem_id, sem in enumerate(self.semaphores):
            where = f"program {self.name!r}: semaphores[{sem_id}]"
            if not isinstance(sem, SemaphoreSpec):
                raise KernelError(f"{where} is {sem!r}; give a SemaphoreSpec(core_ranges, initial_value)")
            if not sem.core_ranges:
                raise KernelError(f"{where} has no core_ranges; name the cores that hold it")
            v = sem.initial_value
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**32:
                raise KernelError(f"{where}.initial_value {v!r} is not a uint32; give an int in 0..2**32-1")
            for x, y in cores_of(sem.core_ranges):
                if not (0 <= x < gx and 0 <= y < gy):
                    raise KernelError(f"{where}: core ({x},{y}) is outside grid {self.grid}; shrink its core_ranges")
        if len(self.semaphores) > MAX_SEMAPHORES:
            raise KernelError(f"program {self.name!r}: {len(self.semaphores)} semaphores, but a core has ids "
                              f"0..{MAX_SEMAPHORES - 1} only (tt-metal NUM_SEMAPHORES); reuse semaphores")


def resolve_args(args: Sequence[Arg], desc: ProgramDescription, addresses: Mapping[str, int],
                 noc_xy: Callable[[Core], tuple[int, int]] | None = None) -> list[int]:
    """Replace placeholders with words: BufferAddress -> addresses[name]; TensorAccessorCTA -> [IsDram, page size];
    NocX / NocY -> noc_xy(core)[0] / [1] (the consumer's logical -> NoC coordinate map)."""
    out: list[int] = []
    for a in args:
        if isinstance(a, BufferAddress):
            out.append(int(addresses[a.tensor]))
        elif isinstance(a, TensorAccessorCTA):
            out.extend([TENSOR_ACCESSOR_IS_DRAM, desc.tensor(a.tensor).page_size])
        elif isinstance(a, (NocX, NocY)):
            if noc_xy is None:
                raise KernelError(f"program {desc.name!r}: {a!r} needs the consumer's logical -> NoC coordinate map "
                                  f"(resolve_args(..., noc_xy=...)); compile-time args cannot hold NoC coordinates")
            out.append(int(noc_xy(tuple(a.core))[0 if isinstance(a, NocX) else 1]))
        else:
            out.append(int(a))
    return out
