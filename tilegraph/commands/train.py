"""`tilegraph train SPEC`: train a model spec on a text file (default: tiny-shakespeare) on the CPU."""

from __future__ import annotations

import re
import time
from dataclasses import fields
from pathlib import Path

from tilegraph.commands._args import POSITIVE, SEED, float_at_least, int_at_least
from tilegraph.errors import DataError, SpecError

HELP = "train a model spec on tiny-shakespeare (or --data FILE) on the CPU, with checkpoints and --resume"



def add_arguments(parser) -> None:
    from tilegraph.train.config import TrainConfig  # light: no numpy, so `tilegraph --help` stays fast

    d = TrainConfig()
    parser.add_argument(
        "spec", nargs="?", help="model spec YAML, e.g. specs/nano-trickster.yaml (optional with --resume)"
    )
    # Options default to None so that --resume can tell which ones the user set explicitly.
    parser.add_argument(
        "--steps", type=POSITIVE, help=f"optimizer steps (default {d.steps}); with --resume: extend the run to N"
    )
    parser.add_argument("--batch", type=POSITIVE, help=f"sequences per step (default {d.batch})")
    parser.add_argument("--seq", type=POSITIVE, help=f"tokens (bytes) per sequence (default {d.seq})")
    parser.add_argument("--lr", type=float_at_least(0), help=f"peak learning rate (default {d.lr:g})")
    parser.add_argument(
        "--min-lr", type=float_at_least(0), help=f"learning rate at the last step (default {d.min_lr:g})"
    )
    parser.add_argument("--warmup", type=int_at_least(0), help=f"linear warmup steps (default {d.warmup})")
    parser.add_argument(
        "--eval-interval", type=POSITIVE, help=f"steps between validation + checkpoint (default {d.eval_interval})"
    )
    parser.add_argument(
        "--eval-batches", type=POSITIVE, help=f"fixed validation batches per evaluation (default {d.eval_batches})"
    )
    parser.add_argument(
        "--seed", type=SEED, help=f"seed (>= 0) for initialization and batch sampling (default {d.seed})"
    )
    parser.add_argument(
        "--keep", type=POSITIVE, help=f"step checkpoints to keep, besides the best one (default {d.keep})"
    )
    parser.add_argument(
        "--data", help="UTF-8 text file to train on (default: data/tinyshakespeare.txt); with --resume: its new place"
    )
    parser.add_argument(
        "--tokenizer",
        help="bytes (default; vocab 256) or bpe:N (a byte-level BPE of N tokens trained on the training split, "
        "saved as RUN_DIR/tokenizer.json; the spec's vocab_size must be N)",
    )
    parser.add_argument("--out", help="run directory (default runs/<spec-name>-<UTC timestamp>)")
    parser.add_argument(
        "--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its newest checkpoint"
    )
    parser.add_argument(
        "--checkpoint", metavar="FILE", help="with --resume: continue from this checkpoint of the run instead"
    )
    parser.add_argument("--device", help="where to train: cpu (default: the numpy backend), emu (attention, RMSNorm "
                        "and SwiGLU steps, forward and backward, as our kernels in the kernel emulator), or a "
                        "Tenstorrent card: n150, n300, t3k, galaxy (the ttnn backend)")


# Options --resume cannot change (the run's saved recipe decides them); --steps, --data, --keep it accepts.
_RECIPE_OPTIONS = (
    "batch",
    "seq",
    "lr",
    "min_lr",
    "warmup",
    "eval_interval",
    "eval_batches",
    "seed",
    "tokenizer",
)

# A spec name becomes a folder name under runs/: no path separators, no leading dot (no `../`).
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")


def _load_spec_dict(path: str) -> dict:
    from tilegraph.graph.spec import read_spec_file

    where, spec = read_spec_file(path)
    if not isinstance(spec, dict):
        raise SpecError(f"spec file {where} must be a YAML mapping of model fields")
    return spec


def _run_name(spec_dict: dict, spec_path: str) -> str:
    name = str(spec_dict.get("name", Path(spec_path).stem))
    if not _SAFE_NAME.match(name):
        raise SpecError(
            f"spec {spec_path}: name {name!r} cannot name a run folder under runs/ (letters, digits, _ . + - only, "
            f"no / or leading dot); rename it or pass --out DIR"
        )
    return name


def _prepare(args):
    """A fresh or resumed loop.Run, with the programs compiled."""
    from tilegraph.train import loop


    if args.checkpoint and not args.resume:
        raise DataError("--checkpoint chooses where --resume RUN_DIR continues from; add --resume RUN_DIR")
    if args.resume:
        given = [o for o in _RECIPE_OPTIONS if getattr(args, o) is not None] + (["out"] if args.out else [])
        if given:
            flags = ", ".join("--" + o.replace("_", "-") for o in given)
            raise DataError(
                f"--resume continues the run with its saved settings (only --steps, --data, --keep, --checkpoint "
                f"may change); drop {flags}"
            )
        run_state = loop.resume_run(
            args.resume, keep=args.keep, checkpoint=args.checkpoint, steps=args.steps, data_path=args.data
        )
        if args.spec is not None and _load_spec_dict(args.spec) != run_state.spec_dict:
            raise DataError(
                f"spec {args.spec} differs from the spec the run in {args.resume} was trained with"
            )
        if run_state.step >= run_state.config.steps:
            print(
                f"the run in {run_state.run_dir} already finished its {run_state.config.steps} steps",
                flush=True,
            )
        else:
            print(
                f"resuming {run_state.run_dir} at step {run_state.step}/{run_state.config.steps}", flush=True
            )
    else:
        if args.spec is None:
            raise SpecError("give a model spec (e.g. specs/nano-trickster.yaml) or --resume RUN_DIR")
        spec_dict = _load_spec_dict(args.spec)
        defaults = {f.name: getattr(loop.TrainConfig(), f.name) for f in fields(loop.TrainConfig)}
        chosen = {k: getattr(args, k) for k in defaults if getattr(args, k, None) is not None}
        config = loop.TrainConfig(**{**defaults, **chosen})
        name = str(spec_dict.get("name", Path(args.spec).stem)) if args.out else _run_name(spec_dict, args.spec)
        out = args.out or f"runs/{name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        print(
            f"compiling the training program for {name} (batch {config.batch} x seq {config.seq})...",
            flush=True,
        )
        run_state = loop.start_run(spec_dict, config, out)
        c = config
        print(
            f"training {name} for {c.steps} steps ({c.steps * c.batch * c.seq:,} tokens) into {out}; "
            f"validation every {c.eval_interval} steps; Ctrl-C saves and stops",
            flush=True,
        )
    warning = loop.warmup_warning(run_state.config)
    if warning:
        print(warning, flush=True)
    return run_state


def run(args) -> int:
    from tilegraph.train import loop

    try:
        run_state = _prepare(args)
    except KeyboardInterrupt:
        print("\ninterrupted before training started; no checkpoint was written")
        return 130
    try:
        summary = loop.train(run_state)
    except KeyboardInterrupt:  # a second stop signal: stop now, keeping the checkpoints already written
        from tilegraph.train.checkpoint import RunCheckpoints

        latest = RunCheckpoints(run_state.run_dir).latest()
        print(f"\naborted; last checkpoint: {latest or 'none'}")
        return 130
    try:
        print("\n".join(summary.lines()), flush=True)
    except OSError:  # the output went away (| head, closed terminal); the run itself is saved
        pass
    return 0
