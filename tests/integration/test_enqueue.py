"""Enqueue: async and sync, bulk, inside the caller's transaction, idempotent under races, bad input."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import anyio
import msgspec
import psycopg
import pytest

from notifyq import Client, JobSpec, JobStatus, Registry, Settings, SyncClient, names, queries, tasks
from notifyq.errors import InvalidNameError, NotifyqError, PayloadError
from tests.helpers import add_waiter, status_counts

pytestmark = pytest.mark.anyio


class Email(msgspec.Struct):
    to: str


async def test_enqueue_stores_the_job_with_its_options(client: Client) -> None:
    run_at = datetime.now(UTC) + timedelta(hours=1)
    job_id = await client.enqueue(
        "send", {"to": "a"}, queue="mail", run_at=run_at, priority=7, max_attempts=3, idempotency_key="k1"
    )
    job = await client.get(job_id)
    assert (job.task, job.queue, job.payload, job.status) == ("send", "mail", {"to": "a"}, JobStatus.QUEUED)
    assert (job.priority, job.max_attempts, job.attempts, job.idempotency_key) == (7, 3, 0, "k1")
    assert job.run_at == run_at


async def test_delay_is_measured_by_the_database_clock(
    client: Client, aconn: psycopg.AsyncConnection
) -> None:
    job_id = await client.enqueue("t", None, delay=30)
    cur = await aconn.execute(
        "SELECT extract(epoch FROM run_at - created_at) FROM notifyq.jobs WHERE id = %s", (job_id,)
    )
    row = await cur.fetchone()
    assert row is not None
    assert 29.9 < float(row[0]) < 31


def test_the_sync_twin_enqueues_gets_and_lists(sync_client: SyncClient, registry: Registry) -> None:
    @registry.task
    def send(email: Email) -> None: ...

    job_id = sync_client.enqueue(send, Email(to="x"))
    assert sync_client.get(job_id).payload == {"to": "x"}
    assert [j.id for j in sync_client.list_jobs(task="send")] == [job_id]
    ids = sync_client.enqueue_many([JobSpec(task=send, payload={"to": str(i)}) for i in range(3)])
    assert [sync_client.get(i).payload["to"] for i in ids] == ["0", "1", "2"]


async def test_enqueue_many_returns_ids_in_input_order_with_existing_keys(client: Client) -> None:
    first = await client.enqueue("t", {"n": -1}, idempotency_key="dup")
    specs = [
        JobSpec(task="t", payload={"n": i}, idempotency_key="dup" if i == 2 else None) for i in range(500)
    ]
    ids = await client.enqueue_many(specs)
    assert ids[2] == first
    assert len(set(ids)) == 500
    jobs = {j.id: j for j in await client.list_jobs(limit=1000)}
    assert all(jobs[job_id].payload["n"] == i for i, job_id in enumerate(ids) if i != 2)
    assert len(jobs) == 500


async def test_a_second_enqueue_with_the_same_key_returns_the_first_id(client: Client) -> None:
    a = await client.enqueue("t", {"v": 1}, idempotency_key="once")
    b = await client.enqueue("t", {"v": 2}, idempotency_key="once")
    assert a == b
    assert (await client.get(a)).payload == {"v": 1}


async def test_jobs_without_a_key_take_the_plain_insert_and_each_is_a_new_row(client: Client) -> None:
    """No key, no ON CONFLICT (its speculative insertion costs WAL on every enqueue); a key keeps it."""
    st = client.statements
    keyless = await client.enqueue("t", {"v": 1}, delay=5)
    again = await client.enqueue("t", {"v": 1}, delay=5)
    assert keyless != again
    assert [(await client.get(i)).idempotency_key for i in (keyless, again)] == [None, None]
    built = {
        (key, hand_over): queries.job_insert(
            st,
            job=tasks.build_job("t", None, registry=client.registry, idempotency_key=key),
            hand_over=hand_over,
        ).name
        for key in (None, "k")
        for hand_over in (False, True)
    }
    assert built == {
        (None, False): "job_insert_unkeyed",
        (None, True): "job_insert_hand_over",
        ("k", False): "job_insert",
        ("k", True): "job_insert",  # a keyed job is never handed over in its insert
    }


async def test_racing_enqueues_with_one_key_insert_one_row(
    settings: Settings, aconn: psycopg.AsyncConnection
) -> None:
    ids: list[int] = []

    async def one(client: Client) -> None:
        ids.append(await client.enqueue("t", None, idempotency_key="race"))

    async with (
        Client(Settings(database_url=settings.database_url, pool_max_size=20)) as client,
        anyio.create_task_group() as tg,
    ):
        for _ in range(20):
            tg.start_soon(one, client)
    assert len(ids) == 20
    assert len(set(ids)) == 1
    assert await status_counts(aconn) == {"queued": 1}


async def test_a_rolled_back_transaction_leaves_no_job_and_no_wakeup(
    client: Client, database_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener:
        await listener.execute('LISTEN "notifyq:default"')
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as setup:
            await add_waiter(setup, "default")
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            await client.enqueue("t", None, conn=conn)
            await conn.rollback()
            await client.enqueue("t", None, idempotency_key="committed", conn=conn)
            await conn.commit()
        got = [n async for n in listener.notifies(timeout=0.5)]
    assert len(got) == 1
    assert [j.idempotency_key for j in await client.list_jobs()] == ["committed"]


async def test_bad_input_is_rejected_and_nothing_is_written(
    client: Client, aconn: psycopg.AsyncConnection
) -> None:
    with pytest.raises(PayloadError):
        await client.enqueue("t", {"x": object()})
    with pytest.raises(InvalidNameError):
        await client.enqueue("t", None, queue="q" * 41)
    with pytest.raises(InvalidNameError):
        await client.enqueue("t", None, queue="it's")
    with pytest.raises(InvalidNameError):
        await client.enqueue("bad task\x00", None)
    with pytest.raises(NotifyqError):
        await client.enqueue("t", None, run_at=datetime(2030, 1, 1))
    with pytest.raises(NotifyqError):
        await client.enqueue_many(
            [JobSpec(task="t", payload=None), JobSpec(task="t", payload={1, 2, object()})]
        )
    assert await status_counts(aconn) == {}
    assert await client.enqueue("t", {"fine": True}) > 0


def streamed_specs_with_a_bad_one_last(good: int = 3000) -> list[JobSpec]:
    """More good jobs than psycopg's COPY buffer holds, so rows are on the wire when the bad one
    is built."""
    bad = JobSpec(task="t", payload={object()})
    return [*(JobSpec(task="t", payload={"n": n}) for n in range(good)), bad]


async def test_a_bad_job_late_in_a_streamed_bulk_enqueue_aborts_it_whole(
    client: Client, aconn: psycopg.AsyncConnection
) -> None:
    before = await client.enqueue("t", None)
    with pytest.raises(PayloadError):
        await client.enqueue_many(streamed_specs_with_a_bad_one_last())
    assert await status_counts(aconn) == {"queued": 1}
    assert client.pool.get_stats().get("connections_lost", 0) == 0  # the COPY's connection is fine
    after = await client.enqueue_many([JobSpec(task="t", payload={"n": n}) for n in range(2)])
    assert after[0] > before + 3000  # the ids were reserved and the COPY begun: the streamed path
    with pytest.raises(PayloadError):  # a bad first job fails before anything is reserved
        await client.enqueue_many(list(reversed(streamed_specs_with_a_bad_one_last())))
    assert await client.enqueue("t", None) == after[1] + 1
    assert await status_counts(aconn) == {"queued": 4}


def test_the_sync_twin_aborts_a_streamed_bulk_enqueue_whole(sync_client: SyncClient) -> None:
    before = sync_client.enqueue("t", None)
    with pytest.raises(PayloadError):
        sync_client.enqueue_many(streamed_specs_with_a_bad_one_last())
    assert sync_client.pool.get_stats().get("connections_lost", 0) == 0
    after = sync_client.enqueue_many([JobSpec(task="t", payload={"n": 1})])
    assert after[0] > before + 3000
    assert [j.id for j in sync_client.list_jobs()] == [*after, before]


async def test_a_bad_job_in_a_bulk_enqueue_leaves_the_callers_transaction_usable(
    client: Client, database_url: str
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        first = await client.enqueue("t", None, conn=conn)
        with pytest.raises(PayloadError):
            await client.enqueue_many(streamed_specs_with_a_bad_one_last(), conn=conn)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        rest = await client.enqueue_many([JobSpec(task="t", payload={"n": n}) for n in range(3)], conn=conn)
        await conn.commit()
    assert sorted(j.id for j in await client.list_jobs()) == [first, *rest]


async def test_constraints_reject_impossible_rows_from_plain_sql(aconn: psycopg.AsyncConnection) -> None:
    bad_rows = [
        "INSERT INTO notifyq.jobs (task, status) VALUES ('t', 'running')",
        "INSERT INTO notifyq.jobs (task, finished_at) VALUES ('t', now())",
        "INSERT INTO notifyq.jobs (task, queue) VALUES ('t', repeat('q', 41))",
        "INSERT INTO notifyq.jobs (task, queue) VALUES ('t', 'has space')",
        "INSERT INTO notifyq.jobs (task, attempts, max_attempts) VALUES ('t', 3, 2)",
        "INSERT INTO notifyq.jobs (task, idempotency_key) VALUES ('t', '')",
        "INSERT INTO notifyq.jobs (task, attempts, max_attempts) VALUES ('t', 2, 2)",
    ]
    for statement in bad_rows:
        with pytest.raises(psycopg.errors.CheckViolation):
            await aconn.execute(statement)  # type: ignore[arg-type]
    assert await status_counts(aconn) == {}


def name_candidates(longest: int) -> list[str]:
    """Every character first and second, the length limit's edges, a trailing newline, non-ASCII."""
    non_ascii = ["\u00e9", "\u0661", "\uff71"]  # é, an Arabic-Indic digit, a katakana
    chars = [chr(c) for c in range(1, 128)] + non_ascii
    return [
        *chars,
        *(f"a{c}" for c in chars),
        "",
        "a" * longest,
        "a" * (longest + 1),
        "_" + "9" * (longest - 1),
        "a\n",
        "\na",
    ]


