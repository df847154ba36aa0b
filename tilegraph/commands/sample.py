"""`tilegraph sample RUN_DIR`: generate text from a trained run's best checkpoint."""

from __future__ import annotations

HELP = "generate text from a trained run (best checkpoint): temperature + top-k sampling"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a `tilegraph train` run directory")
    parser.add_argument("--prompt", default="ROMEO:", help="text to continue (default 'ROMEO:')")
    parser.add_argument("--tokens", type=int, default=300, help="tokens (bytes, or BPE tokens for a bpe run) to generate (default 300)")
    parser.add_argument(
        "--temperature", type=float, default=0.8, help="softmax temperature; 0 = greedy (default 0.8)"
    )
    parser.add_argument(
        "--top-k", type=int, default=40, help="sample among the k most likely bytes (default 40)"
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")


def run(args) -> int:
    from tilegraph.errors import DataError
    from tilegraph.train.sample import Generator, generate, load_model, run_tokenizer

    if args.tokens < 0:
        raise DataError(f"--tokens must be >= 0, got {args.tokens}")
    spec, params, context, _ = load_model(args.run_dir)
    text = generate(
        Generator(spec, params, context), args.prompt, args.tokens, args.temperature, args.top_k, args.seed,
        tokenizer=run_tokenizer(args.run_dir),
    )
    print(text)
    return 0
