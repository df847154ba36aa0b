"""`tilegraph bench KERNEL --device D`: our custom kernel against ttnn's built-in, measured on a card or modelled."""

from __future__ import annotations

from tilegraph.commands._args import POSITIVE

HELP = "Benchmark a custom kernel against ttnn's built-in on a device (measured on a card, modelled without one)."

SHAPE_OPTIONS = ("tokens", "hidden", "ffn", "batch", "seq", "heads", "kv_heads", "head_dim")


def add_arguments(parser) -> None:
    parser.add_argument("kernel", help="a custom kernel (rmsnorm, swiglu, attention, ...) or 'all'")
    parser.add_argument("--device", default="n150", choices=["n150", "n300", "p150"],
                        help="device to benchmark on or model (default n150; n300: per chip)")
    parser.add_argument("--preset", default="nano", choices=["nano", "llama3-8b"],
                        help="shapes: nano-trickster training (default) or llama-3-8b prefill at seq 2048")
    for name in SHAPE_OPTIONS:
        parser.add_argument(f"--{name.replace('_', '-')}", type=POSITIVE, help=f"{name} (overrides the preset)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "bfloat8_b"], help="input format")
    parser.add_argument("--runs", type=POSITIVE, default=20, help="timed runs on a card (median; default 20)")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--plot", metavar="FILE",
                        help="draw a roofline of the device with kernel and baseline (with --sweep: time vs shape)")
    parser.add_argument("--sweep", metavar="OPTION=V1,V2,...", help="repeat over values of one shape option")
    parser.add_argument("--model", action="store_true", help="model even when a card is present")
    parser.add_argument("--knob", action="append", default=[], metavar="KEY=VALUE",
                        help="a program-builder option of our kernel, e.g. math_fidelity=HiFi2 or block=8,2")


def _parse_sweep(text: str) -> tuple[str, list[int]]:
    from tilegraph.errors import TilegraphError

    name, _, values = text.partition("=")
    name = name.strip().lstrip("-").replace("-", "_")
    if name not in SHAPE_OPTIONS or not values:
        raise TilegraphError(f"--sweep {text!r}: write OPTION=V1,V2,... with OPTION one of "
                             f"{', '.join(o.replace('_', '-') for o in SHAPE_OPTIONS)}")
    try:
        vals = [int(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise TilegraphError(f"--sweep {text!r}: the values must be whole numbers separated by commas") from None
    if not vals or min(vals) < 1:
        raise TilegraphError(f"--sweep {text!r}: give at least one value, each >= 1")
    return name, vals


def _parse_knobs(items: list[str]) -> dict:
    """KEY=VALUE builder options: whole numbers, comma-separated tuples of them, true/false, or text."""
    from tilegraph.errors import TilegraphError

    knobs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TilegraphError(f"--knob {item!r}: write KEY=VALUE, e.g. --knob math_fidelity=HiFi2")
        parts = value.split(",")
        if all(p.strip().isdigit() for p in parts):
            knobs[key.strip()] = int(parts[0]) if len(parts) == 1 else tuple(int(p) for p in parts)
        elif value.lower() in ("true", "false"):
            knobs[key.strip()] = value.lower() == "true"
        else:
            knobs[key.strip()] = value
    return knobs


def _line(r) -> str:
    return (f"  {'ours':9s} {r.kernel_us:12.1f} us  bound {r.bound}  utilization {100 * r.utilization:.1f}%\n"
            f"  {'baseline':9s} {r.baseline_us:12.1f} us  bound {r.baseline_bound}  utilization "
            f"{100 * r.baseline_utilization:.1f}%  ({r.baseline})\n"
            f"  baseline / ours = {r.baseline_us / r.kernel_us:.2f}x")


def _header(r) -> str:
    shape = " ".join(f"{k}={v}" for k, v in r.shape.items())
    if r.source == "measured":
        how = f"measured with ttnn on this card (median of runs), fidelity {r.fidelity}"
    else:
        sliced = ""
        if r.scale != 1:
            sliced = (f"; emulated at {' '.join(f'{k}={v}' for k, v in r.emulated_shape.items())} and scaled "
                      f"x{r.scale:g} per core")
        how = (f"MODELLED (no Tenstorrent card here): ours from emulator counters{sliced}; baseline from ttnn's "
               f"kernel structure; fidelity {r.fidelity}")
    chip = " (per chip)" if r.device == "n300" else ""
    return f"{r.kernel} on {r.device}{chip}  {shape}\n  {how}"


def run(args) -> int:
    import json

    from tilegraph.files import write_atomic
    from tilegraph.kernels.registry import KERNEL_OPS
    from tilegraph.perf.bench import BENCH_KERNELS, PRESETS, bench_kernel, run_bench

    names = [k for k in KERNEL_OPS if k in BENCH_KERNELS] if args.kernel == "all" else [args.kernel]
    for name in names:
        bench_kernel(name)  # unknown kernel / no bench shapes: one-line error before any work
    shape = dict(PRESETS[args.preset])
    shape.update({k: getattr(args, k) for k in SHAPE_OPTIONS if getattr(args, k) is not None})
    sweep = _parse_sweep(args.sweep) if args.sweep else None
    knobs = _parse_knobs(args.knob)
    results = []
    for name in names:
        values = sweep[1] if sweep else [None]
        for v in values:
            s = dict(shape, **({sweep[0]: v} if sweep else {}))
            r = run_bench(name, s, args.device, args.dtype, args.runs, knobs=knobs, allow_card=not args.model)
            print(_header(r))
            print(_line(r))
            results.append(r)
    if args.json:
        payload = [r.to_json() for r in results]
        write_atomic(args.json, (json.dumps(payload[0] if len(payload) == 1 else payload, indent=2) + "\n").encode())
        print(f"wrote {args.json}")
    if args.plot:
        from tilegraph.perf.plots import roofline, sweep_plot

        fig = sweep_plot(results, sweep[0]) if sweep else roofline(results)
        fmt = args.plot.rsplit(".", 1)[-1] if "." in args.plot else "png"
        write_atomic(args.plot, lambda f: fig.savefig(f, format=fmt, dpi=120, bbox_inches="tight"))
        print(f"wrote {args.plot}")
    return 0
