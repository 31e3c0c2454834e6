"""The fault run: producers and a fleet of worker processes under injected faults, then invariants.

`scripts/faults [--seconds 60] [--quick]`. Faults, in a bounded loop: SIGKILL a worker (the leader
among them), terminate listener and pool backends, restart PostgreSQL (only the embedded server this
run started), block a worker's event loop longer than its lease, freeze a worker while a flood of
notifications fills the queue, freeze the leader, and slow, reset and silence the links of the one
worker that reaches PostgreSQL through a loopback fault proxy. Worker processes run with wall
clocks an hour off (libfaketime, where installed). Invariants at the end: every job enqueued exists
and succeeded (none lost, none stuck); every job ran at least once; each extra run is explained by
a recorded rescue in its error history; every cron slot of the run was enqueued exactly once; the
fleet still runs new jobs afterwards.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import psycopg

from notifyq import JobSpec, Settings, SyncClient, devdb
from notifyq.migrate import migrate_sync
from tests.faults import tasks  # registers the tasks, so enqueue by name routes to their queue
from tests.faults.fleet import LEASE, Run, leader_pid, log, sql, start_worker, wait_for
from tests.faults.freeze import freeze_leader, freeze_worker_under_a_flood
from tests.faults.links import inject_link_fault, link_proxy

# faults injected once per run (each takes seconds), the others three times
ONCE = ("freeze a worker under a flood", "freeze the leader")
# on the links of the one worker that goes through the fault proxy (tests/faults/links.py)
LINK_FAULTS = ["slow link", "reset link", "silent link"]


def produce(run: Run, seconds: float, stop: threading.Event) -> None:
    """One job every few ms for `seconds`, through reconnects (an enqueue that fails is retried)."""
    n = 0
    deadline = time.monotonic() + seconds
    with SyncClient(Settings(database_url=run.url, pool_max_size=2)) as client:
        while time.monotonic() < deadline and not stop.is_set():
            try:
                run.enqueued.append(client.enqueue(tasks.record, {"n": n}))
                n += 1
            except psycopg.OperationalError:
                time.sleep(0.1)
            time.sleep(0.005)


def inject(run: Run, kind: str, link_fault: Callable[[str], None]) -> None:
    run.faults[kind] += 1
    if kind in LINK_FAULTS:
        link_fault(kind)
    elif kind == "kill worker":
        victim = random.choice(run.workers)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        run.workers.remove(victim)
        start_worker(run)
    elif kind == "kill leader":
        leader = leader_pid(run)
        victims = [p for p in run.workers if p.pid == leader]
        if victims:
            victims[0].send_signal(signal.SIGKILL)
            victims[0].wait(timeout=10)
            run.workers.remove(victims[0])
            start_worker(run)
    elif kind in ("terminate listeners", "terminate pools"):
        name = "notifyq listener" if kind == "terminate listeners" else "notifyq"
        sql(run.url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     f" WHERE application_name = '{name}' AND pid <> pg_backend_pid()")  # fmt: skip
    elif kind == "restart postgres":
        devdb.restart(run.server)
    elif kind == "freeze a worker under a flood":
        freeze_worker_under_a_flood(run)
    elif kind == "freeze the leader":
        freeze_leader(run)
    elif kind == "block event loop":
        with SyncClient(Settings(database_url=run.url)) as client:
            payload = {"n": -len(run.enqueued), "seconds": 2 * int(LEASE)}
            run.enqueued.append(client.enqueue(tasks.block_loop, payload))


def check(run: Run) -> list[str]:
    """The invariants; returns the broken ones (empty: all hold)."""
    problems = list(run.problems)
    produced = f"task <> '{tasks.tick.name}'"  # the producer's jobs; cron's are checked apart
    rows = sql(run.url, f"SELECT status::text, count(*) FROM notifyq.jobs WHERE {produced} GROUP BY 1")
    statuses = {str(s): int(c) for s, c in rows}
    if statuses.get("succeeded", 0) != len(run.enqueued) or len(statuses) != 1:
        problems.append(
            f"every job should have succeeded exactly once: {statuses} for {len(run.enqueued)} enqueued"
        )
    never = sql(run.url, f"SELECT count(*) FROM notifyq.jobs j WHERE {produced} AND NOT EXISTS"
                         " (SELECT 1 FROM fault_runs r JOIN notifyq.jobs k ON k.payload->>'n' = r.n::text"
                         " WHERE k.id = j.id)")  # fmt: skip
    if never[0][0]:
        problems.append(f"{never[0][0]} jobs succeeded without a recorded run")
    unexplained = sql(
        run.url,
        "SELECT count(*) FROM notifyq.jobs j"
        " JOIN (SELECT n, count(*) AS runs FROM fault_runs GROUP BY n) r ON j.payload->>'n' = r.n::text"
        " WHERE r.runs - 1 > jsonb_array_length(j.errors)",
    )
    if unexplained[0][0]:
        problems.append(f"{unexplained[0][0]} jobs ran more often than their rescues explain")
    return problems + check_cron(run)


def cron_slots(run: Run) -> list[datetime]:
    keys = sql(run.url, f"SELECT idempotency_key FROM notifyq.jobs WHERE task = '{tasks.tick.name}'")
    return sorted(datetime.fromisoformat(str(k).split(":", 2)[2]) for (k,) in keys)


def check_cron(run: Run) -> list[str]:
    """Every 2 s slot from the first enqueued to the last: enqueued, and run. (Twice is impossible
    while the unique index on idempotency keys stands; the check would catch its loss.)"""
    slots = cron_slots(run)
    if len(slots) < 2:
        return ["the cron task enqueued fewer than two slots"]
    expected = int((slots[-1] - slots[0]) / timedelta(seconds=2)) + 1
    problems = []
    if len(set(slots)) != len(slots):
        problems.append(f"cron slots enqueued twice: {len(slots) - len(set(slots))}")
    if len(set(slots)) != expected:
        problems.append(f"cron slots missing: {expected - len(set(slots))} of {expected}")
    left = sql(run.url, f"SELECT count(*) FROM notifyq.jobs WHERE task = '{tasks.tick.name}'"
                        " AND status NOT IN ('succeeded', 'queued', 'running')")  # fmt: skip
    if left[0][0]:
        problems.append(f"{left[0][0]} cron jobs did not succeed")
    return problems


def recovered(run: Run, timeout: float) -> bool:
    """The fleet, untouched since the faults, runs a fresh batch."""
    with SyncClient(Settings(database_url=run.url)) as client:
        ids = client.enqueue_many([JobSpec(task=tasks.record, payload={"n": 10**6 + i}) for i in range(50)])
    run.enqueued += ids
    return wait_done(run, timeout)


def wait_done(run: Run, timeout: float) -> bool:
    left = "SELECT count(*) FROM notifyq.jobs WHERE status <> 'succeeded'"
    return wait_for(lambda: not sql(run.url, left)[0][0], timeout) is not None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--quick", action="store_true", help="20 s of faults")
    args = parser.parse_args()
    seconds = 20 if args.quick else args.seconds
    with devdb.postgres(fast=True) as server:
        name = f"notifyq_faults_{os.getpid()}"
        url = devdb.create_database(server.url, name)
        try:
            return execute(Run(server=server, url=url), seconds)
        finally:
            devdb.drop_database(server.url, name)


def execute(run: Run, seconds: float) -> int:
    with psycopg.connect(run.url) as conn:
        migrate_sync(conn, schema="notifyq")
        conn.execute(
            "CREATE TABLE fault_runs (n int NOT NULL, pid int NOT NULL, at timestamptz DEFAULT now())"
        )
    with link_proxy(run) as (portal, proxy):
        return under_faults(run, seconds, functools.partial(inject_link_fault, portal, proxy))


def under_faults(run: Run, seconds: float, link_fault: Callable[[str], None]) -> int:
    kinds = ["kill worker", "kill leader", "terminate listeners", "terminate pools", "block event loop"]
    kinds += LINK_FAULTS
    if run.server.source == "embedded":
        kinds.append("restart postgres")
    else:
        log(f"not restarting PostgreSQL: this run did not start it ({run.server.source})")
    for _ in range(3):
        start_worker(run)
    stop = threading.Event()
    # the producer runs until the last fault is done (bounded all the same)
    producer = threading.Thread(target=produce, args=(run, seconds + 180, stop))
    producer.start()
    try:
        order = kinds * 3
        for i, kind in enumerate(ONCE):
            order.insert((i + 1) * len(order) // (len(ONCE) + 1), kind)
        for kind in order:
            time.sleep(seconds / (len(kinds) * 3))
            log(f"fault: {kind}")
            inject(run, kind, link_fault)
        stop.set()
        producer.join()
        finished = wait_done(run, 120)
        fleet_ok = recovered(run, 60)
        problems = check(run) + ([] if finished else ["jobs still unfinished 120 s after the faults"])
        problems += [] if fleet_ok else ["the fleet did not run a fresh batch after the faults"]
        report(run, problems)
        return 1 if problems else 0
    finally:
        stop.set()
        for proc in run.workers:
            proc.terminate()
        for proc in run.workers:
            proc.wait(timeout=30)


def report(run: Run, problems: list[str]) -> None:
    runs = sql(run.url, "SELECT count(*), count(DISTINCT n) FROM fault_runs")[0]
    rescues = sql(run.url, "SELECT count(*) FROM notifyq.jobs WHERE jsonb_array_length(errors) > 0")[0][0]
    print(f"jobs enqueued       {len(run.enqueued)}")
    print(f"faults injected     {sum(run.faults.values())}: {dict(run.faults)}")
    print(f"handler runs        {runs[0]} for {runs[1]} jobs ({int(runs[0]) - int(runs[1])} duplicates)")
    print(f"jobs with a rescue  {rescues} (every duplicate is one of these)")
    slots = cron_slots(run)
    print(f"cron slots          {len(slots)} (every 2 s, each enqueued once, none missing)")
    print(f"clock skews         {dict(run.skews) or 'none (libfaketime is not installed)'}")
    for what, values in run.timings.items():
        print(f"{what:<27} {', '.join(f'{v:.1f}' for v in values)}")
    print("invariants          " + ("all hold" if not problems else "BROKEN"))
    for problem in problems:
        print(f"  - {problem}")


if __name__ == "__main__":
    sys.exit(main())
