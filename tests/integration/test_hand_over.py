"""Hand-over (migrations/0008_hand_over.sql): the insert trigger claims a due job for an armed worker
with room and sends it on the worker's own channel; the worker runs it without a claim of its own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import psycopg
import pytest

from notifyq import Client, Registry, Settings, Worker, queries
from notifyq.hand_over import RETRY_AFTER, HandOverGate
from notifyq.models import decode_hand_over
from tests.helpers import hold_demand, job_status, running_worker, wait_until

pytestmark = pytest.mark.anyio

WORKER = "00000000-0000-0000-0000-0000000000b1"
# rows this transaction inserted into and updated in notifyq.jobs (row versions written)
WRITES_TO_JOBS = (
    "SELECT n_tup_ins, n_tup_upd FROM pg_stat_xact_user_tables WHERE relid = 'notifyq.jobs'::regclass"
)
CHANNEL = "notifyq!wtest"


@asynccontextmanager
async def listening(database_url: str, *channels: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        for channel in channels:
            await conn.execute(f'LISTEN "{channel}"')
        yield conn


async def arm(aconn: psycopg.AsyncConnection, queue: str = "a", *, slots: int = 2) -> None:
    """An armed waiter that takes up to `slots` hand-overs, as an idle worker publishes it."""
    await hold_demand(aconn)
    await aconn.execute(
        "INSERT INTO notifyq.workers (id, host, pid, queues, concurrency, lock_key)"
        " VALUES (%s, 'test', 0, ARRAY[%s], 2, 0) ON CONFLICT DO NOTHING",
        (WORKER, queue),
    )
    await aconn.execute(
        "INSERT INTO notifyq.queue_waiters (queue, worker_id, slots, lease, channel)"
        " VALUES (%s, %s, %s, 30, %s)",
        (queue, WORKER, slots, CHANNEL),
    )


async def slots(aconn: psycopg.AsyncConnection, worker: object = WORKER) -> list[int]:
    cur = await aconn.execute(
        "SELECT slots FROM notifyq.queue_waiters WHERE worker_id = %s ORDER BY queue", (worker,)
    )
    return [int(n) for (n,) in await cur.fetchall()]


async def row(aconn: psycopg.AsyncConnection, job_id: int) -> tuple[Any, ...]:
    cur = await aconn.execute(
        "SELECT status::text, attempts, lease_holder::text,"
        " round(extract(epoch FROM lease_expires_at - started_at)), started_at IS NOT NULL"
        " FROM notifyq.jobs WHERE id = %s",
        (job_id,),
    )
    got = await cur.fetchone()
    assert got is not None
    return got


async def insert(
    aconn: psycopg.AsyncConnection, values: str = "('t', 'a')", columns: str = "task, queue"
) -> list[int]:
    cur = await aconn.execute(f"INSERT INTO notifyq.jobs ({columns}) VALUES {values} RETURNING id")
    return [int(i) for (i,) in await cur.fetchall()]


def hold_task(registry: Registry) -> tuple[list[object], anyio.Event]:
    """Register `hold`: it notes its payload's "n" in the list and runs until the event is set."""
    release = anyio.Event()
    started: list[object] = []

    @registry.task
    async def hold(payload: dict[str, object]) -> None:
        started.append(payload["n"])
        await release.wait()

    return started, release