@pytest.mark.parametrize(
    ("statement", "check", "longest"),
    [
        ("INSERT INTO notifyq.jobs (queue, task) VALUES (%s, 't')", names.queue_name, names.MAX_QUEUE_LENGTH),
        ("INSERT INTO notifyq.jobs (queue, task) VALUES ('q', %s)", names.task_name, names.MAX_TASK_LENGTH),
    ],
)
async def test_the_database_accepts_exactly_the_names_the_client_accepts(
    aconn: psycopg.AsyncConnection, statement: str, check: Callable[[object], str], longest: int
) -> None:
    """The CHECKs (migrations/0009, cheaper than 0001's) and names.py state one rule twice."""
    disagreements = []
    for name in name_candidates(longest):
        try:
            check(name)
            client_accepts = True
        except InvalidNameError:
            client_accepts = False
        try:
            async with aconn.transaction(force_rollback=True):
                await aconn.execute(statement, (name,))  # type: ignore[arg-type]
            database_accepts = True
        except psycopg.errors.CheckViolation:
            database_accepts = False
        if client_accepts != database_accepts:
            disagreements.append((name, client_accepts, database_accepts))
    assert disagreements == []
    assert await status_counts(aconn) == {}


# the name CHECKs of migrations/0001, which 0009 replaced with cheaper expressions of the same rules
NAME_CHECKS_0001 = {
    "queue": "queue ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,39}$'",
    "task": "task ~ '^[A-Za-z_][A-Za-z0-9_.:-]{0,199}$'",
}


