"""`notifyq ping`: is the database reachable and migrated? Prints the round trip."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import anyio

from notifyq.cli.common import add_connection_options, add_json_option, print_json, settings_from
from notifyq.client import Client


def register(subparsers: Any) -> None:
    ping: argparse.ArgumentParser = subparsers.add_parser("ping", help="check the database is reachable")
    add_connection_options(ping)
    add_json_option(ping)
    ping.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the database")
    ping.set_defaults(run=run_ping)


async def run_ping(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    # the pool would retry for its whole open timeout (30 s); a ping should answer quickly
    with anyio.move_on_after(args.timeout) as scope:
        async with Client(settings_from(args)) as client:
            await client.queue_stats()
    if scope.cancelled_caught:
        sys.stderr.write(f"notifyq: cannot reach PostgreSQL within {args.timeout:g}s\n")
        return 1
    elapsed = time.perf_counter() - started
    if args.json:
        print_json({"ok": True, "seconds": elapsed})
    else:
        print(f"ok: database reachable, schema ready ({elapsed * 1000:.1f} ms)")  # noqa: T201 - CLI output
    return 0
