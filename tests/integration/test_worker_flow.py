"""Throughput-shaped behaviour: many workers share jobs exactly once; batches keep coming while full;
cancel; graceful shutdown; the listener and pool survive killed backends."""

from __future__ import annotations

import logging
from collections import Counter

import anyio
import psycopg
import pytest

from notifyq import Client, JobContext, JobSpec, JobStatus, Registry, Settings, names
from notifyq.models import ClaimedJob
from notifyq.worker.waker import Wake
from tests.helpers import running_worker, status_counts, wait_until

pytestmark = pytest.mark.anyio


async def test_2000_jobs_across_4_workers_each_run_exactly_once(
    settings: Settings, registry: Registry, client: Client, aconn: psycopg.AsyncConnection
) -> None:
    runs: Counter[int] = Counter()

    @registry.task
    async def count(payload: dict[str, int]) -> None:
        runs[payload["n"]] += 1

    async with (
        running_worker(settings, registry, poll_interval=60) as w1,
        running_worker(settings, registry, poll_interval=60) as w2,
        running_worker(settings, registry, poll_interval=60) as w3,
        running_worker(settings, registry, poll_interval=60) as w4,
    ):
        for start in range(0, 2000, 250):
            await client.enqueue_many(
                [JobSpec(task=count, payload={"n": n}) for n in range(start, start + 250)]
            )

        async def all_done() -> bool:
            return (await status_counts(aconn)).get("succeeded") == 2000

        await wait_until(all_done, seconds=60)
        shares = [w.counters.succeeded for w in (w1, w2, w3, w4)]
    assert sorted(runs) == list(range(2000))
    assert set(runs.values()) == {1}
    assert sum(shares) == 2000


async def test_claims_come_in_batches_and_repeat_while_full(
    settings: Settings, registry: Registry, client: Client, aconn: psycopg.AsyncConnection
) -> None:
    @registry.task
    async def noop() -> None: ...

    await client.enqueue_many([JobSpec(task=noop) for _ in range(200)])
    async with running_worker(settings, registry, concurrency=10, poll_interval=60) as worker:

        async def drained() -> bool:
            return (await status_counts(aconn)).get("succeeded") == 200

        await wait_until(drained, seconds=30)
    # 200 jobs in batches of up to 10 free slots: about 20 claims, never one per job
    assert worker.claimer.claimed == 200
    assert worker.claimer.claims < 100


async def test_while_jobs_stream_in_the_worker_lingers_instead_of_asking_for_notifications(
    settings: Settings, registry: Registry, client: Client, aconn: psycopg.AsyncConnection
) -> None:
    @registry.task
    async def noop() -> None: ...

    async def armed() -> bool:  # the worker waits on the queue: producers would notify it
        cur = await aconn.execute("SELECT woken_at IS NULL FROM notifyq.queue_waiters")
        row = await cur.fetchone()
        return row is not None and bool(row[0])

    # a linger of 0.5 s: the stream ends after STREAM_PATIENCE (10) empty lingers, 5 s
    async with running_worker(settings, registry, poll_interval=60, claim_linger=0.5) as worker:
        # past its first claim and the confirming one: asleep, armed, woken only by notifications
        await wait_until(lambda: worker.claimer.sleeping)
        assert await armed()
        # several jobs in one claim: jobs are streaming, so after them the worker claims again
        # after its linger rather than publishing its demand at once
        await client.enqueue_many([JobSpec(task=noop) for _ in range(3)])
        await wait_until(lambda: worker.counters.succeeded == 3)
        claims = worker.claimer.claims
        # two lingers' claims found nothing, about 1 s into the stream's 5 s of patience: a
        # pause that short does not end the stream, so it still asks for no notifications
        await wait_until(lambda: worker.claimer.claims >= claims + 2)
        assert not await armed()
        # ten empty lingers in a row: the stream has stopped, it asks for notifications again
        await wait_until(armed, seconds=15)
        await wait_until(lambda: worker.claimer.sleeping)  # and its confirming claim is done
        claims = worker.claimer.claims
        job_id = await client.enqueue(noop)
        await wait_until(lambda: worker.counters.succeeded == 4)
    assert (await client.get(job_id)).status is JobStatus.SUCCEEDED
    # one lone job: woken by its notification, claimed, then demand published and confirmed
    assert worker.claimer.claims - claims <= 3


