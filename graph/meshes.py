"""Named device meshes and the per-chip / per-link parameters the compiler plans and costs against.

One data table. Sources: /work/shared/TT_FACTS.md "Hardware" (docs.tenstorrent.com specifications and tt-metal tech
reports). Numbers are per chip; a mesh is a 2-D grid of identical chips with a number of ethernet links per mesh axis.

Collective cost (fitted on measured Wormhole all_reduce, TT_FACTS.md):
    all_reduce(N devices, B bytes per device) = 9.07 us + 5.82 us * (N-1) + 2(N-1)/N * B / (10.9 GB/s * links)
all_gather and reduce_scatter move half the volume of an all_reduce (a ring all_reduce *is* a reduce_scatter followed
by an all_gather), with the same fixed and per-hop latency:
    all_gather / reduce_scatter = 9.07 us + 5.82 us * (N-1) + (N-1)/N * B_full / (10.9 GB/s * links)
where B_full is the size of the whole (gathered / un-scattered) tensor. The 10.9 GB/s is one link's fitted bandwidth;
we assume a payload splits evenly over the `links` parallel links of the axis (tt-metal's `num_links`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tilegraph.errors import ShardingError

GB = 1e9
GiB = 2**30

# Fitted CCL line (TT_FACTS.md): fixed latency, per-hop latency, per-link bandwidth.
CCL_FIXED_S = 9.07e-6
CCL_PER_HOP_S = 5.82e-6
CCL_LINK_BW = 10.9 * GB


@dataclass(frozen=True)
class Chip:
    """One chip: compute grid, memories and peak matmul throughput by math fidelity (TFLOPS)."""

    name: str
    arch: str
    cores: int  # Tensix cores usable for compute
    l1_per_core: int  # bytes
    dram_bytes: int
    dram_bw: float  # bytes/s
    peak_tflops: dict  # math fidelity -> TFLOPS: "lofi", "hifi2", "hifi4"

    def peak_flops(self, fidelity: str) -> float:
        try:
            return self.peak_tflops[fidelity] * 1e12
        except KeyError:
            raise ShardingError(
                f"unknown math fidelity {fidelity!r}; use one of {', '.join(sorted(self.peak_tflops))}"
            ) from None


# Wormhole: 1 TFLOPS/core HiFi4, 2 HiFi2, 4 LoFi at 1 GHz (8x16x16 MACs/cycle); the n150 row of the table gives
# 74 / 148 / 262 TFLOPS (BF16 -> HiFi4, BFP8 -> HiFi2, FP8 LoFi) for 72 cores.
WORMHOLE_N150 = Chip("wormhole_b0 (n150)", "wormhole_b0", 72, 1536 * 1024, 12 * GiB, 288 * GB,
                     {"hifi4": 74.0, "hifi2": 148.0, "lofi": 262.0})  # fmt: skip
# n300 row: 131 / 262 / 466 TFLOPS for 128 cores (64 per chip): per chip half of that.
WORMHOLE_N300 = Chip("wormhole_b0 (n300)", "wormhole_b0", 64, 1536 * 1024, 12 * GiB, 288 * GB,
                     {"hifi4": 65.5, "hifi2": 131.0, "lofi": 233.0})  # fmt: skip
# Blackhole p150: 140 cores (firmware may expose 120); ~5.4 TFLOPS/core LoFi -> 120 * 5.4 = 648 LoFi; HiFi2 and
# HiFi4 at 1/2 and 1/4 of LoFi like Wormhole (an assumption: the table gives only LoFi). 32 GB at 512 GB/s.
BLACKHOLE_P150 = Chip("blackhole (p150)", "blackhole", 120, 1536 * 1024, 32 * GiB, 512 * GB,
                      {"hifi4": 162.0, "hifi2": 324.0, "lofi": 648.0})  # fmt: skip


@dataclass(frozen=True)
class Mesh:
    name: str
    shape: tuple[int, int]
    chip: Chip
    links: tuple[int, int]  # ethernet links between neighbours along mesh axis 0 and axis 1
    description: str

    @property
    def num_devices(self) -> int:
        return self.shape[0] * self.shape[1]

    def ccl_seconds(self, kind: str, nbytes: float, axis: int) -> float:
        """Time of one collective over mesh axis `axis`; nbytes = per-device tensor (all_reduce) or whole tensor."""
        n = self.shape[axis]
        if n == 1:
            return 0.0
        bw = CCL_LINK_BW * max(self.links[axis], 1)
        if kind == "all_to_all":  # chunk d steps away crosses min(d, n-d) ring links (ops/all_to_all.py)
            volume = sum(min(d, n - d) for d in range(1, n)) / n * nbytes
        else:
            volume = {"all_reduce": 2.0, "all_gather": 1.0, "reduce_scatter": 1.0}[kind] * (n - 1) / n * nbytes
        return CCL_FIXED_S + CCL_PER_HOP_S * (n - 1) + volume / bw


MESHES: dict[str, Mesh] = {
    m.name: m
    for m in (
        Mesh("n150", (1, 1), WORMHOLE_N150, (0, 0), "Wormhole n150: one chip"),
        Mesh(
            "n300", (1, 2), WORMHOLE_N300, (0, 2), "Wormhole n300: two chips, 2 ethernet links between them"
        ),
        Mesh(
            "t3k", (2, 4), WORMHOLE_N150, (2, 2), "T3000: 4 n300 cards as a 2x4 mesh, 2 links per chip pair"
        ),
        Mesh("t3k-1x8", (1, 8), WORMHOLE_N150, (0, 2), "T3000 as a 1x8 ring, 2 links per chip pair"),
        Mesh(
            "galaxy",
            (8, 4),
            WORMHOLE_N150,
            (4, 3),
            "Galaxy: 32 Wormhole chips, 8x4; 4 links on axis 0, 3 on axis 1",
        ),
        Mesh("p150", (1, 1), BLACKHOLE_P150, (0, 0), "Blackhole p150: one chip"),
    )
}


def get_mesh(name: str) -> Mesh:
    try:
        return MESHES[name]
    except KeyError:
        raise ShardingError(f"unknown mesh {name!r}; valid meshes: {', '.join(MESHES)}") from None
