"""The `tilegraph` command line.

Each subcommand is a module in tilegraph/commands/ with `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`; they are discovered, so adding a command touches one file. Modules keep heavy imports
inside `run` so `tilegraph --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from tilegraph.errors import TilegraphError


def _command_modules():
    import tilegraph.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            yield info.name.replace("_", "-"), importlib.import_module(f"tilegraph.commands.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tilegraph", description="Kernels and a compiler for transformer ops on Tenstorrent hardware.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _command_modules():
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except TilegraphError as e:
        # Bad input is a one-line message, never a traceback.
        print(f"tilegraph {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