@pytest.mark.parametrize("producer", ["client", "sql"])
async def test_an_insert_hands_its_job_to_an_armed_worker_with_room(
    database_url: str, aconn: psycopg.AsyncConnection, client: Client, producer: str
) -> None:
    """The same hand-over from notifyq's own enqueue (migrations/0010) and from plain SQL (the
    trigger): the client's insert writes one row version, the trigger updates the row it inserted."""
    async with listening(database_url, CHANNEL, "notifyq:a") as listener:
        await arm(aconn)
        async with await psycopg.AsyncConnection.connect(database_url) as tx:
            await tx.execute("SET TIME ZONE 'Asia/Kolkata'")  # the producer's zone is in the JSON
            if producer == "client":
                job_id = await client.enqueue("t", {"n": 1, "s": '"é"'}, queue="a", priority=3, conn=tx)
            else:
                values = """('t', 'a', '{"n": 1, "s": "\\"é\\""}', 3)"""
                (job_id,) = await insert(tx, values, "task, queue, payload, priority")
            versions = await (await tx.execute(WRITES_TO_JOBS)).fetchone()
            await tx.commit()
        got = [n async for n in listener.notifies(timeout=0.5)]
    assert versions == ((1, 0) if producer == "client" else (1, 1))
    assert [n.channel for n in got] == [CHANNEL]
    job = decode_hand_over(got[0].payload)
    assert (job.id, job.queue, job.task, job.attempts, job.priority) == (job_id, "a", "t", 1, 3)
    assert job.payload == '{"n": 1, "s": "\\"é\\""}'
    # the waiter's 30 s lease, from the insert (run_at is the transaction's start)
    assert 30 <= job.waited(0) < 31
    assert await row(aconn, job_id) == ("running", 1, WORKER, 30, True)
    assert await slots(aconn) == [1]


async def test_after_a_miss_the_client_sends_plain_inserts_for_a_while_and_the_trigger_hands_over(
    database_url: str, aconn: psycopg.AsyncConnection, client: Client
) -> None:
    now = [0.0]
    client.hand_over = HandOverGate(clock=lambda: now[0])
    await arm(aconn, slots=0)

    async def enqueue() -> tuple[object, ...] | None:
        async with await psycopg.AsyncConnection.connect(database_url) as tx:
            await client.enqueue("t", None, queue="a", conn=tx)
            versions = await (await tx.execute(WRITES_TO_JOBS)).fetchone()
            await tx.commit()
        return versions

    assert await enqueue() == (1, 0)  # tried, no slot: queued, and the gate closes
    await aconn.execute("UPDATE notifyq.queue_waiters SET slots = 2, woken_at = NULL")
    assert await enqueue() == (1, 1)  # a plain insert: the trigger hands it over
    now[0] += RETRY_AFTER
    assert await enqueue() == (1, 0)  # tried again: handed over in the insert
    cur = await aconn.execute("SELECT status::text FROM notifyq.jobs ORDER BY id")
    assert [s for (s,) in await cur.fetchall()] == ["queued", "running", "running"]
    assert await slots(aconn) == [0]


@pytest.mark.parametrize("case", ["no slot left", "scheduled", "payload too big"])
async def test_notifyqs_enqueue_of_a_job_it_cannot_hand_over_leaves_it_queued_and_notifies(
    database_url: str, aconn: psycopg.AsyncConnection, client: Client, case: str
) -> None:
    async with listening(database_url, CHANNEL, "notifyq:a") as listener:
        await arm(aconn, slots=0 if case == "no slot left" else 2)
        payload = {"x": "y" * 7000} if case == "payload too big" else None
        job_id = await client.enqueue("t", payload, queue="a", delay=30 if case == "scheduled" else None)
        got = [n.channel async for n in listener.notifies(timeout=0.5)]
    assert got == ["notifyq:a"]
    assert await job_status(aconn, job_id) == "queued"
    assert await slots(aconn) == [0 if case == "no slot left" else 2]


@pytest.mark.parametrize("producer", ["client", "sql"])
async def test_a_rolled_back_insert_hands_nothing_over(
    database_url: str, aconn: psycopg.AsyncConnection, client: Client, producer: str
) -> None:
    async with listening(database_url, CHANNEL) as listener:
        await arm(aconn)
        async with await psycopg.AsyncConnection.connect(database_url) as tx:
            if producer == "client":
                await client.enqueue("t", None, queue="a", conn=tx)
            else:
                await insert(tx)
            await tx.rollback()
        got = [n async for n in listener.notifies(timeout=0.5)]
    assert got == []
    assert await slots(aconn) == [2]


