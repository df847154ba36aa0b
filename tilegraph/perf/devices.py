"""The devices the performance model knows, with the source of every number.

Sources (paths are in github.com/tenstorrent/tt-metal unless they start with tt-isa-documentation/):
- [GEMM]   tech_reports/GEMM_FLOPS/GEMM_FLOPS.md: clocks (WH 1 GHz, BH 1.35 GHz), the compute grid used for
           peak/utilization (8x8 on Wormhole, 13x10 on Blackhole), matmul cycles per 32x32x32 tile per fidelity
           (LoFi 16, HiFi2 32, HiFi3 48, HiFi4 64).
- [FA]     tech_reports/FlashAttention/FlashAttention.md section 2.2: Wormhole has 12 GDDR6 channels, 288 GB/s.
- [NOC]    tt-isa-documentation/WormholeB0/NoC/README.md "Performance": one 256-bit (32 B) flit per cycle per NoC
           at each NIU and link; ~5 cycles NIU<->router, 9 cycles per router hop; one header flit per packet.
- [FACTS]  ../shared/TT_FACTS.md "Hardware" (docs.tenstorrent.com specifications): p150 512 GB/s DRAM, n300 two
           Wormhole chips of 64 compute cores each.
- [SDPA-BH] tenstorrent/tt-metal issue #55767 (SDPA perf findings on Blackhole): a p100a runs 110 worker cores at
           1.35 GHz. Its 28 GB of GDDR6 (Tenstorrent's p100a specification) are 7 of the SoC's 4-GiB channels.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilegraph.errors import TilegraphError


@dataclass(frozen=True)
class Device:
    name: str
    arch: str  # "wormhole_b0" or "blackhole"
    chips: int
    clock_hz: float  # [GEMM]
    grid: tuple[int, int]  # compute cores (x, y) per chip [GEMM]
    dram_bytes_per_s: float  # per chip
    dram_banks: int  # per chip
    noc_bytes_per_cycle: int  # per NIU per NoC [NOC]

    @property
    def cores(self) -> int:
        return self.grid[0] * self.grid[1]


DEVICES = {
    "n150": Device("n150", "wormhole_b0", 1, 1.0e9, (8, 8), 288e9, 12, 32),  # [GEMM] [FA] [NOC]
    "n300": Device("n300", "wormhole_b0", 2, 1.0e9, (8, 8), 288e9, 12, 32),  # per chip as n150 [FACTS]
    # Blackhole: tt-isa-documentation/BlackholeA0/NoC/README.md: 512-bit (64 B) flits, and 4 GiB of GDDR6 per
    # group of DRAM tiles, so the p150's 32 GB [FACTS] are 8 banks; 512 GB/s [FACTS]; 1.35 GHz and 13x10 [GEMM].
    "p150": Device("p150", "blackhole", 1, 1.35e9, (13, 10), 512e9, 8, 64),
    # [SDPA-BH]: 110 cores (as an 11 x 10 grid), 7 channels at the p150's 64 GB/s each. The published SDPA
    # measurements of tilegraph.perf.validation were taken on one.
    "p100a": Device("p100a", "blackhole", 1, 1.35e9, (11, 10), 7 * 64e9, 7, 64),
}


def get_device(name: str) -> Device:
    try:
        return DEVICES[name]
    except KeyError:
        raise TilegraphError(f"unknown device {name!r}; the performance model knows {', '.join(DEVICES)}") from None
