"""`notifyq-worker myapp.tasks --queues a,b --concurrency N`: run a worker process.

The positional arguments are modules to import; importing them registers their tasks. The current
directory is on the import path, as with `python -m`. SIGINT/SIGTERM stop claiming and let running
jobs finish for --shutdown-timeout seconds, then hand the rest back; a second signal hands them
back at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import psycopg

from notifyq.cli.common import parse_bind
from notifyq.errors import ConfigError, NotifyqError
from notifyq.settings import Settings, WorkerSettings, split_queues
from notifyq.worker import Worker

if TYPE_CHECKING:
    from notifyq.worker.metrics import WorkerMetrics

log = logging.getLogger("notifyq.worker")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="notifyq-worker", description="Run a notifyq worker process.")
    p.add_argument("modules", nargs="+", help="modules to import (they register the tasks)")
    p.add_argument("--queues", type=split_queues, help="comma-separated queues (default: default)")
    p.add_argument("--concurrency", type=int, help="jobs run at once (default: 10)")
    p.add_argument("--poll-interval", type=float, help="safety-net poll, seconds (default: 5)")
    p.add_argument("--lease", type=float, help="lease length, seconds (default: 30)")
    p.add_argument("--shutdown-timeout", type=float, help="grace period on SIGTERM (default: 10)")
    p.add_argument("--no-listen", action="store_true", help="poll only, no LISTEN (for comparisons)")
    p.add_argument(
        "--claim-linger",
        type=float,
        help="while jobs stream in, re-claim delay after an empty claim, s; 0: off (default: 0.001)",
    )
    p.add_argument(
        "--hand-over-max-rate",
        type=float,
        help="jobs/s up to which producers hand this idle worker jobs directly; 0: off (default: 2000)",
    )
    p.add_argument(
        "--synchronous-commit",
        action="store_true",
        help="the worker's own writes wait for their WAL flush (default: off; enqueues always do)",
    )
    p.add_argument("--database-url", help="PostgreSQL URL (default: NOTIFYQ_DATABASE_URL, DATABASE_URL)")
    p.add_argument("--schema", help="notifyq's schema (default: notifyq)")
    p.add_argument(
        "--metrics-bind",
        default=os.environ.get("NOTIFYQ_WORKER_METRICS_BIND"),
        help="serve Prometheus /metrics on HOST:PORT (needs notifyq[metrics]; default: off)",
    )
    p.add_argument("--log-level", default=os.environ.get("NOTIFYQ_LOG_LEVEL", "INFO"))
    return p


def configs(args: argparse.Namespace) -> tuple[Settings, WorkerSettings]:
    settings = Settings.from_env(database_url=args.database_url, schema=args.schema)
    worker = WorkerSettings.from_env(
        queues=args.queues,
        concurrency=args.concurrency,
        poll_interval=args.poll_interval,
        lease=args.lease,
        shutdown_timeout=args.shutdown_timeout,
        listen=False if args.no_listen else None,
        claim_linger=args.claim_linger,
        hand_over_max_rate=args.hand_over_max_rate,
        synchronous_commit=True if args.synchronous_commit else None,
    )
    return settings, worker


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    sys.path.insert(0, str(Path.cwd()))
    try:
        for module in args.modules:
            import_module(module)
        settings, config = configs(args)
        anyio.run(serve, settings, config, args.metrics_bind)
        _abandon_handler_threads()
    except NotifyqError as exc:
        sys.stderr.write(f"notifyq-worker: {exc}\n")
        return 1
    except psycopg.OperationalError as exc:
        sys.stderr.write(f"notifyq-worker: cannot reach PostgreSQL: {exc}\n")
        return 1
    except ModuleNotFoundError as exc:
        sys.stderr.write(f"notifyq-worker: cannot import {exc.name!r}: {exc}\n")
        return 1
    return 0


def _abandon_handler_threads() -> None:
    """Exit now if sync handlers still run: their jobs were handed back, and Python would otherwise
    wait for the threads (they cannot be interrupted) before the process could exit."""
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if stuck:
        log.warning("abandoning %d handler threads still running; their jobs were handed back", len(stuck))
        logging.shutdown()
        os._exit(0)


async def serve(settings: Settings, config: WorkerSettings, metrics_bind: str | None = None) -> None:
    """Run a worker until it stops, translating signals into graceful, then immediate, stops."""
    with _metrics(config, metrics_bind) as metrics:
        worker = Worker(settings, config, metrics=metrics)  # anyio primitives need the running loop
        async with anyio.create_task_group() as tg:
            tg.start_soon(_handle_signals, worker)
            await worker.run()
            tg.cancel_scope.cancel()


@contextmanager
def _metrics(config: WorkerSettings, bind: str | None) -> Iterator[WorkerMetrics | None]:
    if not bind:
        yield None
        return
    host, port = parse_bind(bind)
    try:
        from notifyq.worker.metrics import WorkerMetrics  # noqa: PLC0415 - an optional extra
    except ImportError as exc:
        raise ConfigError("metrics-bind", "needs prometheus-client: pip install 'notifyq[metrics]'") from exc
    metrics = WorkerMetrics(lease=config.lease)
    try:
        server = metrics.serve(host, port)
    except OSError as exc:
        raise ConfigError("metrics-bind", f"cannot listen on {bind}: {exc}") from exc
    log.info("metrics on http://%s:%d/metrics", host, port)
    try:
        yield metrics
    finally:
        server.shutdown()
        server.server_close()


async def _handle_signals(worker: Worker) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        received = 0
        async for signum in signals:
            received += 1
            if received == 1:
                log.info("%s: stopping (again to hand running jobs back now)", signal.Signals(signum).name)
                worker.stop()
            else:
                log.info("%s: handing running jobs back now", signal.Signals(signum).name)
                worker.stop(now=True)


if __name__ == "__main__":
    sys.exit(main())