@pytest.mark.parametrize("column", ["queue", "task"])
async def test_the_name_checks_of_0009_agree_with_those_of_0001(
    aconn: psycopg.AsyncConnection, column: str
) -> None:
    """Over every character of the Basic Multilingual Plane alone, before and after a letter, and
    every length up to past the limit: the installed CHECK and 0001's give the same verdict."""
    cur = await aconn.execute(
        "SELECT pg_get_expr(conbin, conrelid) FROM pg_constraint WHERE conname = %s",
        (f"jobs_{column}_format",),
    )
    installed = (await cur.fetchone() or [""])[0]
    assert "{" not in installed  # 0009's form: no bounded repetition
    candidates = (
        "SELECT s FROM generate_series(1, 65535) c, LATERAL (SELECT chr(c) AS ch) x,"
        " unnest(ARRAY[x.ch, 'a' || x.ch, x.ch || 'a']) s"
        " WHERE c NOT BETWEEN 55296 AND 57343"  # surrogates are no characters
        " UNION ALL SELECT repeat('a', n) FROM generate_series(0, 210) n"
        " UNION ALL SELECT unnest(ARRAY[E'a\\n', E'\\na', E'a\\nb'])"
    )
    differ = f"({installed}) IS DISTINCT FROM ({NAME_CHECKS_0001[column]})"
    query = f"SELECT count(*), count(*) FILTER (WHERE {differ}) FROM ({candidates}) AS names ({column})"
    cur = await aconn.execute(query)  # type: ignore[arg-type]
    assert await cur.fetchone() == (3 * (65535 - 2048) + 211 + 3, 0)
