"""The `synood` command line, one module per group of sub-commands. Every sub-command calls the same library
functions as the app."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from synood import __version__
from synood.cli import data, evaluate, metrics, models, neglabel, report, synthesis, training
from synood.cli.common import add_config_args, config_from_args
from synood.errors import UserError

__all__ = ["add_config_args", "build_parser", "config_from_args", "main"]
COMMAND_GROUPS = (models, data, neglabel, evaluate, metrics, synthesis, training, report)


def build_parser() -> argparse.ArgumentParser:
    """The `synood` parser: each command group adds its sub-commands."""
    parser = argparse.ArgumentParser(prog="synood", description="SynOOD Explorer: near-boundary OOD "
                                     "synthesis and CLIP-based OOD detection.")
    parser.add_argument("--version", action="version", version=f"synood {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        return args.func(args, config)
    except UserError as exc:  # bad input, config or run id, a missing model: its one line; anything else is a bug
        print(f"synood: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a folder it may not write: one line; the run database says the rest
        print(f"synood: error: {exc}", file=sys.stderr)
        return 1
