"""Client pools check a connection on its way out without a round trip, and still replace one whose
backend was terminated (db._check_async / db._check_sync)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from notifyq import Client, Registry, Settings, SyncClient

pytestmark = pytest.mark.anyio

TERMINATE_POOL = (
    "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"  # waits for each to end
    " WHERE datname = current_database() AND application_name = 'notifyq' AND pid <> pg_backend_pid()"
)


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each round-trip check the pools run, by kind."""
    seen: list[str] = []
    async_check, sync_check = AsyncConnectionPool.check_connection, ConnectionPool.check_connection

    async def counted_async(conn: Any) -> None:
        seen.append("async")
        await async_check(conn)

    def counted_sync(conn: Any) -> None:
        seen.append("sync")
        sync_check(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(counted_async))
    monkeypatch.setattr(ConnectionPool, "check_connection", staticmethod(counted_sync))
    return seen


async def test_the_async_client_skips_the_round_trip_until_its_backend_is_terminated(
    database_url: str, aconn: psycopg.AsyncConnection, round_trips: list[str]
) -> None:
    settings = Settings(database_url=database_url, pool_min_size=1, pool_max_size=1)
    async with Client(settings, registry=Registry()) as client:
        first = await client.enqueue("t", None)
        await client.enqueue("t", None)
        assert round_trips == []
        cur = await aconn.execute(TERMINATE_POOL)
        assert await cur.fetchone() == (1,)
        # the dead connection is seen, checked, replaced: the caller never sees the kill
        third = await client.enqueue("t", None)
    assert round_trips[:1] == ["async"]
    assert third == first + 2


async def test_the_sync_client_skips_the_round_trip_until_its_backend_is_terminated(
    database_url: str, aconn: psycopg.AsyncConnection, round_trips: list[str]
) -> None:
    settings = Settings(database_url=database_url, pool_min_size=1, pool_max_size=1)
    with SyncClient(settings, registry=Registry()) as client:
        first = client.enqueue("t", None)
        client.enqueue("t", None)
        assert round_trips == []
        cur = await aconn.execute(TERMINATE_POOL)
        assert await cur.fetchone() == (1,)
        third = client.enqueue("t", None)
    assert round_trips[:1] == ["sync"]
    assert third == first + 2
