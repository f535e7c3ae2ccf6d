"""The command-line dispatcher: ``python -m tools <command> [options]``.

Each command lives in its own module, named in :data:`COMMANDS` together with a one-line help text.
A command module exposes two functions::

    def configure(parser: argparse.ArgumentParser) -> None: ...   # add the command's options
    def run(args: argparse.Namespace) -> int: ...                 # do the work, return the exit status

Only the module of the command being run is imported, so ``python -m tools --help`` (which lists every
command from the table) and every other command stay fast and do not pay for heavy imports.

A command reports bad user input by raising an exception whose class has ``is_user_error = True``
(for instance :class:`codegen.runtime.errors.CodecError`): the dispatcher prints ``error: <message>`` on
one line on stderr and exits with status 2, the status argparse uses for usage errors. Any other
exception is a bug and propagates with its traceback.
"""

import argparse
import importlib
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from typing import Final, NamedTuple, Protocol, cast

__all__ = ["COMMANDS", "DISTRIBUTION", "USER_ERROR_STATUS", "CommandModule", "CommandSpec", "main", "version"]

USER_ERROR_STATUS: Final = 2
BROKEN_PIPE_STATUS: Final = 141  # 128 + SIGPIPE, what a shell reports for a tool killed by a closed pipe


class CommandSpec(NamedTuple):
    """Where a command lives and what it does, in one line (shown by ``--help``)."""

    module: str
    help: str


COMMANDS: Final[Mapping[str, CommandSpec]] = {
    "codegen": CommandSpec(
        "tools.codegen_cmd", "generate the Python codecs in generated/ from SBE schemas, or --check them"
    ),
    "sbe": CommandSpec("tools.sbe_cmd", "decode or encode SBE messages of any schema, driven by its XML"),
    "demo": CommandSpec("tools.demo", "run the main job"),
    "bench": CommandSpec("tools.bench", "run benchmarks and print the measured ratios"),
    "decode": CommandSpec(
        "tools.decode_cmd", "decode Aeron frames and SBE messages from a pcap or pcapng capture"
    ),
    "aeron": CommandSpec("tools.aeron_cmd", "Aeron transport samples: send, recv, ping, pong, throughput"),
    "sim": CommandSpec("tools.sim_cmd", "run the deterministic cluster simulator over a range of seeds"),
    "archive": CommandSpec(
        "tools.archive_cmd",
        "inspect an Aeron Archive directory (ours or Java's): its recordings, catalog and mark file",
    ),
    "cluster": CommandSpec(
        "tools.cluster_cmd",
        "run a local cluster (up), or inspect and repair a node directory, ours or Java's (describe, ...)",
    ),
    "wireshark": CommandSpec(
        "tools.wireshark_cmd",
        "install the generated SBE dissectors into Wireshark: install [--schema XML ...]",
    ),
    "node": CommandSpec(
        "tools.node_cmd", "run one cluster member (transport, archive, consensus module) from a config file"
    ),
    "chaos": CommandSpec(
        "tools.chaos_cmd",
        "a fault run on real node processes (kills, pauses, partitions, loss, clock jumps, full disks) "
        "under key-value clients, then the checkers",
    ),
}


class CommandModule(Protocol):
    """What a command module provides."""

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _prog() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return "python -m tools" if name in ("", "__main__.py", "-c") else name


def _selected_command(argv: Sequence[str]) -> str | None:
    """The first positional argument: the command name (the top level has no options that take values)."""
    for index, arg in enumerate(argv):
        if arg == "--":
            return argv[index + 1] if index + 1 < len(argv) else None
        if not arg.startswith("-"):
            return arg
    return None


def _load(name: str, spec: CommandSpec) -> CommandModule:
    module = importlib.import_module(spec.module)
    missing = [attr for attr in ("configure", "run") if not callable(getattr(module, attr, None))]
    if missing:
        raise TypeError(f"command {name!r}: module {spec.module} does not define {', '.join(missing)}()")
    return cast(CommandModule, module)


DISTRIBUTION: Final = "aeron-cluster-py"
MINIMUM_PYTHON: Final = (3, 12)
"""As ``requires-python`` in pyproject.toml: run from a source tree by an older interpreter, the commands
would fail on their first import of something newer, with a traceback that does not say why."""


def version() -> str:
    """The installed version of this project, or ``"unknown"`` when it runs from a bare source tree."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


class _VersionAction(argparse.Action):
    """``--version``: print the installed version and exit. The version is looked up only when asked:
    reading the package metadata costs every command's start-up some 20 ms otherwise."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version and exit"
        )

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(f"{parser.prog} {version()}")
        parser.exit()


def _build_parser(loaded: tuple[str, CommandModule] | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="Aeron Cluster in Python: command-line tools.",
        epilog="Run '%(prog)s <command> --help' for the options of one command.",
    )
    parser.add_argument("--version", action=_VersionAction)
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, spec in COMMANDS.items():
        sub = subparsers.add_parser(name, help=spec.help, description=spec.help)
        if loaded is not None and loaded[0] == name:
            loaded[1].configure(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the chosen command and return its exit status."""
    if sys.version_info < MINIMUM_PYTHON:
        wanted = ".".join(map(str, MINIMUM_PYTHON))
        print(
            f"python -m tools: Python {wanted} or newer is needed, this is {platform.python_version()} "
            f"({sys.executable}); scripts/setup.sh makes a virtual environment with one",
            file=sys.stderr,
        )
        return USER_ERROR_STATUS
    args_list = sys.argv[1:] if argv is None else list(argv)
    name = _selected_command(args_list)
    loaded: tuple[str, CommandModule] | None = None
    if name is not None and name in COMMANDS:
        loaded = (name, _load(name, COMMANDS[name]))
    parser = _build_parser(loaded)
    args = parser.parse_args(args_list)  # exits 2 on an unknown command or bad options; 0 on --help
    assert loaded is not None and loaded[0] == args.command, "argparse accepted an unloaded command"
    try:
        return loaded[1].run(args)
    except BrokenPipeError:
        # The reader went away (``... | head``): stop quietly, as Unix tools do, and keep Python from
        # complaining again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE_STATUS
    except Exception as exc:
        if getattr(type(exc), "is_user_error", False) is not True:
            raise
        message = str(exc) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return USER_ERROR_STATUS


if __name__ == "__main__":
    raise SystemExit(main())