async def test_in_a_stream_a_short_claim_that_found_jobs_is_followed_at_once_an_empty_one_lingers(
    settings: Settings, registry: Registry, client: Client
) -> None:
    """The linger is for an empty queue: jobs found mean more arrive about as fast as a claim
    takes, so waiting a linger after them would only add it to the next job's wait."""

    @registry.task
    async def noop() -> None: ...

    steps: list[str] = []  # what the claimer did, in order: "claimed N", "linger"
    async with running_worker(settings, registry, poll_interval=60, claim_linger=0.5) as worker:
        await wait_until(lambda: worker.claimer.sleeping)
        claimer, run_once, wait = worker.claimer, worker.claimer.run_once, worker.claimer.waker.wait

        async def recorded_run_once(limit: int) -> list[ClaimedJob]:
            jobs = await run_once(limit)
            steps.append(f"claimed {len(jobs)}")
            return jobs

        async def recorded_wait(delay: float, **kwargs: bool) -> Wake:
            if delay == claimer.linger and not kwargs:
                steps.append("linger")
            return await wait(delay, **kwargs)

        claimer.run_once, claimer.waker.wait = recorded_run_once, recorded_wait  # type: ignore[method-assign]
        for burst in range(1, 4):  # three bursts, each a short claim with jobs (several: a stream)
            done, lingered = 3 * burst, steps.count("linger")
            await client.enqueue_many([JobSpec(task=noop) for _ in range(3)])
            # run, and lingering again since (the closure is awaited within this iteration)
            await wait_until(lambda: worker.counters.succeeded == done and steps.count("linger") > lingered)  # noqa: B023
    lingers = [i for i, step in enumerate(steps) if step == "linger"]
    assert len(lingers) >= 3
    # the first burst's first job may come handed over (the worker was armed), the rest claimed
    assert len([step for step in steps if step.startswith("claimed") and step != "claimed 0"]) >= 3
    # every linger follows a claim that found nothing; a claim that found jobs is followed by a claim
    assert all(steps[i - 1] == "claimed 0" for i in lingers)


async def test_a_woken_worker_takes_the_next_jobs_within_the_wake_grace_without_re_arming(
    settings: Settings, registry: Registry, client: Client
) -> None:
    """A chain of 20 jobs, each enqueued by the one before (so one at a time, each woken by its
    notification): producers keep notifying for WAKE_GRACE after a wake-up, so the worker does not
    publish its demand again after every job (it did: one arm a job), only once a grace is used up."""

    @registry.task
    async def chain(payload: dict[str, int]) -> None:
        if payload["left"]:
            await client.enqueue(chain, {"left": payload["left"] - 1})

    # no claim linger: the jobs do not count as a stream, so only the grace saves the re-arming
    async with running_worker(settings, registry, poll_interval=60, claim_linger=0) as worker:
        await wait_until(lambda: worker.claimer.sleeping)  # armed at start, asleep
        arms = worker.claimer.arms
        await client.enqueue(chain, {"left": 19})
        await wait_until(lambda: worker.counters.succeeded == 20, seconds=30)
        # a 2 ms hop per job fits about a dozen into each 30 ms grace it uses: a couple of arms
        assert worker.claimer.arms - arms < 10


async def test_a_poll_only_worker_also_lingers_while_jobs_stream_in(
    settings: Settings, registry: Registry, client: Client
) -> None:
    """Without LISTEN the linger still applies: a job arriving during a stream waits for the
    linger, not for the poll (60 s here)."""

    @registry.task
    async def noop() -> None: ...

    await client.enqueue_many([JobSpec(task=noop) for _ in range(3)])
    async with running_worker(settings, registry, listen=False, poll_interval=60, claim_linger=2.0) as worker:
        await wait_until(lambda: worker.counters.succeeded == 3)
        # the first claim took several jobs: the worker claims again after its linger
        job_id = await client.enqueue(noop)
        await wait_until(lambda: worker.counters.succeeded == 4)
    assert (await client.get(job_id)).status is JobStatus.SUCCEEDED


