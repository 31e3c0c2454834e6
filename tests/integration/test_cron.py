"""Cron through Postgres: two leaders overlapping over many slots enqueue each slot exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import psycopg
import pytest

from notifyq import Client, Registry
from notifyq.leader.cron import Cron

pytestmark = pytest.mark.anyio

START = datetime(2026, 1, 1, tzinfo=UTC)


def _registry(catch_up: str = "latest") -> Registry:
    registry = Registry()

    @registry.periodic("* * * * *", catch_up=catch_up, payload={"k": 1})
    async def every_minute(payload: dict[str, int]) -> None: ...

    @registry.periodic("*/5 * * * *", catch_up=catch_up)
    async def every_five() -> None: ...

    return registry


async def _slots(aconn: psycopg.AsyncConnection) -> list[tuple[str, str]]:
    cur = await aconn.execute("SELECT task, idempotency_key FROM notifyq.jobs ORDER BY id")
    return [(str(t), str(k)) for t, k in await cur.fetchall()]


async def test_two_overlapping_leaders_enqueue_each_slot_once(
    client: Client, aconn: psycopg.AsyncConnection
) -> None:
    registry = _registry()
    leaders = [Cron(pool=client.pool, statements=client.statements, registry=registry) for _ in range(2)]
    for leader in leaders:
        await leader.run_once(START)
    for minute in range(1, 121):
        now = START + timedelta(minutes=minute, seconds=1)
        async with anyio.create_task_group() as tg:
            for leader in leaders:
                tg.start_soon(leader.run_once, now)
    slots = await _slots(aconn)
    assert len(slots) == len(set(slots)) == 120 + 24
    assert sum(1 for task, _ in slots if task == "every_minute") == 120
    cur = await aconn.execute("SELECT DISTINCT payload FROM notifyq.jobs WHERE task = 'every_minute'")
    assert await cur.fetchall() == [({"k": 1},)]


async def test_after_downtime_the_latest_missed_slot_runs_once(
    client: Client, aconn: psycopg.AsyncConnection
) -> None:
    cron = Cron(pool=client.pool, statements=client.statements, registry=_registry())
    await cron.run_once(START)
    await cron.run_once(START + timedelta(hours=3, seconds=10))
    await cron.run_once(START + timedelta(hours=3, seconds=20))
    keys = [k for _, k in await _slots(aconn)]
    assert keys == [
        "cron:every_minute:2026-01-01T03:00:00+00:00",
        "cron:every_five:2026-01-01T03:00:00+00:00",
    ]


async def test_a_new_schedule_starts_from_now_not_from_the_past(
    client: Client, aconn: psycopg.AsyncConnection
) -> None:
    cron = Cron(pool=client.pool, statements=client.statements, registry=_registry(catch_up="all"))
    await cron.run_once(START + timedelta(seconds=30))
    assert await _slots(aconn) == []
    await cron.run_once(START + timedelta(minutes=1))
    assert [k for _, k in await _slots(aconn)] == ["cron:every_minute:2026-01-01T00:01:00+00:00"]
