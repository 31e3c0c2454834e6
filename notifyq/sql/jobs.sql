-- Statements of the client (notifyq/client.py, notifyq/sync.py): enqueue, inspect, cancel, retry.

-- name: job_insert
-- An idempotency key already taken inserts nothing and returns no row; the caller then looks the
-- key up in a new statement (and so a new snapshot), after the racing insert has committed.
INSERT INTO {schema}.jobs (queue, task, payload, priority, max_attempts, run_at, idempotency_key)
VALUES (
    %(queue)s, %(task)s, %(payload)s::jsonb, %(priority)s, %(max_attempts)s,
    coalesce(%(run_at)s::timestamptz, now() + make_interval(secs => coalesce(%(delay)s::float8, 0))),
    %(idempotency_key)s
)
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id;

-- name: job_insert_unkeyed
-- A job without an idempotency key: a plain INSERT. ON CONFLICT would insert the row speculatively
-- (a token, then a confirmation record) even though a NULL key never conflicts: about 45 of an
-- insert's 395 WAL bytes. An armed worker is still handed the job, by the insert trigger.
INSERT INTO {schema}.jobs (queue, task, payload, priority, max_attempts, run_at)
VALUES (
    %(queue)s, %(task)s, %(payload)s::jsonb, %(priority)s, %(max_attempts)s,
    coalesce(%(run_at)s::timestamptz, now() + make_interval(secs => coalesce(%(delay)s::float8, 0)))
)
RETURNING id;

-- name: job_insert_hand_over
-- An unkeyed job as job_insert_unkeyed, but a due job with a small payload first takes a slot of
-- an armed worker on its queue (migrations/0010) and goes in as running for it, claim and all, and
-- its message goes to that worker's channel: one row version, where the insert trigger's hand-over
-- writes two. Without a slot it goes in queued and the trigger notifies. Dearer than the plain
-- insert when nobody waits, so the client sends it only while it hands jobs over (hand_over.py).
WITH job AS (
    SELECT %(queue)s::text AS queue, %(task)s::text AS task, %(payload)s::jsonb AS payload,
           %(priority)s::int2 AS priority, %(max_attempts)s::int4 AS max_attempts,
           coalesce(%(run_at)s::timestamptz,
                    now() + make_interval(secs => coalesce(%(delay)s::float8, 0))) AS run_at
), waiter AS (
    SELECT w.*
    FROM job, {schema}.hand_over_slot(
        job.queue, job.run_at <= now() AND octet_length(job.payload::text) <= 7000
    ) AS w
    WHERE w.worker_id IS NOT NULL
), inserted AS (
    INSERT INTO {schema}.jobs (
        queue, task, payload, priority, max_attempts, run_at,
        status, attempts, lease_holder, lease_expires_at, started_at
    )
    SELECT job.queue, job.task, job.payload, job.priority, job.max_attempts, job.run_at,
           CASE WHEN w.worker_id IS NULL THEN 'queued' ELSE 'running' END::{schema}.job_status,
           CASE WHEN w.worker_id IS NULL THEN 0 ELSE 1 END,
           w.worker_id,
           clock_timestamp() + make_interval(secs => w.lease),
           CASE WHEN w.worker_id IS NOT NULL THEN clock_timestamp() END
    FROM job LEFT JOIN waiter AS w ON true
    RETURNING *
)
SELECT i.id, i.lease_holder IS NOT NULL AS handed_over,
       (SELECT pg_notify(w.channel, {schema}.hand_over_message(i)) FROM waiter AS w) AS notified
FROM inserted AS i;

-- name: job_insert_many
-- One statement for any number of jobs; rows come back in input order (INSERT … SELECT … ORDER BY
-- keeps it), minus those whose idempotency key was already taken.
INSERT INTO {schema}.jobs (queue, task, payload, priority, max_attempts, run_at, idempotency_key)
SELECT q, t, p::jsonb, pr, ma, coalesce(ra, now() + make_interval(secs => coalesce(d, 0))), k
FROM unnest(
    %(queues)s::text[], %(tasks)s::text[], %(payloads)s::text[], %(priorities)s::int2[],
    %(max_attempts)s::int4[], %(run_ats)s::timestamptz[], %(delays)s::float8[], %(keys)s::text[]
) WITH ORDINALITY AS u (q, t, p, pr, ma, ra, d, k, ord)
ORDER BY ord
ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id, idempotency_key;

