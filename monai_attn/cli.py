"""The ``monai-attn`` command line: parses arguments and calls the library.

Each subcommand lives in ``monai_attn.commands.<name>`` and exposes ``add_parser(subparsers)``,
which registers its arguments and sets ``func`` (a callable taking the parsed namespace and
returning an exit code). Modules are imported only when the parser is built.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from monai_attn import __version__
from monai_attn.errors import InputError
from monai_attn.quiet import quiet_library_debug_logs

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = ("demo", "synth", "segment", "evaluate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monai-attn",
        description="Grid-gated attention U-Net segmentation toolkit built on MONAI.",
    )
    parser.add_argument("--version", action="version", version=f"monai-attn {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"monai_attn.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s" if args.debug else "%(message)s",
    )
    quiet_library_debug_logs()
    try:
        return int(args.func(args) or 0)
    except (InputError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
