"""Slow, reset and partitioned links between a worker and PostgreSQL (tests/faults/proxy.py).

Every connection of the worker under test (pool, listener, leader session) goes through a loopback
fault proxy; jobs are enqueued, counted and checked over direct connections. Each test pins down
that no job is lost and each ran once, or again only after a rescue its error history records.
Leases are 2 s and the leader idle timeout 2 s, so a partition outlives a lease within a few seconds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import psycopg
import pytest

from notifyq import Client, JobSpec, Registry, Settings, Task, Worker
from notifyq.worker import listener as listener_module
from tests.faults.proxy import FaultProxy, fault_proxy, target_of, via
from tests.helpers import running_worker, status_counts, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

LEASE = 2.0
WORKER: dict[str, Any] = {
    "lease": LEASE,
    "poll_interval": 1.0,
    "leader_idle_timeout": 2.0,
    "concurrency": 5,
    "db_timeout": 1.0,
}
HANDLER_SECONDS = 0.2


@dataclass
class Scene:
    """The test's database, seen directly: enqueue, count rows, and each handler run by payload `n`."""

    database_url: str
    registry: Registry
    client: Client
    aconn: psycopg.AsyncConnection[Any]
    work: Task
    runs: Counter[int]

    async def enqueue(self, numbers: range) -> None:
        await self.client.enqueue_many([JobSpec(task=self.work, payload={"n": n}) for n in numbers])

    async def wait_all_succeeded(self, count: int, seconds: float) -> None:
        async def done() -> bool:
            return await status_counts(self.aconn) == {"succeeded": count}

        await wait_until(done, seconds=seconds)

    async def unexplained_runs(self) -> dict[int, int]:
        """Jobs that ran more often than 1 + the rescues and retries in their error history."""
        cur = await self.aconn.execute(
            "SELECT (payload->>'n')::int, jsonb_array_length(errors) FROM notifyq.jobs"
        )
        return {n: self.runs[n] for n, errors in await cur.fetchall() if self.runs[n] > 1 + errors}


@pytest.fixture
def scene(
    database_url: str, registry: Registry, client: Client, aconn: psycopg.AsyncConnection[Any]
) -> Scene:
    runs: Counter[int] = Counter()  # the workers run in this process

    async def work(payload: dict[str, int]) -> None:
        runs[payload["n"]] += 1
        await anyio.sleep(HANDLER_SECONDS)

    task: Task = registry.task(work, max_attempts=10)
    return Scene(database_url, registry, client, aconn, task, runs)


@asynccontextmanager
async def proxied_worker(scene: Scene, **config: Any) -> AsyncIterator[tuple[FaultProxy, Worker]]:
    """A proxy to the test's server, and a worker whose every connection goes through it."""
    async with fault_proxy(target_of(scene.database_url)) as proxy:
        settings = Settings(database_url=via(scene.database_url, proxy.port), pool_max_size=8)
        async with running_worker(settings, scene.registry, **(WORKER | config)) as worker:
            yield proxy, worker


async def test_20ms_per_chunk_every_job_runs_once(scene: Scene) -> None:
    """A slow link (every chunk held 20 ms each way, the worker's start included) only slows it."""
    async with fault_proxy(target_of(scene.database_url)) as proxy:
        proxy.latency(0.02)
        async with await psycopg.AsyncConnection.connect(via(scene.database_url, proxy.port)) as slow:
            started = anyio.current_time()
            await slow.execute("SELECT 1")
            # the query and its answer each wait 20 ms in the proxy
            assert anyio.current_time() - started >= 0.04
        settings = Settings(database_url=via(scene.database_url, proxy.port), pool_max_size=8)
        async with running_worker(settings, scene.registry, **WORKER):
            await scene.enqueue(range(100))
            await scene.wait_all_succeeded(100, seconds=25)
    assert scene.runs == dict.fromkeys(range(100), 1)


