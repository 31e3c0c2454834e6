"""`notifyq queues`, `notifyq workers`, `notifyq cron MODULE…`: what the queue is doing now."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from importlib import import_module
from typing import Any

from notifyq.cli.common import add_connection_options, add_json_option, print_json, print_table, settings_from
from notifyq.client import Client
from notifyq.tasks import registry


def register(subparsers: Any) -> None:
    queues: argparse.ArgumentParser = subparsers.add_parser("queues", help="counts by status per queue")
    workers: argparse.ArgumentParser = subparsers.add_parser("workers", help="live worker processes")
    cron: argparse.ArgumentParser = subparsers.add_parser("cron", help="periodic tasks and their next run")
    cron.add_argument("modules", nargs="+", help="modules declaring the periodic tasks")
    for parser, run in ((queues, run_queues), (workers, run_workers)):
        add_connection_options(parser)
        add_json_option(parser)
        parser.set_defaults(run=run)
    add_json_option(cron)
    cron.set_defaults(run=run_cron)


async def run_queues(args: argparse.Namespace) -> int:
    async with Client(settings_from(args)) as client:
        stats = await client.queue_stats()
        usage = await client.notification_queue_usage()
    if args.json:
        print_json({"queues": stats, "notification_queue_usage": usage})
        return 0
    headers = ["QUEUE", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED", "OLDEST DUE", "DONE/MIN"]
    rows = [
        [
            s.queue,
            s.queued,
            s.running,
            s.succeeded,
            s.failed,
            s.cancelled,
            _age(s.oldest_due_age),
            s.finished_last_minute,
        ]
        for s in stats
    ]
    print_table(headers, rows)
    print(f"\nnotification queue: {usage:.1%} used")  # noqa: T201 - CLI output
    return 0


async def run_workers(args: argparse.Namespace) -> int:
    async with Client(settings_from(args)) as client:
        workers = await client.list_workers()
    if args.json:
        print_json(workers)
        return 0
    now = datetime.now(UTC)
    rows = [
        [
            str(w.id)[:8], w.host, w.pid, ",".join(w.queues), w.concurrency, w.running,
            _age((now - w.last_beat_at).total_seconds()), "leader" if w.leader_since else "",
        ]
        for w in workers
    ]  # fmt: skip
    print_table(["ID", "HOST", "PID", "QUEUES", "CONCURRENCY", "RUNNING", "LAST BEAT", ""], rows)
    return 0


async def run_cron(args: argparse.Namespace) -> int:
    for module in args.modules:
        import_module(module)
    now = datetime.now(UTC)
    schedules = sorted(registry.schedules.values(), key=lambda s: s.task)
    if args.json:
        print_json([{**_asdict(s), "next_run": s.next_slot(now)} for s in schedules])
        return 0
    rows = [[s.task, s.cron, s.timezone, s.catch_up.value, s.next_slot(now).isoformat()] for s in schedules]
    print_table(["TASK", "CRON", "TIMEZONE", "CATCH UP", "NEXT RUN (UTC)"], rows)
    return 0


def _asdict(schedule: Any) -> dict[str, Any]:
    return {f: getattr(schedule, f) for f in schedule.__struct_fields__}


_SECONDS_SHOWN_UP_TO = 120
_MINUTES_SHOWN_UP_TO = 7200


def _age(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    if seconds < _SECONDS_SHOWN_UP_TO:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.0f}m" if seconds < _MINUTES_SHOWN_UP_TO else f"{seconds / 3600:.0f}h"