@pytest.mark.parametrize(
    ("case", "values"),
    [
        ("no slot left", "('t', 'a', '{}', now())"),
        ("scheduled", "('t', 'a', '{}', now() + interval '30 seconds')"),
        ("payload too big", "('t', 'a', jsonb_build_object('x', repeat('y', 7000)), now())"),
    ],
)
async def test_a_job_not_handed_over_stays_queued_and_the_queue_is_notified(
    database_url: str, aconn: psycopg.AsyncConnection, case: str, values: str
) -> None:
    async with listening(database_url, CHANNEL, "notifyq:a") as listener:
        await arm(aconn, slots=0 if case == "no slot left" else 2)
        cur = await aconn.execute(
            f"INSERT INTO notifyq.jobs (task, queue, payload, run_at) VALUES {values} RETURNING id"
        )
        (job_id,) = await cur.fetchone() or ()
        got = [n.channel async for n in listener.notifies(timeout=0.5)]
    assert got == ["notifyq:a"]
    assert await job_status(aconn, job_id) == "queued"
    assert await slots(aconn) == [0 if case == "no slot left" else 2]


async def test_a_transaction_older_than_a_quarter_of_the_lease_only_notifies(
    database_url: str, aconn: psycopg.AsyncConnection
) -> None:
    """The lease runs from the insert but the worker hears of the job at the commit: an old
    transaction (here 0.3 s, against a 1 s lease) hands nothing over and gives the slot back."""
    async with listening(database_url, "notifyq:a") as listener:
        await arm(aconn)
        await aconn.execute("UPDATE notifyq.queue_waiters SET lease = 1")
        async with await psycopg.AsyncConnection.connect(database_url) as producer:
            await producer.execute("SELECT pg_sleep(0.3)")  # the transaction's age, not a wait for an event
            (job_id,) = await insert(producer)
            await producer.commit()
        got = [n.channel async for n in listener.notifies(timeout=0.5)]
    assert got == ["notifyq:a"]
    assert await job_status(aconn, job_id) == "queued"
    assert await slots(aconn) == [2]


async def test_of_several_due_jobs_the_first_is_handed_over_and_the_queue_is_told_of_the_rest(
    database_url: str, aconn: psycopg.AsyncConnection
) -> None:
    async with listening(database_url, CHANNEL, "notifyq:a") as listener:
        await arm(aconn)
        cur = await aconn.execute(
            "INSERT INTO notifyq.jobs (task, queue, priority) VALUES ('t', 'a', 0), ('t', 'a', 5)"
            " RETURNING id, priority"
        )
        ids = {p: i for i, p in await cur.fetchall()}
        got = [n async for n in listener.notifies(timeout=0.5)]
    assert sorted(n.channel for n in got) == [CHANNEL, "notifyq:a"]
    handed = next(decode_hand_over(n.payload) for n in got if n.channel == CHANNEL)
    assert handed.id == ids[5]  # claim order: the higher priority first
    assert await job_status(aconn, ids[0]) == "queued"
    assert await slots(aconn) == [1]


