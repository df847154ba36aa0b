"""`tilegraph sample RUN_DIR`: generate text from a trained run's best checkpoint, printed as it is generated."""

from __future__ import annotations

from tilegraph.commands._args import SEED, float_at_least, int_at_least

HELP = "generate text from a trained run (best checkpoint): temperature + top-k sampling"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a `tilegraph train` run directory")
    parser.add_argument("--prompt", default="ROMEO:", help="text to continue (default 'ROMEO:')")
    parser.add_argument("--tokens", type=int_at_least(0), default=300, help="tokens (bytes, or BPE tokens for a bpe run) to generate (default 300)")
    parser.add_argument(
        "--temperature", type=float_at_least(0), default=0.8, help="softmax temperature; 0 = greedy (default 0.8)"
    )
    parser.add_argument(
        "--top-k", type=int_at_least(1), default=40, help="sample among the k most likely bytes (default 40)"
    )
    parser.add_argument("--seed", type=SEED, default=0, help="sampling seed, >= 0 (default 0)")
    parser.add_argument(
        "--checkpoint", metavar="FILE", help="use this checkpoint instead of the run's best.safetensors"
    )


def run(args) -> int:
    import sys

    from tilegraph.train.sample import Generator, load_model, run_tokenizer, stream

    spec, params, context, _ = load_model(args.run_dir, args.checkpoint)
    generator = Generator(spec, params, context)
    for text in stream(generator, args.prompt, args.tokens, args.temperature, args.top_k, args.seed,
                       tokenizer=run_tokenizer(args.run_dir)):
        sys.stdout.write(text)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0
