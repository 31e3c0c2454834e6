"""Every named statement of notifyq/sql/*.sql prepares against the migrated schema: its syntax,
tables, columns and parameter types are right before any code path runs it."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest

from notifyq import queries
from notifyq.models import JobResult, Outcome

PLACEHOLDER = re.compile(rb"%\((\w+)\)s")
TEXTS = queries.statement_texts()


def _numbered(statement: bytes) -> bytes:
    """psycopg's %(name)s placeholders as the server's $n (a name used twice keeps its number)."""
    numbers: dict[bytes, int] = {}
    return PLACEHOLDER.sub(lambda m: b"$%d" % numbers.setdefault(m.group(1), len(numbers) + 1), statement)


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_the_statement_prepares_on_the_migrated_schema(name: str, database_url: str) -> None:
    statement = queries.statements("notifyq").sql(name)
    if statement.lstrip().upper().startswith(b"COPY"):
        pytest.skip("COPY cannot be prepared; test_enqueue's bulk tests run it")
    with psycopg.connect(database_url, autocommit=True) as conn:
        if name == "migration_table_create":
            # several DDL commands, no parameters: they run, in a transaction rolled back after
            with conn.transaction():
                conn.execute(statement)
                raise psycopg.Rollback
            return
        result = conn.pgconn.prepare(name.encode(), _numbered(statement))
        assert result.status == psycopg.pq.ExecStatus.COMMAND_OK, result.error_message.decode()


@pytest.mark.anyio
async def test_the_one_queue_and_many_queue_claims_take_jobs_in_the_same_order(
    aconn: psycopg.AsyncConnection,
) -> None:
    """job_claim_batch_one (one queue) and job_claim_batch (several): priority first, then run_at, id."""
    await aconn.execute(
        "INSERT INTO notifyq.jobs (task, queue, priority, run_at) VALUES"
        " ('t', 'a', 0, now() - interval '3 s'), ('t', 'a', 5, now() - interval '1 s'),"
        " ('t', 'b', 9, now() - interval '2 s'), ('t', 'a', 0, now() - interval '4 s'),"
        " ('t', 'b', 0, now() - interval '9 s'), ('t', 'a', 0, now() + interval '1 h')"
    )
    st = queries.statements("notifyq")
    worker = uuid.uuid4()

    async def claim(queues: list[str], limit: int) -> list[tuple[str, int]]:
        query = queries.job_claim_batch(st, worker=worker, queues=queues, limit=limit, lease=60)
        assert query.name == ("job_claim_batch_one" if len(queues) == 1 else "job_claim_batch")
        return [(job.queue, job.priority) for job in await queries.fetch_all(aconn, query)]

    assert await claim(["a"], 2) == [("a", 5), ("a", 0)]
    # the next best of both queues: b's priority 9, then the oldest due of priority 0 (b's, 9 s ago)
    assert await claim(["a", "b"], 2) == [("b", 9), ("b", 0)]
    # a's last due job (3 s ago); the one due in an hour is not claimed
    assert await claim(["a", "b"], 5) == [("a", 0)]


@pytest.mark.anyio
@pytest.mark.parametrize("queues", [["a"], ["a", "b"]])
async def test_a_claim_returns_its_jobs_by_priority_whatever_order_it_found_them_in(
    aconn: psycopg.AsyncConnection, queues: list[str]
) -> None:
    """The UPDATE's join need not keep the order the rows were picked in (the many-queue claim
    did not): the claim sorts them at the end (the executor starts them, and HTTP workers get
    them, best first)."""
    await aconn.execute(
        "INSERT INTO notifyq.jobs (task, queue, priority) SELECT 't', 'a', p FROM unnest(%s::int2[]) p",
        ([0, 1, 7, 3, 9],),
    )
    query = queries.job_claim_batch(
        queries.statements("notifyq"), worker=uuid.uuid4(), queues=queues, limit=5, lease=60
    )
    assert [job.priority for job in await queries.fetch_all(aconn, query)] == [9, 7, 3, 1, 0]


@pytest.mark.anyio
async def test_a_batch_of_successes_is_written_as_the_general_finish_writes_a_success(
    aconn: psycopg.AsyncConnection,
) -> None:
    """job_succeed_many (every outcome a success without an error) against job_finish_many's
    success branch (taken when the batch holds another outcome): the same columns, an earlier
    attempt's error history kept, and neither writes a job whose claim token does not match."""
    await aconn.execute("INSERT INTO notifyq.jobs (task, queue) SELECT 't', 'q' FROM generate_series(1, 4)")
    st = queries.statements("notifyq")
    worker = uuid.uuid4()
    claim = queries.job_claim_batch(st, worker=worker, queues=["q"], limit=4, lease=60)

    def result(job_id: int, outcome: Outcome, attempt: int, error: str | None = None) -> JobResult:
        return JobResult(job_id=job_id, attempt=attempt, outcome=outcome, error=error)

    async def finish(results: list[JobResult], name: str, holder: uuid.UUID = worker) -> list[int]:
        query = queries.job_finish_many(st, worker=holder, results=results)
        assert query.name == name
        return sorted(await queries.fetch_all(aconn, query))

    # a first attempt fails and is retried at once: each job has an error history to keep
    ids = sorted(job.id for job in await queries.fetch_all(aconn, claim))
    retries = [result(i, Outcome.RETRY, 1, "first") for i in ids]
    assert await finish(retries, "job_finish_many") == ids
    assert sorted(job.id for job in await queries.fetch_all(aconn, claim)) == ids
    fast, general, failed, stale = ids

    assert await finish([result(fast, Outcome.SUCCEEDED, 2)], "job_succeed_many") == [fast]
    mixed = [result(general, Outcome.SUCCEEDED, 2), result(failed, Outcome.FAILED, 2, "boom")]
    assert await finish(mixed, "job_finish_many") == [general, failed]
    for holder, attempt in ((uuid.uuid4(), 2), (worker, 1)):  # another worker's token, an older attempt
        assert await finish([result(stale, Outcome.SUCCEEDED, attempt)], "job_succeed_many", holder) == []
        late = [result(stale, Outcome.SUCCEEDED, attempt), result(stale, Outcome.FAILED, attempt, "x")]
        assert await finish(late, "job_finish_many", holder) == []

    cur = await aconn.execute(
        "SELECT id, status::text, attempts, finished_at IS NOT NULL, started_at IS NOT NULL,"
        " lease_holder, lease_expires_at, last_error, jsonb_array_length(errors)"
        " FROM notifyq.jobs ORDER BY id"
    )
    rows = {row[0]: row[1:] for row in await cur.fetchall()}
    assert rows[fast] == rows[general] == ("succeeded", 2, True, True, None, None, "first", 1)
    assert rows[stale][:2] == ("running", 2)
    run_at = "SELECT count(DISTINCT run_at) FROM notifyq.jobs WHERE id = ANY(%s)"
    assert await (await aconn.execute(run_at, ([fast, general],))).fetchone() == (1,)  # the retry's
