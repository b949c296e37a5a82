"""The ``monai-attn`` command line: parses arguments and calls the library.

Each subcommand lives in ``monai_attn.commands.<name>`` and exposes ``add_parser(subparsers)``,
which registers its arguments and sets ``func`` (a callable taking the parsed namespace and
returning an exit code). Modules are imported only when the parser is built.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from monai_attn import __version__
from monai_attn.errors import InputError, one_line_error
from monai_attn.quiet import quiet_library_debug_logs
from monai_attn.io.limits import set_memory_budget

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = ("demo", "synth", "prepare", "segment", "evaluate", "publish")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monai-attn",
        description="Grid-gated attention U-Net segmentation toolkit built on MONAI.",
    )
    parser.add_argument("--version", action="version", version=f"monai-attn {__version__}")
    _add_general_options(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"monai_attn.commands.{name}").add_parser(subparsers)
    _add_to_subcommands(parser)
    return parser


def _add_to_subcommands(parser: argparse.ArgumentParser) -> None:
    """Every (sub-)subcommand accepts the general options too, e.g. ``monai-attn segment ... --debug``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                _add_general_options(command.add_argument_group("general"), default=argparse.SUPPRESS)
                _add_to_subcommands(command)


def _add_general_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: object) -> None:
    """``--debug`` and ``--verbose``; a subcommand's copies default to SUPPRESS so that they do not
    undo the same option given before the subcommand."""
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show full tracebacks on errors (and timestamps in the log)")
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="log more detail")


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived; raised in the main thread so the same clean-up as Ctrl-C runs.

    It derives from KeyboardInterrupt so that every ``except BaseException`` clean-up (partial
    files removed, batches stopped) treats both signals alike.
    """


#: Exit codes after a signal: 128 + the signal number, as shells report them.
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``monai-attn``; returns the exit code (0 ok, 1 error, 2 usage, 130 SIGINT, 143 SIGTERM).

    Errors a user can act on print one line, ``error: <file>: <problem>``, without a traceback
    (``--debug`` shows it). SIGTERM is handled like Ctrl-C: partial files are removed.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s" if args.debug else "%(message)s",
    )
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    quiet_library_debug_logs()
    try:
        return int(args.func(args) or 0)
    except (InputError, OSError, MemoryError) as exc:  # OSError: disk full, permission denied, read-only...
        if args.debug:
            raise
        print(f"error: {one_line_error(exc)}", file=sys.stderr)
        return 1
    except Terminated:
        print("error: terminated (SIGTERM)", file=sys.stderr)
        return EXIT_SIGTERM
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    finally:
        set_memory_budget(None)  # a command's --max-memory ends with the command
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
