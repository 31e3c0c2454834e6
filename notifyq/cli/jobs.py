"""`notifyq jobs list|show|cancel|retry`: inspect and steer single jobs."""

from __future__ import annotations

import argparse
from typing import Any

from notifyq.cli.common import add_connection_options, add_json_option, print_json, print_table, settings_from
from notifyq.client import Client
from notifyq.models import JobStatus


def register(subparsers: Any) -> None:
    jobs: argparse.ArgumentParser = subparsers.add_parser("jobs", help="list, show, cancel or retry jobs")
    actions = jobs.add_subparsers(title="actions", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="jobs, newest first")
    listing.add_argument("--queue")
    listing.add_argument("--task")
    listing.add_argument("--status", choices=[s.value for s in JobStatus])
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--before", type=int, help="only jobs with a smaller id (the next page)")
    listing.set_defaults(run=run_list)
    for name, run in (("show", run_show), ("cancel", run_cancel), ("retry", run_retry)):
        action = actions.add_parser(name, help=f"{name} one job")
        action.add_argument("job_id", type=int)
        action.set_defaults(run=run)
    for action in (listing, *(actions.choices[n] for n in ("show", "cancel", "retry"))):
        add_connection_options(action)
        add_json_option(action)


async def run_list(args: argparse.Namespace) -> int:
    status = JobStatus(args.status) if args.status else None
    async with Client(settings_from(args)) as client:
        jobs = await client.list_jobs(
            queue=args.queue, task=args.task, status=status, before=args.before, limit=args.limit
        )
    if args.json:
        print_json(jobs)
        return 0
    rows = [
        [j.id, j.queue, j.task, j.status.value, f"{j.attempts}/{j.max_attempts}", j.run_at.isoformat()]
        for j in jobs
    ]
    print_table(["ID", "QUEUE", "TASK", "STATUS", "ATTEMPTS", "RUN AT"], rows)
    return 0


async def run_show(args: argparse.Namespace) -> int:
    async with Client(settings_from(args)) as client:
        job = await client.get(args.job_id)
    if args.json:
        print_json(job)
        return 0
    for field in job.__struct_fields__:
        if field != "errors":
            print(f"{field:20} {getattr(job, field)}")  # noqa: T201 - CLI output
    for error in job.errors:
        print(f"--- attempt {error.attempt} at {error.at.isoformat()}\n{error.error}")  # noqa: T201 - CLI output
    return 0


async def run_cancel(args: argparse.Namespace) -> int:
    async with Client(settings_from(args)) as client:
        result = await client.cancel(args.job_id)
    if args.json:
        print_json(result)
    elif result.status is None:
        print(f"job {args.job_id} not found")  # noqa: T201 - CLI output
    else:
        said = "cancel requested (running)" if result.requested else result.status.value
        print(f"job {args.job_id}: {said}")  # noqa: T201 - CLI output
    return 0 if result.status is not None else 1


async def run_retry(args: argparse.Namespace) -> int:
    async with Client(settings_from(args)) as client:
        result = await client.retry(args.job_id)
    if args.json:
        print_json(result)
    else:
        said = "queued again" if result.retried else f"not retried: it is {result.previous.value}"
        print(f"job {args.job_id}: {said}")  # noqa: T201 - CLI output
    return 0 if result.retried else 1