async def test_connections_reset_five_times_while_jobs_flow_every_job_runs_once(scene: Scene) -> None:
    """Every connection of the worker is cut (RST) five times while its jobs run: the listener and
    the pool reconnect, buffered outcomes are written, the worker runs new jobs afterwards."""
    async with proxied_worker(scene) as (proxy, worker):
        for batch in range(5):
            numbers = range(batch * 20, batch * 20 + 20)
            await scene.enqueue(numbers)
            # reset while this batch runs, on a worker whose listener and pool have reconnected
            await wait_until(
                lambda numbers=numbers, batch=batch: (
                    worker.listener.connects == batch + 1 and any(n in scene.runs for n in numbers)
                ),
                seconds=10,
            )
            assert proxy.reset() >= 2  # the listener and the pool connection that claimed
        await scene.wait_all_succeeded(100, seconds=15)
        await wait_until(lambda: worker.listener.connects == 6)  # the first connect and one per reset
        # the worker runs on: a fresh batch after the last reset
        await scene.enqueue(range(100, 120))
        await scene.wait_all_succeeded(120, seconds=10)
    assert scene.runs == dict.fromkeys(range(120), 1)


async def test_partitioned_alone_for_three_leases_the_worker_resumes_after_the_heal(scene: Scene) -> None:
    """Nothing moves during the partition (no other worker can rescue), nothing crashes, nothing is
    lost: after the heal the buffered outcomes are written and the rest of the jobs run."""
    async with proxied_worker(scene) as (proxy, worker):
        await scene.enqueue(range(20))
        await wait_until(lambda: len(scene.runs) >= 1)
        proxy.blackhole(True)
        try:
            await wait_until(lambda: worker.executor.free == worker.executor.concurrency)

            async def leases_expired() -> bool:
                cur = await scene.aconn.execute(
                    "SELECT count(*) FROM notifyq.jobs WHERE status = 'running'"
                    " AND lease_expires_at < now() - make_interval(secs => %s)",
                    (LEASE,),
                )
                row = await cur.fetchone()
                return row is not None and row[0] > 0

            await wait_until(leases_expired, seconds=3 * LEASE + 2)
        finally:
            proxy.blackhole(False)
        await scene.wait_all_succeeded(20, seconds=15)
        assert await scene.unexplained_runs() == {}
    assert sorted(scene.runs) == list(range(20))


async def test_partitioned_worker_jobs_are_rescued_by_the_fleet_and_its_late_outcomes_refused(
    scene: Scene, settings: Settings
) -> None:
    """The partitioned worker leads: the server ends its idle leader session, a direct worker
    leads, rescues the expired leases and runs those jobs. After the heal the partitioned worker's
    outcomes are refused (claim token) and it runs new jobs again."""
    async with proxied_worker(scene) as (proxy, cut_off):
        await wait_until(lambda: cut_off.elector.is_leader)
        async with running_worker(settings, scene.registry, **WORKER) as fleet:
            await scene.enqueue(range(40))
            await wait_until(lambda: cut_off.claimer.claimed >= 1)
            proxy.blackhole(True)
            try:
                await scene.wait_all_succeeded(40, seconds=20)
                assert fleet.elector.is_leader
            finally:
                proxy.blackhole(False)
            # the outcomes it buffered during the partition belong to rescued runs: refused
            await wait_until(lambda: cut_off.completer.lost >= 1)
        # the fleet is gone: only the healed worker can run these
        await scene.enqueue(range(40, 50))
        await scene.wait_all_succeeded(50, seconds=15)
        assert await scene.unexplained_runs() == {}
    assert sorted(scene.runs) == list(range(50))


async def test_connections_that_stop_answering_are_replaced(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A middlebox lost its flows (NAT, load balancer, PgBouncer's server side): the worker's open
    connections hear nothing, new ones would work. Each statement's deadline (`db_timeout`, 1 s
    here) abandons the silent connection and the pool opens a new one, so new jobs run; the
    listener's liveness check (every LIVENESS_INTERVAL of silence, 1 s here) fails the same way and
    it reconnects."""
    monkeypatch.setattr(listener_module, "LIVENESS_INTERVAL", 1.0)
    async with proxied_worker(scene) as (proxy, worker):
        await scene.enqueue(range(10))
        await scene.wait_all_succeeded(10, seconds=10)
        proxy.blackhole(True, new_connections=False)
        try:
            await scene.enqueue(range(10, 20))
            await scene.wait_all_succeeded(20, seconds=10)
            await wait_until(lambda: worker.listener.connects >= 2, seconds=10)
        finally:
            proxy.blackhole(False)
        assert await scene.unexplained_runs() == {}
