"""`tilegraph fuzz OP`: hypothesis-fuzz a custom-kernel op against its float64 numpy reference."""

from __future__ import annotations

HELP = "Fuzz a custom-kernel op (rmsnorm, swiglu, attention) against its float64 numpy reference."


def add_arguments(parser) -> None:
    parser.add_argument("op", nargs="?", help="op to fuzz: rmsnorm, swiglu or attention (omit with --replay)")
    parser.add_argument("--backend", default="emu", choices=["emu", "numpy", "ttnn"],
                        help="emu: kernels in the host emulator (default); numpy: the numpy op; ttnn: a card")
    parser.add_argument("--examples", type=int, default=50, help="number of hypothesis examples (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    parser.add_argument("--save-dir", default="fuzz-failures",
                        help="where a minimized failing case is saved as JSON + .npz (default fuzz-failures/)")
    parser.add_argument("--replay", metavar="FILE", help="rerun a saved failing case (JSON written by a fuzz run)")


def _print_outcome(prefix: str, o) -> None:
    status = "PASS" if o.ok else "FAIL"
    print(f"{prefix}{status}  max abs err {o.max_abs:.3g}  max rel err {o.max_rel:.3g}  "
          f"worst err/bound {o.ratio:.3g}  ({o.seconds:.2f} s)\n  worst: {o.worst}")


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
    if args.examples < 1:
        raise ShapeError(f"fuzz: --examples {args.examples} must be >= 1")
    r = fuzz.fuzz(args.op, args.backend, args.examples, args.seed, Path(args.save_dir))
    print(f"{r.op} on {r.backend}: {r.examples} cases in {r.seconds:.1f} s  max abs err {r.max_abs:.3g}  "
          f"max rel err {r.max_rel:.3g}  worst err/bound {r.worst_ratio:.3g}")
    print(f"  worst: {r.worst}\n  worst case: {r.worst_case}")
    if r.failure is not None:
        print(f"FAIL (minimized): {r.failure}\n  {r.failure_outcome.worst}")
        if r.saved:
            print(f"  saved: {r.saved}  (rerun: tilegraph fuzz --replay {r.saved})")
        return 1
    print("PASS")
    return 0