async def test_an_idle_worker_writes_an_outcome_at_once_a_busy_one_batches_it(
    settings: Settings, registry: Registry, client: Client
) -> None:
    release = anyio.Event()

    ran: list[int] = []

    @registry.task
    async def noop(ctx: JobContext) -> None:
        ran.append(ctx.job_id)

    @registry.task
    async def hold() -> None:
        await release.wait()

    async def is_(job_id: int, status: JobStatus) -> bool:
        return (await client.get(job_id)).status is status

    # a flush interval longer than any wait here: only the idle rule can write an outcome sooner
    async with running_worker(settings, registry, poll_interval=60, flush_interval=10) as worker:
        await wait_until(lambda: worker.claimer.sleeping)
        alone = await client.enqueue(noop)
        await wait_until(lambda: is_(alone, JobStatus.SUCCEEDED), seconds=5)

        held = await client.enqueue(hold)
        await wait_until(lambda: held in worker.executor.running)
        beside = await client.enqueue(noop)
        await wait_until(lambda: beside in ran and beside not in worker.executor.running)
        # another job runs: its outcome waits in the batch for the interval (or for idleness)
        assert [r.job_id for r in worker.completer.buffer] == [beside]
        assert await is_(beside, JobStatus.RUNNING)
        release.set()
        await wait_until(lambda: is_(held, JobStatus.SUCCEEDED), seconds=5)
        assert await is_(beside, JobStatus.SUCCEEDED)


async def test_cancel_queued_running_finished_and_unknown(
    settings: Settings, registry: Registry, client: Client
) -> None:
    started = anyio.Event()

    @registry.task
    async def long_running() -> None:
        started.set()
        await anyio.sleep(60)

    queued = await client.enqueue("not_run_here", None, queue="elsewhere")
    assert (await client.cancel(queued)).status is JobStatus.CANCELLED
    assert (await client.cancel(queued)).status is JobStatus.CANCELLED
    assert (await client.cancel(10**12)).status is None

    async with running_worker(settings, registry, poll_interval=60):
        running = await client.enqueue(long_running)
        with anyio.fail_after(10):
            await started.wait()
        result = await client.cancel(running)
        assert (result.status, result.requested) == (JobStatus.RUNNING, True)

        async def cancelled() -> bool:
            return (await client.get(running)).status is JobStatus.CANCELLED

        await wait_until(cancelled, seconds=5)
    assert (await client.cancel(running)).requested is False


async def test_graceful_shutdown_hands_leases_back_without_counting_the_attempt(
    settings: Settings, registry: Registry, client: Client
) -> None:
    started = anyio.Event()
    runs: list[int] = []

    @registry.task
    async def slow(ctx: JobContext) -> None:
        runs.append(ctx.attempt)
        if len(runs) == 1:
            started.set()
            await anyio.sleep(60)

    async with running_worker(settings, registry, poll_interval=60, shutdown_timeout=0.2) as worker:
        # idle first: a job handed over during the start's confirming claim is handed back (a
        # release too) and claimed again
        await wait_until(lambda: worker.claimer.sleeping)
        job_id = await client.enqueue(slow)
        with anyio.fail_after(10):
            await started.wait()
        worker.stop()
    job = await client.get(job_id)
    assert (job.status, job.attempts, job.lease_holder) == (JobStatus.QUEUED, 0, None)
    assert worker.counters.released == 1

    async with running_worker(settings, registry, poll_interval=60):

        async def done() -> bool:
            return (await client.get(job_id)).status is JobStatus.SUCCEEDED

        await wait_until(done)
    assert runs == [1, 1]


async def test_stop_now_skips_the_grace_period(
    settings: Settings, registry: Registry, client: Client
) -> None:
    started = anyio.Event()

    @registry.task
    async def slow() -> None:
        started.set()
        await anyio.sleep(60)

    with anyio.fail_after(10):
        async with running_worker(settings, registry, poll_interval=60, shutdown_timeout=60) as worker:
            job_id = await client.enqueue(slow)
            await started.wait()
            worker.stop(now=True)
    assert (await client.get(job_id)).status is JobStatus.QUEUED


