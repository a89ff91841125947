"""The `graft` command. Each command group lives in a module of this package with a `register(subparsers)`
function; this module builds the parser, runs the chosen command, and is the only place that turns
errors into messages and exit codes."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from graftlm import __version__
from graftlm.errors import GraftError
from graftlm.redact import RedactingFilter, strip_credentials

# Command modules, in the order their commands appear in `graft --help`.
COMMAND_MODULES = [
    "graftlm.cli.run",        # run, export
    "graftlm.cli.taxonomy",   # taxonomy validate|diff|show
    "graftlm.cli.generate",   # generate
    "graftlm.cli.train",      # mix, train
    "graftlm.cli.evaluate",   # eval, report
    "graftlm.cli.teacher",    # models, serve, chat
    "graftlm.cli.config",     # config
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graft",
        description="Teach a small language model new knowledge and skills with the LAB method.",
    )
    parser.add_argument("--version", action="version", version=f"graft {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:  # from the start: a Ctrl-C while the command modules import is a clean stop too
        parser = build_parser()
        args = parser.parse_args(argv)
        level = logging.WARNING - 10 * min(args.verbose, 2)
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        for handler in logging.getLogger().handlers:
            handler.addFilter(RedactingFilter())
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except GraftError as e:
        print(f"error: {strip_credentials(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