-- name: job_insert_many_unkeyed
-- The common bulk case, no idempotency keys: a plain INSERT, without ON CONFLICT's speculative
-- insertion (which costs about as much again per row). Ids come back in input order.
INSERT INTO {schema}.jobs (queue, task, payload, priority, max_attempts, run_at)
SELECT q, t, p::jsonb, pr, ma, coalesce(ra, now() + make_interval(secs => coalesce(d, 0)))
FROM unnest(
    %(queues)s::text[], %(tasks)s::text[], %(payloads)s::text[], %(priorities)s::int2[],
    %(max_attempts)s::int4[], %(run_ats)s::timestamptz[], %(delays)s::float8[]
) AS u (q, t, p, pr, ma, ra, d)
RETURNING id, NULL::text AS idempotency_key;

-- name: job_ids_reserve
-- Ids for a bulk COPY, taken from the table's own sequence (so plain inserts never collide). The
-- sequence is looked up once (MATERIALIZED): called per row, the catalog lookup cost 30 ms per
-- 10,000 ids, six times the nextval calls themselves.
WITH seq AS MATERIALIZED (
    SELECT pg_get_serial_sequence({schema_literal} || '.jobs', 'id')::regclass AS id
)
SELECT nextval(seq.id)
FROM seq, generate_series(1, %(count)s);

-- name: job_copy
-- The fastest bulk path, for jobs due now without idempotency keys: rows stream in with reserved
-- ids; run_at and the rest take their defaults. The statement trigger notifies as for INSERT.
COPY {schema}.jobs (id, queue, task, payload, priority, max_attempts) FROM STDIN;

-- name: job_ids_by_idempotency_key
SELECT id, idempotency_key FROM {schema}.jobs WHERE idempotency_key = ANY(%(keys)s::text[]);

-- name: job_get
SELECT id, queue, task, payload, status, priority, attempts, max_attempts, run_at, lease_holder,
       lease_expires_at, last_error, errors, idempotency_key, cancel_requested_at, created_at,
       started_at, finished_at
FROM {schema}.jobs
WHERE id = %(id)s;

-- name: job_list
-- Newest first; `before` is the cursor (the last id of the previous page).
SELECT id, queue, task, payload, status, priority, attempts, max_attempts, run_at, lease_holder,
       lease_expires_at, last_error, errors, idempotency_key, cancel_requested_at, created_at,
       started_at, finished_at
FROM {schema}.jobs
WHERE (%(queue)s::text IS NULL OR queue = %(queue)s)
  AND (%(task)s::text IS NULL OR task = %(task)s)
  AND (%(status)s::text IS NULL OR status = %(status)s::{schema}.job_status)
  AND (%(before)s::bigint IS NULL OR id < %(before)s)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: job_cancel
-- Queued: cancelled now. Running: a cancel request, and a notification to its worker. Finished:
-- untouched. Returns the status after the call and whether a running job was asked to stop.
WITH target AS (
    SELECT id, status FROM {schema}.jobs WHERE id = %(id)s FOR UPDATE
), cancelled AS (
    UPDATE {schema}.jobs j SET status = 'cancelled', finished_at = now(),
                              last_error = coalesce(%(reason)s, j.last_error)
    FROM target t WHERE j.id = t.id AND t.status = 'queued'
    RETURNING j.id
), requested AS (
    UPDATE {schema}.jobs j SET cancel_requested_at = coalesce(j.cancel_requested_at, now())
    FROM target t WHERE j.id = t.id AND t.status = 'running'
    RETURNING j.id, pg_notify(%(channel)s, j.id::text) IS NULL AS notified
)
SELECT t.id,
       CASE WHEN EXISTS (SELECT 1 FROM cancelled) THEN 'cancelled' ELSE t.status::text END AS status,
       EXISTS (SELECT 1 FROM requested) AS requested
FROM target t;

-- name: job_retry
-- A failed or cancelled job back to queued with a fresh set of attempts; wakes its queue.
WITH target AS (
    SELECT id, status FROM {schema}.jobs WHERE id = %(id)s FOR UPDATE
), retried AS (
    UPDATE {schema}.jobs j
    SET status = 'queued', attempts = 0, run_at = now(), finished_at = NULL,
        cancel_requested_at = NULL
    FROM target t WHERE j.id = t.id AND t.status IN ('failed', 'cancelled')
    RETURNING j.id, pg_notify({schema_literal} || ':' || j.queue, '') IS NULL AS notified
)
SELECT t.id, t.status::text AS previous, EXISTS (SELECT 1 FROM retried) AS retried
FROM target t;

-- name: queue_stats
SELECT queue,
       count(*) FILTER (WHERE status = 'queued') AS queued,
       count(*) FILTER (WHERE status = 'running') AS running,
       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE status = 'queued' AND run_at <= now()))::float8
           AS oldest_due_age,
       count(*) FILTER (WHERE finished_at > now() - interval '1 minute') AS finished_last_minute
FROM {schema}.jobs
GROUP BY queue
ORDER BY queue;
