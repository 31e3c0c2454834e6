"""`notifyq enqueue --task NAME --json '{...}'`: enqueue one job from the shell."""

from __future__ import annotations

import argparse
from typing import Any

import msgspec

from notifyq.cli.common import add_connection_options, settings_from
from notifyq.client import Client
from notifyq.errors import PayloadError


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser("enqueue", help="enqueue one job")
    add_connection_options(parser)
    parser.add_argument("--task", required=True, help="task name")
    parser.add_argument("--json", dest="payload", default="null", help="payload as JSON (default: null)")
    parser.add_argument("--queue", help="queue (default: default)")
    parser.add_argument("--priority", type=int, help="higher runs first (default 0)")
    parser.add_argument("--delay", type=float, help="seconds from now before the job is due")
    parser.add_argument("--max-attempts", type=int, help="attempts before the job fails for good")
    parser.add_argument("--idempotency-key", help="a second enqueue with this key returns the first job")
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    try:
        payload = msgspec.json.decode(args.payload)
    except msgspec.DecodeError as exc:
        raise PayloadError(args.task, f"--json is not valid JSON: {exc}") from None
    async with Client(settings_from(args)) as client:
        job_id = await client.enqueue(
            args.task, payload, queue=args.queue, priority=args.priority, delay=args.delay,
            max_attempts=args.max_attempts, idempotency_key=args.idempotency_key,
        )  # fmt: skip
    print(job_id)  # noqa: T201 - CLI output
    return 0
