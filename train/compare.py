"""Train several specs with one recipe and compare them: one validation-curve PNG and a Markdown table.

    results = train_all(["specs/a.yaml", "specs/b.yaml"], config, "runs/compare-x")
    write_report(results, "runs/compare-x")        # compare.png + compare.md

Each spec trains into <out>/<spec name>/ exactly as `tilegraph train` would (same recipe, same seed, so the same
batches); a run directory that already holds checkpoints is resumed instead (a finished one is just read back),
so an interrupted comparison continues where it stopped and separate `tilegraph train --out <out>/<name>` runs
can be collected into one report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tilegraph.train.checkpoint import RunCheckpoints
from tilegraph.train.config import TrainConfig

from tilegraph.errors import DataError


@dataclass
class Result:
    name: str
    spec_path: str
    parameters: int
    val: list[tuple[int, float]]  # (step, validation loss)
    tokens_per_second: float
    run_dir: Path


def _spec_dict(path: str) -> dict:
    from tilegraph.commands.train import _load_spec_dict

    return _load_spec_dict(path)


def collect_one(spec_path: str, out: Path) -> Result:
    """The result of the run of `spec_path` already in <out>/<name>/, read from its latest checkpoint (no
    training; the run may be unfinished: its curve then ends at its last validation)."""
    from tilegraph.graph import load_spec, param_shapes
    from tilegraph.train.checkpoint import load_checkpoint

    spec = load_spec(_spec_dict(spec_path))
    run_dir = out / spec.name
    latest = RunCheckpoints(run_dir).latest()
    if latest is None:
        raise DataError(f"{run_dir} holds no checkpoint of {spec_path}; train it first (drop --no-train)")
    meta = load_checkpoint(latest).meta
    h, cfg = meta["history"], meta["config"]
    tok_s = cfg["batch"] * cfg["seq"] * h["timed_steps"] / h["train_seconds"] if h["train_seconds"] else 0.0
    params = sum(_numel(s) for s in param_shapes(spec).values())
    return Result(spec.name, spec_path, params, [tuple(v) for v in h["val"]], tok_s, run_dir)


def train_one(spec_path: str, config: TrainConfig, out: Path, log=print) -> Result:
    from tilegraph.graph import load_spec, param_shapes
    from tilegraph.train import loop

    spec_dict = _spec_dict(spec_path)
    spec = load_spec(spec_dict)
    run_dir = out / spec.name
    if RunCheckpoints(run_dir).steps():
        run = loop.resume_run(run_dir)
        if run.spec_dict != spec_dict or run.config.steps != config.steps:
            raise DataError(
                f"{run_dir} holds a run of another spec or step count than {spec_path} --steps {config.steps}; "
                f"choose another --out"
            )
        log(f"{spec.name}: continuing {run_dir} at step {run.step}/{config.steps}")
    else:
        log(f"{spec.name}: training {config.steps} steps into {run_dir}")
        run = loop.start_run(spec_dict, config, run_dir)
    summary = loop.train(run)
    if summary.stopped_early:
        raise KeyboardInterrupt
    params = sum(int(_numel(s)) for s in param_shapes(spec).values())
    return Result(spec.name, spec_path, params, list(run.history.val), summary.tokens_per_second, run_dir)


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def train_all(
    spec_paths: list[str], config: TrainConfig, out: str | Path, log=print, train: bool = True
) -> list[Result]:
    out = Path(out)
    names = [str(_spec_dict(p).get("name")) for p in spec_paths]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise DataError(f"specs {', '.join(spec_paths)} share the name {min(dup)!r}; give each a distinct `name`")
    config.validate()
    if not train:
        return [collect_one(p, out) for p in spec_paths]
    return [train_one(p, config, out, log) for p in spec_paths]


def plot(results: list[Result], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in results:
        steps, losses = zip(*r.val)
        ax.plot(steps, losses, "o-", label=f"{r.name} ({r.parameters:,} params)")
    ax.set_xlabel("step")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def table(results: list[Result]) -> str:
    """Markdown: spec, parameters, validation loss at each evaluation's last step, best, tokens/s."""
    lines = [
        "| spec | parameters | val loss at last step | best val loss (step) | training tokens/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        last_step, last = r.val[-1]
        best_step, best = min(r.val, key=lambda sv: sv[1])
        lines.append(
            f"| {r.name} | {r.parameters:,} | {last:.4f} (step {last_step}) | {best:.4f} ({best_step}) "
            f"| {r.tokens_per_second:,.0f} |"
        )
    return "\n".join(lines)


def write_report(results: list[Result], out: str | Path, config: TrainConfig) -> tuple[Path, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    steps = max(r.val[-1][0] for r in results)
    title = f"{len(results)} specs, {steps} steps, batch {config.batch} x seq {config.seq}, lr {config.lr:g}"
    png = plot(results, out / "compare.png", title)
    curves = ["", "validation loss at every evaluation:", "", "| step | " + " | ".join(r.name for r in results) + " |",
              "|---:|" + "---:|" * len(results)]
    for i, (step, _) in enumerate(results[0].val):
        row = [f"{r.val[i][1]:.4f}" if i < len(r.val) else "" for r in results]
        curves.append(f"| {step} | " + " | ".join(row) + " |")
    md = out / "compare.md"
    md.write_text(f"# {title}\n\n" + table(results) + "\n" + "\n".join(curves) + f"\n\nplot: {png.name}\n")
    return md, png