async def test_a_killed_listener_is_replaced_and_jobs_keep_flowing(
    settings: Settings, registry: Registry, client: Client, aconn: psycopg.AsyncConnection
) -> None:
    ran: list[int] = []
    event = anyio.Event()

    @registry.task
    async def mark(payload: dict[str, int]) -> None:
        ran.append(payload["n"])
        if len(ran) == 2:
            event.set()

    async with running_worker(settings, registry, poll_interval=60) as worker:
        await client.enqueue(mark, {"n": 1})
        await aconn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'notifyq listener'"
        )
        await wait_until(lambda: worker.listener.connects >= 2, seconds=10)
        await client.enqueue(mark, {"n": 2})
        with anyio.fail_after(10):
            await event.wait()
    assert sorted(ran) == [1, 2]


async def test_killed_pool_connections_do_not_stop_the_worker(
    settings: Settings, registry: Registry, client: Client, aconn: psycopg.AsyncConnection
) -> None:
    @registry.task
    async def noop() -> None: ...

    async with running_worker(settings, registry, poll_interval=60) as worker:
        await client.enqueue(noop)
        await wait_until(lambda: worker.counters.succeeded == 1)
        await aconn.execute(
            # waits for each backend to end (PG 14+): the client's next checkout then sees it gone
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        ids = await client.enqueue_many([JobSpec(task=noop) for _ in range(20)])

        async def all_done() -> bool:
            statuses = [(await client.get(i)).status for i in ids]
            return set(statuses) == {JobStatus.SUCCEEDED}

        await wait_until(all_done, seconds=30)


async def test_a_stopping_worker_logs_how_it_got_its_jobs(
    settings: Settings, registry: Registry, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """One line at the stop tells an operator how the jobs came: claimed in how many statements,
    handed over by producers, how often the worker published its demand."""

    @registry.task
    async def noop() -> None: ...

    caplog.set_level(logging.INFO, logger="notifyq.worker")
    async with running_worker(settings, registry, poll_interval=60) as worker:
        await client.enqueue_many([JobSpec(task=noop) for _ in range(3)])
        await wait_until(lambda: worker.counters.succeeded == 3)
    c = worker.claimer
    # a job handed over during a claim in flight is handed back, then claimed: counted in both
    assert c.claimed + c.handed - worker.hand_overs.handed_back == 3
    line = (
        f"worker {worker.id} stopped: {c.claimed} jobs from {c.claims} claims, {c.handed} handed over;"
        f" armed {c.arms} times, refilled {c.refills}, rechecked {c.rechecks}"
        f" ({c.found_waiting} found a job unannounced)"
    )
    assert line in caplog.messages


async def test_a_stop_during_a_statement_lets_it_finish_instead_of_closing_its_connection(
    settings: Settings,
    registry: Registry,
    database_url: str,
    aconn: psycopg.AsyncConnection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Seen in the bench: a stop that came while the claimer published its demand cancelled that
    statement; psycopg's cancel request was cancelled in turn, so it closed the connection with a
    warning, and the pool discarded it. The statement now runs to its end (bounded by its own
    deadline) and the stop takes effect after it."""
    caplog.set_level(logging.WARNING, logger="psycopg")
    blocked = (  # the arm (queue_wait's CTE) itself: the refill's probe also writes queue_waiters
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        " AND query LIKE '%%rearmed AS (%%' AND pid <> pg_backend_pid()"
    )

    async def arm_blocked() -> bool:
        row = await (await aconn.execute(blocked)).fetchone()
        return row is not None and row[0] > 0

    locker = await psycopg.AsyncConnection.connect(database_url)
    try:
        # no rechecks: their probe would wait on the lock too
        async with running_worker(settings, registry, poll_interval=60, recheck_after=0) as worker:
            await wait_until(lambda: worker.claimer.sleeping)
            arms = worker.claimer.arms
            await locker.execute("LOCK TABLE notifyq.queue_waiters IN EXCLUSIVE MODE")
            # woken with nothing to claim, the worker publishes its demand again: that waits on the lock
            await aconn.execute("SELECT pg_notify(%s, '')", (names.queue_channel("notifyq", "default"),))
            await wait_until(arm_blocked)
            claims = worker.claimer.claims
            worker.stop()
            await locker.rollback()  # the stop is delivered to the claimer before this returns
    finally:
        await locker.close()
    assert worker.claimer.arms == arms + 1  # the statement ended, and was counted
    assert worker.claimer.claims == claims  # and the stop came before the claim that follows an arm
    assert not [r for r in caplog.records if r.name.startswith("psycopg")]