async def test_an_idle_worker_runs_handed_over_jobs_without_claiming_and_refills_its_slots(
    settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    @registry.task
    async def noop() -> None:
        pass

    async with running_worker(settings, registry, concurrency=2, poll_interval=60) as worker:
        await wait_until(lambda: _asleep_with_room(aconn, worker))  # past its confirming claim
        claims = worker.claimer.claims
        for _ in range(5):  # more than the 2 slots: the worker refills them as they run out
            await wait_until(lambda: _asleep_with_room(aconn, worker))
            (job_id,) = await insert(aconn, "('noop', 'default')")
            await wait_until(lambda job_id=job_id: _is(aconn, job_id, "succeeded"))
        assert (worker.claimer.handed, worker.claimer.claims) == (5, claims)
        assert worker.claimer.refills >= 2


async def test_a_worker_refills_its_slots_once_producers_used_half_of_them(
    settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    """Refilling only when none were left let the next producers find none, so their jobs were
    notified and claimed instead; half used up is the signal now."""

    @registry.task
    async def noop() -> None:
        pass

    async with running_worker(settings, registry, concurrency=4, poll_interval=60) as worker:
        await wait_until(lambda: _asleep_with_slots(aconn, worker, [4]))
        claimed, refills = worker.claimer.claimed, worker.claimer.refills
        for _ in range(2):
            (job_id,) = await insert(aconn, "('noop', 'default')")
            await wait_until(lambda job_id=job_id: _is(aconn, job_id, "succeeded"))
        await wait_until(lambda: worker.claimer.refills > refills)
        # both ran as handed over (none handed back to be claimed: the arming claim holds runners)
        assert (worker.claimer.handed, worker.hand_overs.handed_back) == (2, 0)
        assert worker.claimer.claimed == claimed
        # the free room at the refill: 3 or 4, as the second job had finished or not
        assert (await slots(aconn, worker.id))[0] > 2


async def test_a_refill_leaves_the_row_a_producer_holds_and_says_which_it_refilled(
    database_url: str, aconn: psycopg.AsyncConnection
) -> None:
    st = queries.statements("notifyq")
    refill = queries.queue_refill(st, worker=uuid.UUID(WORKER), slots=5, queues=["a", "b"])
    await arm(aconn, "a")
    await arm(aconn, "b")
    async with await psycopg.AsyncConnection.connect(database_url) as producer:
        await insert(producer)  # takes a slot of queue a: its transaction holds that row
        assert [r.queues for r in await queries.fetch_all(aconn, refill)] == [["b"]]
        await producer.commit()
    assert await slots(aconn) == [1, 5]
    (refilled,) = await queries.fetch_all(aconn, refill)
    assert sorted(refilled.queues) == ["a", "b"]
    assert not refilled.waiting  # the one job went to the waiter
    assert await slots(aconn) == [5, 5]


async def test_a_refill_says_whether_a_due_job_waits_queued_on_the_workers_queues(
    aconn: psycopg.AsyncConnection,
) -> None:
    st = queries.statements("notifyq")
    refill = queries.queue_refill(st, worker=uuid.UUID(WORKER), slots=2, queues=["a", "b"])
    await insert(aconn, "('t', 'c')")  # another queue's
    await insert(aconn, "('t', 'a', now() + interval '1 hour')", "task, queue, run_at")  # not due
    assert [r.waiting for r in await queries.fetch_all(aconn, refill)] == [False]
    await insert(aconn, "('t', 'b')")
    assert [r.waiting for r in await queries.fetch_all(aconn, refill)] == [True]


async def test_a_refill_without_slots_only_probes(aconn: psycopg.AsyncConnection) -> None:
    st = queries.statements("notifyq")
    probe = queries.queue_refill(st, worker=uuid.UUID(WORKER), slots=None, queues=["a", "b"])
    await arm(aconn, "a", slots=1)
    await insert(aconn, "('t', 'a')")  # handed over: the slot is used up
    assert [(r.queues, r.waiting) for r in await queries.fetch_all(aconn, probe)] == [([], False)]
    await insert(aconn, "('t', 'b')")  # nobody waits on b: queued
    for _ in range(7):  # and once prepared (psycopg prepares from the sixth run on)
        assert [(r.queues, r.waiting) for r in await queries.fetch_all(aconn, probe)] == [([], True)]
    assert await slots(aconn) == [0]  # nothing refilled


async def test_a_job_nobody_announced_runs_at_the_next_refill_not_at_the_poll(
    settings: Settings, registry: Registry, database_url: str, aconn: psycopg.AsyncConnection
) -> None:
    @registry.task
    async def noop() -> None:
        pass

    # the race: a producer's insert looked for waiters before the worker armed (so its trigger
    # neither notified nor handed over) and commits after the arm's confirming claim
    async with await psycopg.AsyncConnection.connect(database_url) as producer:
        (unannounced,) = await insert(producer, "('noop', 'default')")
        # no recheck: the refill's probe is what finds it here (the next test: the recheck)
        config = {"concurrency": 2, "poll_interval": 60, "recheck_after": 0}
        async with running_worker(settings, registry, **config) as worker:
            await wait_until(lambda: _asleep_with_room(aconn, worker))
            await producer.commit()
            for _ in range(2):  # handed over: the claimer sleeps on, and refills after the first
                await wait_until(lambda: _asleep_with_room(aconn, worker))
                (job_id,) = await insert(aconn, "('noop', 'default')")
                await wait_until(lambda job_id=job_id: _is(aconn, job_id, "succeeded"))
            await wait_until(lambda: _is(aconn, unannounced, "succeeded"))
            assert worker.claimer.found_waiting >= 1


@pytest.mark.parametrize("hand_over_max_rate", [2000, 0], ids=["hand-over", "wake-only"])
async def test_a_job_nobody_announced_and_nothing_follows_runs_at_the_recheck_not_at_the_poll(
    settings: Settings,
    registry: Registry,
    database_url: str,
    aconn: psycopg.AsyncConnection,
    hand_over_max_rate: float,
) -> None:
    @registry.task
    async def noop() -> None:
        pass

    # the same race, and no job after it; the recheck comes 2 s into the sleep (wide enough for
    # this test's commit to land before it on a slow machine), the poll after 60
    config = {"poll_interval": 60, "recheck_after": 2, "hand_over_max_rate": hand_over_max_rate}
    async with await psycopg.AsyncConnection.connect(database_url) as producer:
        (unannounced,) = await insert(producer, "('noop', 'default')")
        async with running_worker(settings, registry, **config) as worker:
            await wait_until(lambda: worker.claimer.sleeping)
            claims = worker.claimer.claims
            await producer.commit()
            await wait_until(lambda: _is(aconn, unannounced, "succeeded"))
            await wait_until(lambda: worker.claimer.sleeping)  # asleep again, armed
            assert worker.claimer.found_waiting == 1
            assert worker.claimer.rechecks >= 1
            # the claim that found it, and the confirming claim after arming again
            assert worker.claimer.claims == claims + 2


async def test_a_job_whose_producer_commits_after_the_first_recheck_runs_at_the_next_one(
    settings: Settings, registry: Registry, database_url: str, aconn: psycopg.AsyncConnection
) -> None:
    @registry.task
    async def noop() -> None:
        pass

    # rechecks at 0.2 s, 2 s and 20 s into the sleep; the poll after 60: the producer commits
    # after the first, so only the second can find its job within the wait below
    config = {"poll_interval": 60, "recheck_after": 0.2}
    async with await psycopg.AsyncConnection.connect(database_url) as producer:
        (unannounced,) = await insert(producer, "('noop', 'default')")
        async with running_worker(settings, registry, **config) as worker:
            await wait_until(lambda: worker.claimer.rechecks == 1)
            assert worker.claimer.sleeping
            await producer.commit()
            await wait_until(lambda: _is(aconn, unannounced, "succeeded"), seconds=15)
            assert worker.claimer.found_waiting == 1
            assert worker.claimer.rechecks >= 2  # the second found it (a third may follow its run)


async def test_a_recheck_that_finds_nothing_sleeps_on_without_a_claim(
    settings: Settings, registry: Registry
) -> None:
    config = {"poll_interval": 60, "recheck_after": 0.05}
    async with running_worker(settings, registry, **config) as worker:
        await wait_until(lambda: worker.claimer.rechecks == 1)
        claims, arms = worker.claimer.claims, worker.claimer.arms
        assert worker.claimer.sleeping
        assert worker.claimer.found_waiting == 0
    assert (worker.claimer.claims, worker.claimer.arms) == (claims, arms)


async def test_a_worker_handed_jobs_faster_than_its_max_rate_claims_instead_of_refilling(
    settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    @registry.task
    async def noop() -> None:
        pass

    # at most a job every 1,000 s: any two slots used up count as too fast
    config = {"concurrency": 2, "poll_interval": 60, "hand_over_max_rate": 0.001}
    async with running_worker(settings, registry, **config) as worker:
        await wait_until(lambda: _asleep_with_room(aconn, worker))
        claims = worker.claimer.claims
        for _ in range(2):
            (job_id,) = await insert(aconn, "('noop', 'default')")
            await wait_until(lambda job_id=job_id: _is(aconn, job_id, "succeeded"))
        assert worker.claimer.handed == 2
        await wait_until(lambda: worker.claimer.claims > claims)  # woken to claim, not to refill
        assert worker.claimer.refills == 0


async def test_with_hand_over_off_the_worker_is_only_woken(
    settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    @registry.task
    async def noop() -> None:
        pass

    async with running_worker(settings, registry, poll_interval=60, hand_over_max_rate=0) as worker:
        await wait_until(lambda: worker.claimer.arms >= 2)  # start-up, then the idle claimer's
        assert await slots(aconn, worker.id) == [0]
        (job_id,) = await insert(aconn, "('noop', 'default')")
        await wait_until(lambda: _is(aconn, job_id, "succeeded"))
        assert worker.claimer.handed == 0


async def test_a_hand_over_beyond_the_free_room_goes_back_to_the_queue(
    database_url: str, settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    """Three runners on two queues arm two slots on each: the fourth job handed over finds no free
    runner and is handed back (queued again, its attempt given back), and runs once one is free."""
    started, release = hold_task(registry)
    async with running_worker(settings, registry, queues=("a", "b"), concurrency=3, poll_interval=60) as w:
        await wait_until(lambda: _asleep_with_slots(aconn, w, [2, 2]))
        # one statement per job, one transaction: the four arrive together (the worker has no time
        # to refill or re-arm in between)
        async with await psycopg.AsyncConnection.connect(database_url) as producer:
            values = [f"""('hold', '{queue}', '{{"n": {n}}}')""" for n, queue in enumerate("aabb")]
            ids = [(await insert(producer, v, "task, queue, payload"))[0] for v in values]
            await producer.commit()
        await wait_until(lambda: w.claimer.handed == 4 and len(started) == 3)
        await wait_until(lambda: _is(aconn, ids[3], "queued"))
        assert w.hand_overs.handed_back == 1
        assert len(w.executor.running) == 3
        assert (await row(aconn, ids[3]))[:3] == ("queued", 0, None)
        release.set()
        await wait_until(lambda: w.counters.succeeded == 4)
    assert sorted(started) == [0, 1, 2, 3]


async def test_a_job_handed_back_runs_as_soon_as_a_runner_is_free_not_at_the_next_poll(
    settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    """One runner, a slot on each of two queues, the claimer asleep: a job handed over while the
    runner is busy is handed back (queued again). The write of its release notifies the queue
    (job_finish_many), so it is claimed once the runner is free, long before the poll (60 s)."""
    started, release = hold_task(registry)
    async with running_worker(settings, registry, queues=("a", "b"), concurrency=1, poll_interval=60) as w:
        await wait_until(lambda: _asleep_with_slots(aconn, w, [1, 1]))
        for queue in "ab":
            await insert(aconn, f"""('hold', '{queue}', '{{"n": "{queue}"}}')""", "task, queue, payload")
            await wait_until(lambda queue=queue: w.claimer.handed == "ab".index(queue) + 1)
        await wait_until(lambda: w.hand_overs.handed_back == 1 and w.completer.written == 1)
        assert (started, w.claimer.claimed) == (["a"], 0)  # b is queued again, unclaimed
        release.set()
        await wait_until(lambda: w.counters.succeeded == 2)
    assert started == ["a", "b"]


async def test_an_open_producer_transaction_holding_the_workers_row_does_not_stall_it(
    database_url: str, settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    """A producer took a slot of the worker's row and has not committed: other producers skip the
    row and notify the queue instead, and the worker claims, runs and arms again without waiting
    for that transaction (its own statements stop at `db_timeout`, longer than this test waits)."""

    @registry.task
    async def noop() -> None:
        pass

    async with running_worker(settings, registry, poll_interval=60) as worker:
        await wait_until(lambda: _asleep_with_room(aconn, worker))
        async with await psycopg.AsyncConnection.connect(database_url) as slow:
            (held,) = await insert(slow, "('noop', 'default')")  # holds the row until its commit
            arms = worker.claimer.arms
            for _ in range(2):
                (job_id,) = await insert(aconn, "('noop', 'default')")
                await wait_until(lambda job_id=job_id: _is(aconn, job_id, "succeeded"), seconds=5)
            await wait_until(lambda: worker.claimer.arms > arms, seconds=5)
            await slow.commit()
        await wait_until(lambda: _is(aconn, held, "succeeded"), seconds=5)


async def test_a_worker_stops_while_a_producer_holds_its_row_and_the_job_is_rescued_after(
    database_url: str, settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    """The stop does not wait for the producer (its registry delete gives up after db_timeout).
    The producer's commit then hands its job to the stopped worker; another worker's leader finds
    that worker dead (its lock is free), deletes it and rescues the job, which runs."""

    @registry.task
    async def noop() -> None:
        pass

    config = {"poll_interval": 60, "db_timeout": 1, "leader": False}
    async with await psycopg.AsyncConnection.connect(database_url) as slow:
        with anyio.fail_after(8):  # start, then a stop that must not wait for `slow`
            async with running_worker(settings, registry, **config) as first:
                await wait_until(lambda: _asleep_with_room(aconn, first))
                (job_id,) = await insert(slow, "('noop', 'default')")
        await slow.commit()
    assert (await row(aconn, job_id))[:3] == ("running", 1, str(first.id))
    async with running_worker(settings, registry, poll_interval=60, dead_confirm=0.2) as second:
        await wait_until(lambda: _is(aconn, job_id, "succeeded"))
    assert second.counters.succeeded == 1
    assert (await row(aconn, job_id))[:2] == ("succeeded", 2)


async def test_a_stopping_worker_releases_a_hand_over_it_never_received(
    settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    async with running_worker(settings, registry, poll_interval=60) as worker:
        await wait_until(lambda: _asleep_with_room(aconn, worker))
        # the notification goes where nobody listens, as if the listener were reconnecting
        await aconn.execute("UPDATE notifyq.queue_waiters SET channel = 'notifyq!wnowhere'")
        (job_id,) = await insert(aconn, "('t', 'default')")
        assert (await row(aconn, job_id))[:3] == ("running", 1, str(worker.id))
    assert (await row(aconn, job_id))[:3] == ("queued", 0, None)


async def test_a_hand_over_arriving_while_the_worker_stops_goes_back_to_the_queue(
    settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    release = anyio.Event()

    @registry.task
    async def hold() -> None:
        await release.wait()

    async with running_worker(settings, registry, poll_interval=60, shutdown_timeout=30) as worker:
        await wait_until(lambda: _asleep_with_room(aconn, worker))
        (held,) = await insert(aconn, "('hold', 'default')")
        await wait_until(lambda: worker.claimer.handed == 1)
        worker.stop()  # withdraws its demand, then waits for `hold`
        await wait_until(lambda: _has_slots(aconn, worker.id, []))
        # a producer that saw the worker armed just before: its hand-over arrives during the stop
        await hold_demand(aconn)
        await aconn.execute(
            "INSERT INTO notifyq.queue_waiters (queue, worker_id, slots, lease, channel)"
            " VALUES ('default', %s, 1, 30, %s)",
            (worker.id, worker.claimer.hand_over_channel),
        )
        (late,) = await insert(aconn, "('hold', 'default')")
        await wait_until(lambda: _is(aconn, late, "queued"))
        release.set()
    assert await job_status(aconn, held) == "succeeded"
    assert (await row(aconn, late))[:3] == ("queued", 0, None)


async def test_after_a_reconnect_the_worker_runs_a_hand_over_it_missed_once(
    database_url: str, settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    """A hand-over whose notification was lost is found when the listener reconnects (not after
    the lease), and its notification arriving late after all does not run it twice."""
    runs: list[int] = []

    @registry.task
    async def count() -> None:
        runs.append(1)

    async with (
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) as lost,
        running_worker(settings, registry, poll_interval=60) as worker,
    ):
        await lost.execute('LISTEN "notifyq!wnowhere"')
        await wait_until(lambda: _asleep_with_room(aconn, worker))
        await aconn.execute("UPDATE notifyq.queue_waiters SET channel = 'notifyq!wnowhere'")
        (job_id,) = await insert(aconn, "('count', 'default')")
        (message,) = [n.payload async for n in lost.notifies(timeout=2, stop_after=1)]
        await aconn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'notifyq listener'"
        )
        await wait_until(lambda: _is(aconn, job_id, "succeeded"))
        heard = worker.listener.notifications
        await aconn.execute("SELECT pg_notify(%s, %s)", (worker.claimer.hand_over_channel, message))
        await wait_until(lambda: worker.listener.notifications > heard)
        await wait_until(lambda: worker.completer.written >= 1)
    assert runs == [1]
    assert (await row(aconn, job_id))[:2] == ("succeeded", 1)  # its first attempt: no rescue


async def test_an_unreadable_hand_over_makes_the_worker_look_for_its_jobs(
    settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    @registry.task
    async def noop() -> None:
        pass

    async with running_worker(settings, registry, poll_interval=60) as worker:
        await wait_until(lambda: _asleep_with_room(aconn, worker))
        await aconn.execute("UPDATE notifyq.queue_waiters SET channel = 'notifyq!wnowhere'")
        (job_id,) = await insert(aconn, "('noop', 'default')")
        await aconn.execute("SELECT pg_notify(%s, 'not a job')", (worker.claimer.hand_over_channel,))
        await wait_until(lambda: _is(aconn, job_id, "succeeded"))
    assert (await row(aconn, job_id))[:2] == ("succeeded", 1)


async def test_a_lost_hand_over_runs_once_its_lease_expires(
    settings: Settings, registry: Registry, aconn: psycopg.AsyncConnection
) -> None:
    """The bound on a hand-over lost while the worker lives: the leader rescues it when its lease
    (here 1 s, never renewed: the worker does not know the job) expires, and a worker claims it."""

    @registry.task
    async def noop() -> None:
        pass

    async with running_worker(settings, registry, lease=1, leader_tick=0.2, poll_interval=60) as worker:
        await wait_until(lambda: _asleep_with_room(aconn, worker))
        await aconn.execute("UPDATE notifyq.queue_waiters SET channel = 'notifyq!wnowhere'")
        (job_id,) = await insert(aconn, "('noop', 'default')")
        await wait_until(lambda: _is(aconn, job_id, "succeeded"))
    cur = await aconn.execute("SELECT attempts, last_error FROM notifyq.jobs WHERE id = %s", (job_id,))
    attempts, error = await cur.fetchone() or ()
    assert attempts == 2
    assert "lease expired" in error


async def _asleep_with_room(aconn: psycopg.AsyncConnection, worker: Worker) -> bool:
    """Armed with room on every queue, and its claimer asleep: past the claim that confirms the
    queues empty (a job handed over during that claim would be handed back, and a count of claims
    read before it would be one short)."""
    if not worker.claimer.sleeping:
        return False
    cur = await aconn.execute(
        "SELECT bool_and(woken_at IS NULL AND slots > 0) FROM notifyq.queue_waiters WHERE worker_id = %s",
        (worker.id,),
    )
    got = await cur.fetchone()
    return bool(got and got[0])


async def _asleep_with_slots(aconn: psycopg.AsyncConnection, worker: Worker, expected: list[int]) -> bool:
    return worker.claimer.sleeping and await _has_slots(aconn, worker.id, expected)


async def _has_slots(aconn: psycopg.AsyncConnection, worker: object, expected: list[int]) -> bool:
    return await slots(aconn, worker) == expected


async def _is(aconn: psycopg.AsyncConnection, job_id: int, status: str) -> bool:
    return await job_status(aconn, job_id) == status
