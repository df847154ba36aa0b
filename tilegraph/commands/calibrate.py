"""`tilegraph calibrate`: the cost model against every published Tenstorrent measurement it was fitted on or held
out from (graph/calibration.py), as the tables of docs/cost-model.md."""

from __future__ import annotations

HELP = "Compare the cost model with Tenstorrent's published Llama measurements: calibration and held-out tables."


def add_arguments(parser) -> None:
    parser.add_argument("--role", choices=("calibration", "held-out", "all"), default="all",
                        help="which published points to lower (default: all)")  # fmt: skip


def run(args) -> int:
    from tilegraph.graph.calibration import SOURCES, bands, evaluate, table

    rows = evaluate()
    for role in ("calibration", "held-out"):
        if args.role in (role, "all"):
            print(f"## {role}\n")
            print(table([r for r in rows if r.point.role == role]))
            print()
    print("## error band per regime (estimate / published time, all points)\n")
    print("| regime | min | median | max | points |\n|---|---|---|---|---|")
    for key, (lo, med, hi, n) in bands(rows).items():
        print(f"| {key} | {lo:.2f} | {med:.2f} | {hi:.2f} | {n} |")
    worst = max(max(r.ratio, 1 / r.ratio) for r in rows)
    within = sum(max(r.ratio, 1 / r.ratio) <= 1.5 for r in rows)
    print(f"\n{within} of {len(rows)} published configurations within 1.5x; worst {worst:.2f}x")
    print("sources: " + "; ".join(f"{k} = {v}" for k, v in SOURCES.items()))
    return 0
