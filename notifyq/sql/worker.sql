-- Statements of the worker (notifyq/worker/): claim, finish, extend leases.
-- Every finishing write matches the claim token (lease_holder, attempts): a worker that lost its
-- lease cannot finish a job that was rescued and claimed again.

-- name: job_claim_batch
-- One index-ordered scan per queue (a LATERAL per queue: `queue = ANY(...)` would make Postgres sort
-- every queued row of those queues before the LIMIT), then the best `limit` across queues.
-- MATERIALIZED keeps the planner from joining the locked subquery into the UPDATE and locking more
-- rows than it claims. With several queues up to limit x queues rows are locked for the instant of
-- this statement; only `limit` are claimed, and the rest are free again when it commits.
-- The claimed rows are sorted at the end (the join need not keep the CTE's order): the executor
-- starts them, and HTTP workers get them, best first. How the planner joins them is not settled
-- (docs/benchmarks.md, 2026-12-04, before midnight: on a table of a few thousand analyzed rows it
-- hash-joins over a scan of the whole table; the forms tried instead go wrong on an empty one).
WITH picked AS MATERIALIZED (
    SELECT c.id
    FROM unnest(%(queues)s::text[]) AS q (name)
    CROSS JOIN LATERAL (
        SELECT id, priority, run_at
        FROM {schema}.jobs
        WHERE status = 'queued' AND queue = q.name AND run_at <= now()
        ORDER BY priority DESC, run_at, id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) c
    ORDER BY c.priority DESC, c.run_at, c.id
    LIMIT %(limit)s
), claimed AS (
    UPDATE {schema}.jobs j
    SET status = 'running',
        attempts = j.attempts + 1,
        lease_holder = %(worker)s,
        lease_expires_at = now() + make_interval(secs => %(lease)s),
        started_at = now()
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.id, j.queue, j.task, j.payload::text AS payload, j.attempts, j.max_attempts,
              j.priority, j.run_at, j.created_at, j.lease_expires_at
)
SELECT * FROM claimed ORDER BY priority DESC, run_at, id;

-- name: job_claim_batch_one
-- The claim of a worker on one queue (the usual case): the same rows in the same order as
-- job_claim_batch, without the per-queue LATERAL and its sort. Postgres re-plans the prepared
-- many-queue form on every run (its generic plan looks dearer than the custom ones), about 0.2 ms
-- per claim measured here; this form is cheap to plan either way.
WITH picked AS MATERIALIZED (
    SELECT id
    FROM {schema}.jobs
    WHERE status = 'queued' AND queue = %(queue)s AND run_at <= now()
    ORDER BY priority DESC, run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE {schema}.jobs j
    SET status = 'running',
        attempts = j.attempts + 1,
        lease_holder = %(worker)s,
        lease_expires_at = now() + make_interval(secs => %(lease)s),
        started_at = now()
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.id, j.queue, j.task, j.payload::text AS payload, j.attempts, j.max_attempts,
              j.priority, j.run_at, j.created_at, j.lease_expires_at
)
SELECT * FROM claimed ORDER BY priority DESC, run_at, id;

-- name: job_finish_many
-- Writes a batch of outcomes. Requeued jobs due now (retry without delay, release on shutdown)
-- notify their queue so another worker picks them up at once. Returns the ids written; a missing id
-- means this worker no longer held that job.
WITH outcome AS (
    SELECT *
    FROM unnest(%(ids)s::bigint[], %(attempts)s::int4[], %(outcomes)s::text[],
                %(errors)s::text[], %(retry_in)s::float8[])
         AS o (id, attempt, outcome, error, retry_in)
), done AS (
    UPDATE {schema}.jobs j
    -- a retry on the last attempt ends as failed: a queued row at max_attempts would make every
    -- later claim of its queue fail the attempts CHECK
    SET status = CASE WHEN o.outcome = 'retry' AND j.attempts >= j.max_attempts THEN 'failed'
                      WHEN o.outcome IN ('retry', 'release') THEN 'queued'
                      ELSE o.outcome::{schema}.job_status END,
        attempts = CASE WHEN o.outcome = 'release' THEN j.attempts - 1 ELSE j.attempts END,
        run_at = CASE WHEN o.outcome = 'retry' THEN now() + make_interval(secs => o.retry_in)
                      WHEN o.outcome = 'release' THEN now()
                      ELSE j.run_at END,
        finished_at = CASE WHEN o.outcome = 'release' OR (o.outcome = 'retry' AND j.attempts < j.max_attempts)
                           THEN NULL ELSE now() END,
        lease_holder = NULL,
        lease_expires_at = NULL,
        last_error = coalesce(o.error, j.last_error),
        errors = CASE WHEN o.error IS NULL THEN j.errors
                      ELSE j.errors || jsonb_build_array(jsonb_build_object(
                          'attempt', j.attempts, 'at', now(), 'error', o.error)) END
    FROM outcome o
    WHERE j.id = o.id AND j.attempts = o.attempt AND j.status = 'running'
      AND j.lease_holder = %(worker)s
    RETURNING j.id, j.queue, j.status, j.run_at
), wake AS (
    SELECT count(pg_notify({schema_literal} || ':' || queue, '')) AS n
    FROM (SELECT DISTINCT queue FROM done WHERE status = 'queued' AND run_at <= now()) due
)
SELECT id FROM done WHERE (SELECT n FROM wake) >= 0;

-- name: job_succeed_many
-- job_finish_many for the common batch: every outcome a success without an error. It writes what
-- that statement writes for them, with a tenth of its expressions and no CTE: the server parses,
-- plans and runs it in about two thirds of the time (measured here: 0.38 against 0.59 ms a
-- round trip for one outcome, 1.4 against 1.9 ms for 100).
UPDATE {schema}.jobs j
SET status = 'succeeded', finished_at = now(), lease_holder = NULL, lease_expires_at = NULL
FROM unnest(%(ids)s::bigint[], %(attempts)s::int4[]) AS o (id, attempt)
WHERE j.id = o.id AND j.attempts = o.attempt AND j.status = 'running'
  AND j.lease_holder = %(worker)s
RETURNING j.id;

-- name: lease_extend_many
-- The heartbeat: one statement for every job the worker holds. Returns the jobs still held, and
-- whether a cancel was requested for each (the backstop for a lost cancel notification).
UPDATE {schema}.jobs j
SET lease_expires_at = now() + make_interval(secs => %(lease)s)
FROM unnest(%(ids)s::bigint[], %(attempts)s::int4[]) AS h (id, attempt)
WHERE j.id = h.id AND j.attempts = h.attempt AND j.status = 'running'
  AND j.lease_holder = %(worker)s
RETURNING j.id, j.cancel_requested_at IS NOT NULL AS cancel_requested;

-- name: queue_wait
-- This worker found its queues empty and is about to sleep: (re)arm its rows so producers notify
-- (migrations/0004_notify_demand.sql), or hand it up to `slots` jobs per queue (0008_hand_over.sql).
-- The claimer claims once more after this commits. It never waits on a producer: a row a
-- producer's transaction holds is left as it is (SKIP LOCKED; the insert only adds missing rows).
-- That producer took a slot of it (the row is armed, and its hand-over comes at the commit) or
-- stamped it (its notification comes at the commit, and the worker arms again after it).
-- It also renews the demand lease (migrations/0011_demand_until.sql): producers look for waiters
-- only while it runs, and the sleeping claimer renews it (demand_renew) until it wakes. Returns
-- the seconds until the earliest job queued on `queues` is due (its timer: producers that find no
-- waiter do not notify scheduled jobs), <= 0 if one is due now, NULL if none is queued.
WITH renewed AS (
    SELECT {schema}.renew_demand()
), rearmed AS (
    UPDATE {schema}.queue_waiters
    SET woken_at = NULL, since = now(), slots = %(slots)s::int, lease = %(lease)s::float8,
        channel = %(channel)s::text
    WHERE ctid = ANY (ARRAY(
        SELECT ctid FROM {schema}.queue_waiters
        WHERE worker_id = %(worker)s AND queue = ANY (%(queues)s::text[])
          AND (woken_at IS NOT NULL OR slots IS DISTINCT FROM %(slots)s::int)
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING queue
), added AS (
    INSERT INTO {schema}.queue_waiters (queue, worker_id, slots, lease, channel)
    SELECT q, %(worker)s, %(slots)s::int, %(lease)s::float8, %(channel)s::text
    FROM unnest(%(queues)s::text[]) AS q
    WHERE NOT EXISTS (  -- only rows not there yet: a unique check would wait on a producer's update
        SELECT 1 FROM {schema}.queue_waiters w WHERE w.queue = q AND w.worker_id = %(worker)s
    )
    ON CONFLICT (queue, worker_id) DO NOTHING
)
SELECT extract(epoch FROM {schema}.next_run_at(%(queues)s::text[]) - now())::float8 AS next_in
FROM renewed;  -- read, so that it runs (a CTE nobody reads is skipped)

-- name: demand_renew
-- A waiting worker keeps producers looking for it: renews the demand lease when less than 0.7 s
-- of it is left (migrations/0011_demand_until.sql). Returns the new lease end, NULL if unchanged.
SELECT {schema}.renew_demand();

-- name: queue_refill
-- Producers handed this worker the jobs its armed rows allowed, and it has room again: allow
-- exactly `slots` on each (the worker counts from there), and move `since` up: producers prefer the
-- most recently active worker, so a frozen or dead one that still has rows is chosen last.
-- Only rows still armed (a row a producer's notification stamped means the claimer is awake and
-- re-arms when it is done), and SKIP LOCKED: a producer's transaction still holding a row (it took
-- a slot) must not stall the claimer; that row keeps what it has. Returns the queues refilled, and
-- the seconds until the earliest job queued on the worker's queues is due (<= 0: one is due now;
-- NULL: none is queued; migrations/0011_demand_until.sql, next_run_at). While producers hand it
-- jobs the claimer sleeps, so a job none of them told it of (its producer looked for waiters
-- before the worker armed and committed after the arm's confirming claim) would wait for the
-- poll; the claimer claims it instead, or sets its timer for a scheduled one. next_run_at reads
-- the claim index a probe per priority present: the earlier probe here, an index walk in the
-- claim's order filtered on run_at, read every job scheduled for later first.
-- With `slots` NULL it only probes (the claimer's recheck some time after it went to sleep: it
-- catches the same race when no producer hands the worker jobs) and refills nothing.
WITH refilled AS (
    UPDATE {schema}.queue_waiters SET slots = %(slots)s, since = now()
    WHERE %(slots)s::int IS NOT NULL AND ctid = ANY (ARRAY(
        SELECT ctid FROM {schema}.queue_waiters
        WHERE worker_id = %(worker)s AND woken_at IS NULL
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING queue
)
SELECT ARRAY(SELECT queue FROM refilled) AS queues,
       extract(epoch FROM {schema}.next_run_at(%(queues)s::text[]) - now())::float8 AS next_in;

-- name: queue_unwait
-- A stopping worker withdraws its demand: from the commit on, producers neither notify it nor hand
-- it jobs. A row a producer's transaction holds stays (SKIP LOCKED: a stop never waits on a
-- producer); its hand-over is handed back, and the registry row's delete takes the row with it.
DELETE FROM {schema}.queue_waiters
WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM {schema}.queue_waiters WHERE worker_id = %(worker)s FOR UPDATE SKIP LOCKED
));

-- name: job_leased_to
-- Every job leased to this worker. After its listener reconnects, the worker starts those it does
-- not know: hand-overs whose notification went to the lost connection; a stopping worker, its
-- runs over and their outcomes written, hands back any still there.
SELECT id, queue, task, payload::text AS payload, attempts, max_attempts, priority, run_at,
       created_at, lease_expires_at
FROM {schema}.jobs
WHERE status = 'running' AND lease_holder = %(worker)s;
