"""`python -m bench` (or scripts/bench): every scenario on one PostgreSQL in one run.

It finds PostgreSQL like the tests do (DATABASE_URL, else Docker, else an embedded server) but
keeps the server's defaults (fsync on). Prints a table, writes JSON and a PNG to --out.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from bench import backlog, cost, drain, enqueue, latency, report
from bench.common import fresh_database, log, settle
from notifyq import devdb

SCENARIOS = ("floor", "latency", "drain", "enqueue", "backlog", "cost")
RATES = [200.0, 1000.0, 3000.0]
# listen/notify's rounds, each rate beside its floor: the targets take the median round's figures
LATENCY_ROUNDS = 3
# the enqueue ratio's rounds: one round's ratio moves by a fifth on a shared machine, so the median
# wants several (each round runs six 5 s measurements, about 36 s with their checkpoints)
ENQUEUE_ROUNDS = 8


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="every scenario small (about 1.5 minutes)")
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="run only these scenarios")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument(
        "--database",
        default="notifyq_bench",
        help="the database to create for the run (dropped first if it exists, and at the end)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with devdb.postgres() as server:
        results: dict[str, Any] = {"meta": _meta(server)}
        log(f"PostgreSQL: {results['meta']['server']}")
        with fresh_database(server.url, args.database) as url:
            _run(url, set(args.only or SCENARIOS), quick=args.quick, results=results)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    report.write_json(results, args.out / f"bench-{stamp}.json")
    plotted = report.plot(results, args.out / f"latency-{stamp}.png")
    print(report.render(results))
    log(f"wrote {args.out}/bench-{stamp}.json" + (f" and latency-{stamp}.png" if plotted else ""))


def _run(url: str, chosen: set[str], *, quick: bool, results: dict[str, Any]) -> None:
    seconds = 2 if quick else 5
    # latency's p99 wants samples: 2,000 at 200 jobs/s (its 20 slowest), each rate after its warm-up
    latency_seconds = 2 if quick else 10
    backlogs = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    if "latency" in chosen:  # measures its floor too, beside it in each round
        settle(url)
        rounds = 1 if quick else LATENCY_ROUNDS
        results["latency"], results["floor"] = latency.run(
            url, rates=RATES, seconds=latency_seconds, rounds=rounds
        )
    runs: dict[str, Callable[[], Any]] = {
        "floor": lambda: latency.floor(url, rates=RATES, seconds=latency_seconds),
        "drain": lambda: drain.run(url, jobs=20_000 if quick else 100_000, rounds=1 if quick else 3),
        "enqueue": lambda: enqueue.run(
            url,
            seconds=seconds,
            bulk_jobs=50_000 if quick else 200_000,
            rounds=1 if quick else ENQUEUE_ROUNDS,
        ),
        "backlog": lambda: backlog.run(
            url, sizes=backlogs, cycles=50 if quick else 200, rounds=1 if quick else 3
        ),
        "cost": lambda: cost.run(url, rate=200, seconds=seconds),
    }
    for name in SCENARIOS:
        if name in chosen and name not in results:
            settle(url)  # each scenario starts with nothing left to write from the one before
            results[name] = runs[name]()


def _meta(server: devdb.DevDatabase) -> dict[str, Any]:
    with psycopg.connect(server.url) as conn:
        version = conn.execute("SHOW server_version").fetchone()
        settings: dict[str, str] = dict(conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN"
            " ('fsync', 'synchronous_commit', 'shared_buffers', 'max_connections', 'wal_level')"
        ).fetchall())  # fmt: skip
    return {
        "server": f"PostgreSQL {version[0] if version else '?'} ({server.source})",
        "settings": settings,
        "machine": f"{platform.machine()}, {platform.processor() or '?'}, python {platform.python_version()}",
        "cpus": __import__("os").cpu_count(),
    }


if __name__ == "__main__":
    main()
