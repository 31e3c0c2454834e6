"""The demo: two worker processes, a producer at a steady rate, and the latency they achieved.

Run it with `scripts/demo` (it finds a PostgreSQL like the tests do). Steps: create a fresh
database and migrate it; start two `notifyq-worker` processes; enqueue jobs one per transaction
at a steady rate; wait until all are done; print jobs done, jobs/s and the enqueue-to-start
latency (from just before the enqueue call to the handler's start, both on this machine's clock).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import psycopg

from examples.demo.tasks import STARTS_ENV, Greeting, greet
from notifyq import Client, Settings, devdb
from notifyq.migrate import migrate_sync

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=500.0, help="jobs per second")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with devdb.postgres() as server:
        print(f"PostgreSQL: {server.source} ({_version(server.url)})")
        name = f"notifyq_demo_{os.getpid()}"
        devdb.drop_database(server.url, name)
        url = devdb.create_database(server.url, name)
        try:
            _run(url, args)
        finally:
            devdb.drop_database(server.url, name)


def _run(url: str, args: argparse.Namespace) -> None:
    with psycopg.connect(url) as conn:
        migrate_sync(conn, schema="notifyq")
    with tempfile.TemporaryDirectory(prefix="notifyq-demo-") as starts:
        _run_fleet(url, args, Path(starts))


def _run_fleet(url: str, args: argparse.Namespace, starts: Path) -> None:
    workers = [_start_worker(url, i, starts) for i in range(args.workers)]
    try:
        _wait_for_listeners(url, args.workers)
        print(f"{args.workers} workers listening; enqueueing {args.jobs} jobs at {args.rate:g}/s")
        started = time.perf_counter()
        anyio.run(_produce, url, args.jobs, args.rate)
        _wait_done(url, args.jobs)
        elapsed = time.perf_counter() - started
        _report(url, args.jobs, elapsed, starts)
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            proc.wait(timeout=30)


def _start_worker(url: str, index: int, starts: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT), STARTS_ENV: str(starts)}
    cmd = [sys.executable, "-m", "notifyq.cli.worker", "examples.demo.tasks", "--queues", "demo"]
    cmd += ["--concurrency", "20", "--log-level", "WARNING"]
    print(f"starting worker {index + 1}: notifyq-worker examples.demo.tasks --queues demo --concurrency 20")
    return subprocess.Popen(cmd, env=env, cwd=ROOT)


def _wait_for_listeners(url: str, count: int) -> None:
    deadline = time.monotonic() + 30
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(DISTINCT pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND application_name = 'notifyq listener'"
            ).fetchone()
            if row is not None and row[0] >= count:
                return
            time.sleep(0.1)
    raise SystemExit("workers did not start listening within 30s")


async def _produce(url: str, jobs: int, rate: float) -> None:
    settings = Settings(database_url=url, pool_min_size=1, pool_max_size=4)
    async with Client(settings) as client:
        start = anyio.current_time()
        for i in range(jobs):
            # a steady rate: each job has its slot in time, however long the previous enqueue took
            await anyio.sleep_until(start + i / rate)
            await client.enqueue(greet, Greeting(name=f"job {i}", sent_at=time.time()))
            if (i + 1) % 1000 == 0:
                print(f"  enqueued {i + 1}")


def _wait_done(url: str, jobs: int) -> None:
    deadline = time.monotonic() + 120
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM notifyq.jobs WHERE status = 'succeeded'").fetchone()
            if row is not None and row[0] >= jobs:
                return
            time.sleep(0.05)
    raise SystemExit("jobs did not finish within 120s")


def _report(url: str, jobs: int, elapsed: float, starts: Path) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE attempts = 1)"
            " FROM notifyq.jobs WHERE status = 'succeeded'"
        ).fetchone()
    done, once = row if row is not None else (0, 0)
    latencies = sorted(
        float(line) * 1000 for path in starts.glob("starts-*.txt") for line in path.read_text().split()
    )
    cuts = statistics.quantiles(latencies, n=100)
    print()
    print(f"jobs done          {done} of {jobs} ({once} on their first attempt)")
    print(f"throughput         {done / elapsed:,.0f} jobs/s over {elapsed:.1f}s")
    print(f"enqueue-to-start   p50 {cuts[49]:.2f} ms   p99 {cuts[98]:.2f} ms   max {latencies[-1]:.2f} ms")
    print("                   (from just before the enqueue call to the handler's start)")


def _version(url: str) -> str:
    with psycopg.connect(url) as conn:
        return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]


if __name__ == "__main__":
    main()
