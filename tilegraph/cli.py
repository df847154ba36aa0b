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


# The environment variables tilegraph reads: what each does and which commands it affects (the rest ignore it).
ENV_SETTINGS = {
    "TILEGRAPH_THREADS": ("worker threads of the CPU ops", {"train", "sample", "fuzz"}),
    "TILEGRAPH_CPU_CACHE": ("cache folder of the compiled CPU kernels", {"train", "sample", "fuzz"}),
    "TILEGRAPH_EMU_CACHE": ("cache folder of the emulated kernels", {"fuzz"}),
    "TILEGRAPH_EMU_TIMING": ("per-kernel timing of the emulator", {"fuzz"}),
    "TILEGRAPH_EMU_GRID": ("core grid of Programs run on the emu backend (fuzz cases set their own)", set()),
    "TILEGRAPH_EMU_DTYPE": ("device format of Programs run on the emu backend (fuzz cases set their own)", set()),
}


def env_notes(command: str, environ=None) -> list[str]:
    """One note per TILEGRAPH_* variable set: in effect for this command, ignored by it, or unknown (a typo)."""
    import os

    environ = os.environ if environ is None else environ
    notes = []
    for name, value in sorted(environ.items()):
        if not name.startswith("TILEGRAPH_"):
            continue
        if name not in ENV_SETTINGS:
            notes.append(f"note: {name}={value} is not a tilegraph setting and is ignored "
                         f"(known: {', '.join(ENV_SETTINGS)})")  # fmt: skip
            continue
        what, commands = ENV_SETTINGS[name]
        state = "in effect" if command in commands else f"ignored by `tilegraph {command}`"
        notes.append(f"note: {name}={value} ({what}): {state}")
    return notes


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split("\n")[0].split()) or type(e).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every failure a user can cause or fix ends as ONE line on stderr and an exit code:
    bad input (TilegraphError) 2; a file the OS refused (OSError) 1; out of memory 1; text that is not
    UTF-8 2; the reader of our output went away (`| head`) quietly, 141 as for SIGPIPE; Ctrl-C 130.
    Anything else is a bug in tilegraph and keeps its traceback."""
    args = build_parser().parse_args(argv)
    where = f"tilegraph {args.command}"
    try:
        for note in env_notes(args.command):
            print(note, file=sys.stderr)
        return int(args._run(args) or 0)
    except TilegraphError as e:
        print(f"{where}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except MemoryError as e:
        print(f"{where}: error: out of memory ({_one_line(e)}); use smaller sizes (--batch, --seq, ...)",
              file=sys.stderr)  # fmt: skip
        return 1
    except UnicodeError as e:
        print(f"{where}: error: text is not valid UTF-8 ({_one_line(e)})", file=sys.stderr)
        return 2
    except OSError as e:
        from tilegraph.files import describe_os_error

        target = e.filename if e.filename is not None else "a file"
        print(f"{where}: error: {describe_os_error(target, e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{where}: interrupted", file=sys.stderr)
        return 130


def _silence_stdout() -> None:
    # The reader is gone: point stdout at /dev/null so the interpreter's final flush does not raise again.
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
