"""`notifyq migrate`: apply pending migrations (safe to run from many processes at once)."""

from __future__ import annotations

import argparse
from typing import Any

from notifyq import db
from notifyq.cli.common import add_connection_options, add_json_option, print_json, settings_from
from notifyq.migrate import migrate


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("migrate", help="apply pending migrations")
    add_connection_options(parser)
    add_json_option(parser)
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    conn = await db.direct_connection(settings)
    async with conn:
        applied = await migrate(conn, schema=settings.schema)
    if args.json:
        print_json(applied)
    elif applied:
        for m in applied:
            print(f"applied {m.version:04d}_{m.name}")  # noqa: T201 - CLI output
    else:
        print(f"schema {settings.schema!r} is up to date")  # noqa: T201 - CLI output
    return 0
