"""Sub-commands of a command (``archive list``, ``cluster describe``): a table of
``Subcommand(help, configure, run)``, turned into argparse sub-parsers by ``add_subcommands`` and run by
``run_subcommand``, so adding one is adding its two functions and a line in its command's table."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import NamedTuple

__all__ = ["Subcommand", "add_subcommands", "run_subcommand"]


class Subcommand(NamedTuple):
    """One sub-command: its one-line help, its options, and what it does."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def add_subcommands(parser: argparse.ArgumentParser, table: Mapping[str, Subcommand], dest: str) -> None:
    """One required sub-parser per entry of ``table``; the chosen name lands in ``args.<dest>``."""
    subparsers = parser.add_subparsers(dest=dest, metavar="<subcommand>", required=True)
    for name, spec in table.items():
        sub = subparsers.add_parser(name, help=spec.help, description=spec.help)
        spec.configure(sub)
        sub.set_defaults(subcommand_run=spec.run)


def run_subcommand(args: argparse.Namespace) -> int:
    """Run the sub-command ``add_subcommands`` selected."""
    action: Callable[[argparse.Namespace], int] = args.subcommand_run
    return action(args)
