"""Tenstorrent's published measurements of its Llama implementations, and the cost model's error against them.

Every value below was read from a file of the tt-metal repository (the search index's copy at the commit named in
SOURCES); none is estimated. Configurations with no published value (training on any mesh, decode of the 2-D
Galaxy layout for models other than 70B, the tt_transformers "TG" rows, which run a different, 1-D
implementation on Galaxy) are left out; docs/cost-model.md says so.

A point is (model spec, mesh, mode, batch, prompt length or decode context, published value, unit, source,
role). Units: "t/s/u" (decode tokens per second per user: the estimate is 1 / step time) and "ttft_ms" (prefill
time to first token of one user). `role` "calibration" points were used to choose the constants of
graph/passes/cost_model.py; "held-out" points were not, and are only reported.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCES = {
    "TT": "tenstorrent/tt-metal models/tt_transformers/PERF.md @040a27c1",
    "GLX": "tenstorrent/tt-metal models/demos/llama3_70b_galaxy/PERF.md @10a00843",
}
SPECS = {"1B": "specs/llama-3.2-1b.yaml", "3B": "specs/llama-3.2-3b.yaml", "8B": "specs/llama-3.1-8b.yaml",
         "70B": "specs/llama-3.1-70b.yaml"}  # fmt: skip
MESH = {"N150": "n150", "N300": "n300", "T3K": "t3k-1x8", "P150": "p150", "TG": "galaxy"}
DECODE_TOKENS = 100  # tt_transformers: 200 decode iterations; the cache grows from the prompt: its mean is +100


@dataclass(frozen=True)
class Point:
    model: str
    device: str
    mode: str  # "decode" or "prefill"
    batch: int
    length: int  # prefill: prompt tokens; decode: the prompt the decode follows
    value: float
    source: str
    table: str
    role: str = "held-out"

    @property
    def unit(self) -> str:
        return "t/s/u" if self.mode == "decode" else "ttft_ms"

    @property
    def context(self) -> int:
        extra = 64 if self.source == "GLX" else DECODE_TOKENS  # GLX: 128 output tokens, mean +64
        return min(self.length + extra, 131072)

    @property
    def published_ms(self) -> float:
        return 1e3 / self.value if self.mode == "decode" else self.value

    def label(self) -> str:
        what = f"ctx {self.context}" if self.mode == "decode" else f"prompt {self.length}"
        return f"{self.model} {self.device} {self.mode} b{self.batch} {what}"


def _tt(table: str, rows: str, batch: int, length: int, calibration=()) -> list[Point]:
    out = []
    for row in rows.strip().splitlines():
        model, device, tsu, ttft = row.split()
        for mode, value in (("decode", tsu), ("prefill", ttft)):
            if value != "-":
                role = "calibration" if (model, device, mode) in calibration else "held-out"
                # tt-metal prefills one user at a time, so a batch's (average) TTFT is a one-user prefill
                b = 1 if mode == "prefill" else batch
                out.append(Point(model, device, mode, b, length, float(value), "TT", table, role))
    return out


# TT "Performance" table (batch 1, prefill 128): model, device, Speed (t/s/u), TTFT (ms).
PUBLISHED: list[Point] = _tt("Performance", """
1B N150 87.8 26
1B N300 105.9 22
1B T3K 119.8 32
3B N150 54.0 55
3B N300 68.0 39
3B T3K 68.5 52
8B N150 28.3 104
8B N300 44.2 67
8B P150 33.6 76
8B T3K 64.3 53
70B T3K 16.6 164
""", 1, 128, calibration={("1B", "N150", "decode"), ("8B", "N300", "decode"), ("70B", "T3K", "decode"),
                         ("8B", "N150", "prefill"), ("1B", "T3K", "prefill")})  # fmt: skip
# TT "Long-context (64K Tokens)" table (batch 1, prefill 64k).
PUBLISHED += _tt("Long-context 64K", """
1B N150 53.0 20066
1B N300 65.2 10949
1B T3K 73.7 5271
3B N150 25.3 46743
3B N300 34.8 22921
3B T3K 41.0 10677
8B N150 16.9 64385
8B N300 26.1 36229
8B T3K 38.1 16165
70B T3K 11.9 74363
""", 1, 65536, calibration={("8B", "N150", "prefill"), ("70B", "T3K", "prefill")})  # fmt: skip
# TT "Short-Context, Batch-32" table (batch 32, prefill 128): Speed (t/s/u), avg TTFT (ms).
PUBLISHED += _tt("Batch-32", """
1B N150 54.7 38
1B N300 64.2 34
1B T3K 69.9 42
3B N150 36.5 69
3B N300 45.8 51
3B T3K 47.8 63
8B N150 22.3 119
8B N300 33.5 80
8B T3K 45.6 64
70B T3K 14.8 192
""", 32, 128, calibration={("8B", "N150", "decode")})  # fmt: skip
# GLX "TT-Metal runs" table (Llama-3.3-70B on Galaxy): input length, batch, TTFT (ms), t/s/u.
for length, batch, ttft, tsu, role in (
    (128, 32, 59.64, 70.01, "calibration"),
    (1024, 1, 160.86, 60.48, "held-out"),
    (1024, 32, None, 56.89, "held-out"),
    (4096, 1, 625.08, 54.07, "held-out"),
    (4096, 32, None, 44.58, "held-out"),
    (8192, 1, 1382.3, 46.72, "calibration"),
    (16384, 1, 3403.12, 36.38, "held-out"),
    (32768, 1, 9482.38, 26.2, "held-out"),
    (65536, 1, 29697.47, 16.43, "held-out"),
    (131072, 1, 102310.21, 10.96, "calibration"),
):
    PUBLISHED.append(Point("70B", "TG", "decode", batch, length, tsu, "GLX", "TT-Metal runs", role))
    if ttft is not None:  # prefill is per user: batch 1
        PUBLISHED.append(Point("70B", "TG", "prefill", 1, length, ttft, "GLX", "TT-Metal runs", role))


@dataclass
class Row:
    point: Point
    estimate_ms: float
    lower_seconds: float

    @property
    def ratio(self) -> float:
        """estimate / published, as times (> 1: the model is pessimistic)."""
        return self.estimate_ms / self.point.published_ms

    @property
    def estimate_value(self) -> float:
        return 1e3 / self.estimate_ms if self.point.mode == "decode" else self.estimate_ms


def regime(point_or_mode, mesh: str | None = None) -> str:
    """The error-band regime: mode x implementation (tt_transformers meshes, or the Galaxy 2-D layout)."""
    if isinstance(point_or_mode, Point):
        mode, mesh = point_or_mode.mode, MESH[point_or_mode.device]
    else:
        mode = point_or_mode
    return f"{mode}/{'llama_galaxy' if mesh == 'galaxy' else 'tt_transformers'}"


def evaluate(points: list[Point] | None = None) -> list[Row]:
    """Lower every published configuration and compare its estimated step time with the published one."""
    import time

    from tilegraph.graph.lowering import lower

    rows = []
    for p in points if points is not None else PUBLISHED:
        t0 = time.perf_counter()
        kw = {"context": p.context} if p.mode == "decode" else {"seq": p.length}
        low = lower(SPECS[p.model], MESH[p.device], p.mode, batch=p.batch, **kw)
        ms = low.cost.ttft_ms if p.mode == "prefill" else low.cost.step_ms
        rows.append(Row(p, ms, time.perf_counter() - t0))
    return rows


def bands(rows: list[Row]) -> dict[str, tuple[float, float, float, int]]:
    """Per regime: (min ratio, median ratio, max ratio, number of points)."""
    import statistics

    out = {}
    for key in sorted({regime(r.point) for r in rows}):
        rs = sorted(r.ratio for r in rows if regime(r.point) == key)
        out[key] = (rs[0], statistics.median(rs), rs[-1], len(rs))
    return out


def table(rows: list[Row]) -> str:
    lines = ["| config | table | role | published | estimate | est/published (time) |", "|---|---|---|---|---|---|"]
    for r in rows:
        p = r.point
        unit = p.unit
        lines.append(f"| {p.label()} | {p.source} {p.table} | {p.role} | {p.value:,g} {unit} | "
                     f"{r.estimate_value:,.1f} {unit} | {r.ratio:.2f} |")  # fmt: skip
    return "\n".join(lines)
