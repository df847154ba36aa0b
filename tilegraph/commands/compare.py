"""`tilegraph compare SPEC1 SPEC2 ... --steps N --out DIR`: train each spec with the same recipe, then draw their
validation curves in one PNG (DIR/compare.png) and write a table (DIR/compare.md: validation loss at the last
step, best validation loss, tokens/s)."""

from __future__ import annotations

HELP = "train several specs with one recipe; validation curves in one PNG and a table (val loss, tokens/s)"


def add_arguments(parser) -> None:
    from tilegraph.train.config import TrainConfig

    d = TrainConfig()
    parser.add_argument("specs", nargs="+", help="model spec YAMLs, e.g. specs/nano-trickster.yaml specs/nano-trickster-mqa.yaml")
    parser.add_argument("--out", required=True, help="directory: one run per spec in DIR/<spec name>/, plus compare.png and compare.md")
    parser.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps per spec (default {d.steps})")
    parser.add_argument("--batch", type=int, default=d.batch, help=f"sequences per step (default {d.batch})")
    parser.add_argument("--seq", type=int, default=d.seq, help=f"tokens per sequence (default {d.seq})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr:g})")
    parser.add_argument("--min-lr", type=float, default=d.min_lr, help=f"final learning rate (default {d.min_lr:g})")
    parser.add_argument("--warmup", type=int, default=d.warmup, help=f"warmup steps (default {d.warmup})")
    parser.add_argument("--eval-interval", type=int, default=d.eval_interval,
                        help=f"steps between validations (default {d.eval_interval})")
    parser.add_argument("--eval-batches", type=int, default=d.eval_batches,
                        help=f"validation batches (default {d.eval_batches})")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"seed of init and batches (default {d.seed})")
    parser.add_argument("--data", help="UTF-8 text file to train on (default: data/tinyshakespeare.txt)")
    parser.add_argument("--no-train", action="store_true",
                        help="only report the runs already in DIR/<spec name>/ (e.g. runs started separately with "
                             "`tilegraph train --out DIR/<name>`), up to their last validation")


def run(args) -> int:
    from tilegraph.train.compare import table, train_all, write_report
    from tilegraph.train.config import TrainConfig

    config = TrainConfig(
        steps=args.steps, batch=args.batch, seq=args.seq, lr=args.lr, min_lr=args.min_lr, warmup=args.warmup,
        eval_interval=args.eval_interval, eval_batches=args.eval_batches, seed=args.seed, data=args.data,
    )
    results = train_all(args.specs, config, args.out, log=lambda s: print(s, flush=True),
                        train=not args.no_train)
    md, png = write_report(results, args.out, config)
    print(table(results))
    print(f"table: {md}\nplot: {png}")
    return 0
