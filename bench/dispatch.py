"""A probe, not a scenario: what the claim's round trip adds to a job's latency at light load.

`.venv/bin/python -m bench.dispatch` (in the .venv that scripts/bench makes) compares two ways of
handing a job to an idle worker, on a scratch table in a fresh database of the bench's PostgreSQL,
with plain psycopg on both sides so that only the hand-over differs:

- notify + claim (what notifyq does): the insert trigger sends an empty NOTIFY; the worker, woken,
  claims with an UPDATE … FOR UPDATE SKIP LOCKED … RETURNING on a second connection.
- handed over: the insert trigger itself marks the new rows running (the claim, inside the
  producer's transaction) and sends them as the NOTIFY payload; the worker has the job when the
  notification arrives.

A producer inserts one job per transaction at 200 jobs/s; the worker is a separate process. For
each job it prints the producer's call (insert and commit) and "after": from the call's return
to the moment the worker holds the claimed job. Modes alternate in rounds on the same server.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psycopg

from bench.common import fresh_database, log, percentiles
from notifyq import devdb

SETUP = (
    (
        "CREATE TABLE probe_jobs (id bigserial PRIMARY KEY, status text NOT NULL DEFAULT 'queued',"
        " lease_expires_at timestamptz, payload jsonb NOT NULL)"
    ),
    "CREATE INDEX ON probe_jobs (id) WHERE status = 'queued'",
    (
        "CREATE FUNCTION probe_notify() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN PERFORM pg_notify('probe', ''); RETURN NULL; END $$"
    ),
    (
        "CREATE FUNCTION probe_hand_over() RETURNS trigger LANGUAGE plpgsql AS $$ DECLARE jobs text; BEGIN"
        " WITH claimed AS (UPDATE probe_jobs SET status = 'running',"
        " lease_expires_at = now() + interval '30 s' WHERE id IN (SELECT id FROM new_jobs) RETURNING payload)"
        " SELECT json_agg(payload)::text INTO jobs FROM claimed;"
        " PERFORM pg_notify('probe', jobs); RETURN NULL; END $$"
    ),
)
TRIGGER = (
    "CREATE TRIGGER probe AFTER INSERT ON probe_jobs REFERENCING NEW TABLE AS new_jobs"
    " FOR EACH STATEMENT EXECUTE FUNCTION {}()"
)
CLAIM = (
    "WITH picked AS MATERIALIZED (SELECT id FROM probe_jobs WHERE status = 'queued' ORDER BY id"
    " LIMIT 10 FOR UPDATE SKIP LOCKED) UPDATE probe_jobs j SET status = 'running',"
    " lease_expires_at = now() + interval '30 s' FROM picked WHERE j.id = picked.id RETURNING j.payload"
)
MODES = {"notify + claim": "probe_notify", "handed over": "probe_hand_over"}
RATE = 200.0
WARMUP = 50


def worker(url: str, mode: str, out: Path) -> None:
    """The worker's side: print 'ready', then write '<n> <time>' for each job it holds."""
    with (
        psycopg.connect(url, autocommit=True) as listener,
        psycopg.connect(url, autocommit=True) as conn,
        out.open("w", buffering=1) as lines,
    ):
        listener.execute("LISTEN probe")
        conn.execute("SET synchronous_commit = off")  # as notifyq's worker pool
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        for notify in listener.notifies():
            if mode == "notify + claim":
                rows = [row[0] for row in conn.execute(CLAIM, prepare=True).fetchall()]
            else:
                rows = orjson.loads(notify.payload)
            now = time.time()
            lines.writelines(f"{row['n']} {now}\n" for row in rows)


def produce(url: str, jobs: int) -> dict[int, tuple[float, float]]:
    """Insert `jobs` jobs at RATE; returns each job's (call ms, time the call returned)."""
    calls: dict[int, tuple[float, float]] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        start = time.monotonic() + 0.1
        for n in range(jobs):
            time.sleep(max(0.0, start + n / RATE - time.monotonic()))
            sent = time.time()
            conn.execute(
                "INSERT INTO probe_jobs (payload) VALUES (%s::jsonb)", (f'{{"n": {n}}}',), prepare=True
            )
            done = time.time()
            calls[n] = ((done - sent) * 1000, done)
    return calls


def one_round(url: str, mode: str, jobs: int) -> dict[str, dict[str, float]]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER IF EXISTS probe ON probe_jobs")
        conn.execute("TRUNCATE probe_jobs")
        conn.execute(TRIGGER.format(MODES[mode]))  # type: ignore[arg-type] # a fixed function name
    with tempfile.TemporaryDirectory(prefix="notifyq-probe-") as folder:
        out = Path(folder) / "held.txt"
        args = [sys.executable, "-m", "bench.dispatch", "--worker", mode, "--url", url, "--out", str(out)]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            proc.stdout.readline()  # 'ready': LISTEN is in place
            calls = produce(url, jobs)
            time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        held = dict(line.split() for line in out.read_text().splitlines())
    kept = [n for n in range(WARMUP, jobs) if str(n) in held]
    if len(kept) != jobs - WARMUP:
        raise RuntimeError(f"{mode}: the worker held {len(kept)} of {jobs - WARMUP} jobs")
    after = sorted((float(held[str(n)]) - calls[n][1]) * 1000 for n in kept)
    return {"call_ms": percentiles(sorted(calls[n][0] for n in kept)), "after_ms": percentiles(after)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.url, args.worker, args.out)
        return
    results: dict[str, list[dict[str, dict[str, float]]]] = {mode: [] for mode in MODES}
    with devdb.postgres() as server, fresh_database(server.url, "notifyq_probe") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in SETUP:
                conn.execute(statement)  # type: ignore[arg-type] # fixed probe DDL
        for k in range(args.rounds):
            for mode in MODES:
                log(f"dispatch probe: {mode}, round {k + 1}/{args.rounds}")
                results[mode].append(one_round(url, mode, args.jobs))
    print(render(results))


def render(results: dict[str, list[dict[str, dict[str, float]]]]) -> str:
    lines = ["mode            call p50  call p99  after p50  after p90  after p99   (ms, median of rounds)"]
    for mode, rounds in results.items():

        def med(part: str, key: str, rounds: list[dict[str, dict[str, float]]] = rounds) -> float:
            return statistics.median(r[part][key] for r in rounds)

        figures = [med("call_ms", "p50"), med("call_ms", "p99")]
        figures += [med("after_ms", k) for k in ("p50", "p90", "p99")]
        lines.append(f"{mode:14} " + " ".join(f"{v:9.3f}" for v in figures))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
