"""`notifyq`: the admin command. Subcommands come from the modules in COMMANDS."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import import_module

import anyio
import psycopg

from notifyq import __version__
from notifyq.errors import NotifyqError

# each module has register(subparsers); a command sets `run` (async, returns an exit status)
COMMANDS = (
    "notifyq.cli.migrate",
    "notifyq.cli.enqueue",
    "notifyq.cli.jobs",
    "notifyq.cli.inspect",
    "notifyq.cli.api",
    "notifyq.cli.ping",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notifyq", description="PostgreSQL job queue, woken by LISTEN/NOTIFY."
    )
    parser.add_argument("--version", action="version", version=f"notifyq {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for module in COMMANDS:
        import_module(module).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        status: int = anyio.run(args.run, args)
    except NotifyqError as exc:
        sys.stderr.write(f"notifyq: {exc}\n")
        return 1
    except psycopg.OperationalError as exc:
        sys.stderr.write(f"notifyq: cannot reach PostgreSQL: {exc}\n")
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
