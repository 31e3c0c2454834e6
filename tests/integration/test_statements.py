"""Every named statement of notifyq/sql/*.sql prepares against the migrated schema: its syntax,
tables, columns and parameter types are right before any code path runs it."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest

from notifyq import queries

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
