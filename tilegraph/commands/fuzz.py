"""`tilegraph fuzz OP`: hypothesis-fuzz a custom-kernel op against its float64 numpy reference."""

from __future__ import annotations

from tilegraph.commands._args import POSITIVE, SEED

HELP = "Fuzz a custom-kernel op (rmsnorm, swiglu, attention) against its float64 numpy reference."

# What the numbers mean: a case passes when every element's |got - ref| is within its own error bound (derived
# in runtime/fuzz.py); "rel err" divides by |ref| and is large wherever the reference is near 0, so it is shown
# for information only.
CRITERION = "pass: every element's |err| <= its error bound"


def add_arguments(parser) -> None:
    parser.add_argument("op", nargs="?", help="op to fuzz: rmsnorm, swiglu or attention (omit with --replay)")
    parser.add_argument("--backend", default="emu", choices=["emu", "numpy", "ttnn"],
                        help="emu: kernels in the host emulator (default); numpy: the numpy op; ttnn: a card")
    parser.add_argument("--examples", type=POSITIVE, default=50, help="number of hypothesis examples (default 50)")
    parser.add_argument("--seed", type=SEED, default=0, help="hypothesis seed, >= 0 (default 0)")
    parser.add_argument("--save-dir", default="fuzz-failures",
                        help="where a minimized failing case is saved as JSON + .npz (default fuzz-failures/)")
    parser.add_argument("--replay", metavar="FILE", help="rerun a saved failing case (JSON written by a fuzz run)")


def _errors(max_abs: float, max_rel: float, ratio: float) -> str:
    return (f"worst err/bound {ratio:.3g} ({CRITERION}, i.e. <= 1)  max abs err {max_abs:.3g}  "
            f"max rel err {max_rel:.3g} (|err|/|ref|, large where ref ~ 0; for information)")


def _print_outcome(prefix: str, o) -> None:
    status = "PASS" if o.ok else "FAIL"
    print(f"{prefix}{status}  {_errors(o.max_abs, o.max_rel, o.ratio)}  ({o.seconds:.2f} s)\n  worst: {o.worst}")


class _Progress:
    """A bar on a terminal, a line every 10% otherwise: a long fuzz (many --examples) never looks stuck."""

    def __init__(self, op: str, total: int):
        import sys

        from tqdm import tqdm

        self.total = total
        self.tty = sys.stderr.isatty()
        self.bar = tqdm(total=total, desc=f"fuzz {op}", unit="case", disable=not self.tty, leave=False)

    def __call__(self, report) -> None:
        import sys

        if self.tty:
            self.bar.update(1)
        elif self.total >= 50 and report.examples % max(1, self.total // 10) == 0:
            print(f"fuzz {report.op}: {report.examples}/{self.total} cases, worst err/bound so far "
                  f"{report.worst_ratio:.3g}", file=sys.stderr, flush=True)  # fmt: skip

    def close(self) -> None:
        self.bar.close()


def run(args) -> int:
    from pathlib import Path

    from tilegraph.errors import ShapeError
    from tilegraph.kernels.registry import KERNEL_OPS
    from tilegraph.runtime import fuzz

    if args.backend == "ttnn":
        from tilegraph.runtime.ttnn_program import require_card

        require_card("tilegraph fuzz --backend ttnn")
    if args.replay:
        op, case, saved_backend = fuzz.load_case(Path(args.replay))
        backend = args.backend if args.backend != "emu" else saved_backend
        print(f"replaying {op} on {backend}: {case}")
        outcome = fuzz.run_case(op, case, backend)
        _print_outcome("", outcome)
        return 0 if outcome.ok else 1
    if not args.op:
        raise ShapeError(f"fuzz: name an op ({', '.join(KERNEL_OPS)}) or pass --replay FILE")
    if args.op not in KERNEL_OPS:
        raise ShapeError(f"fuzz: op {args.op!r} has no custom kernel; choose one of {', '.join(KERNEL_OPS)}")
    progress = _Progress(args.op, args.examples)
    try:
        r = fuzz.fuzz(args.op, args.backend, args.examples, args.seed, Path(args.save_dir), on_example=progress)
    finally:
        progress.close()
    print(f"{r.op} on {r.backend}: {r.examples} cases in {r.seconds:.1f} s  "
          f"{_errors(r.max_abs, r.max_rel, r.worst_ratio)}")  # fmt: skip
    print(f"  worst: {r.worst}\n  worst case: {r.worst_case}")
    for label, (worst, count) in sorted(r.by_config.items()):
        print(f"  {label}: {count} cases, worst err/bound {worst:.3g}")
    if r.failure is not None:
        print(f"FAIL (minimized): {r.failure}\n  {r.failure_outcome.worst}")
        if r.saved:
            print(f"  saved: {r.saved}  (rerun: tilegraph fuzz --replay {r.saved})")
        return 1
    print(f"PASS: every element of all {r.examples} cases within its error bound "
          f"(worst at {r.worst_ratio:.3g} of its bound)")  # fmt: skip
    return 0
