-- 0010_hand_over_at_insert: notifyq's own client inserts a handed-over job as running.
--
-- With 0008 a handed-over job is written twice in the producer's transaction: the insert, then the
-- trigger's UPDATE of that row to running (a second row version, and index entries for it). Now
-- notifyq's single-job insert (notifyq/sql/jobs.sql, job_insert_hand_over) takes the waiter's slot
-- first and inserts the job as running for it; the trigger sees no queued row and does nothing.
-- Measured with pgbench on one server (one client, synchronous_commit off, a waiter with slots):
-- 0.22-0.28 ms a statement against 0.28-0.33 through the trigger, 384 WAL bytes against 661. With
-- nobody waiting that statement costs more than a plain insert, so the client sends it only while
-- its tries find a worker (notifyq/hand_over.py).
--
-- So that both paths take the same slot and send the same message, the trigger now uses the two
-- functions below too (its behaviour is that of 0008):
--   hand_over_slot(queue, eligible)  takes a slot of the most recently active armed worker with
--       room on `queue` (a dead or frozen one comes last; SKIP LOCKED: never waits on another
--       producer), unless the transaction is older than a quarter of that worker's lease or
--       `eligible` is false; returns the worker's row, or NULL when it took none
--   hand_over_message(job)  the NOTIFY payload the worker decodes (notifyq.models.decode_hand_over)
-- A job's eligibility stays the producer's to state: due now, payload under 7,000 bytes as text.

CREATE FUNCTION {schema}.hand_over_slot(p_queue text, p_eligible boolean)
RETURNS {schema}.queue_waiters
LANGUAGE plpgsql AS $$
DECLARE
    waiter {schema}.queue_waiters;
BEGIN
    IF p_eligible IS NOT TRUE THEN
        RETURN NULL;
    END IF;
    UPDATE {schema}.queue_waiters SET slots = slots - 1
    WHERE ctid = (
        SELECT q.ctid FROM {schema}.queue_waiters q
        WHERE q.queue = p_queue AND q.woken_at IS NULL AND q.slots > 0
          AND clock_timestamp() - now() < make_interval(secs => q.lease / 4)
        ORDER BY q.since DESC
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    RETURNING * INTO waiter;
    RETURN waiter;
END
$$;

CREATE FUNCTION {schema}.hand_over_message(j {schema}.jobs) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', j.id, 'queue', j.queue, 'task', j.task, 'payload', j.payload,
        'attempts', j.attempts, 'max_attempts', j.max_attempts, 'priority', j.priority,
        'run_at', j.run_at, 'created_at', j.created_at,
        'lease_expires_at', j.lease_expires_at)::text
$$;

CREATE OR REPLACE FUNCTION {schema}.jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    waiter {schema}.queue_waiters;
    job {schema}.jobs;
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM {schema}.queue_waiters w
        WHERE w.woken_at IS NULL OR w.woken_at > now() - interval '50 milliseconds'  -- WAKE_GRACE
    ) AND NOT EXISTS (
        SELECT 1 FROM new_jobs WHERE status = 'queued' AND run_at > now()
    ) THEN
        RETURN NULL;  -- nobody waits and nothing is scheduled: the common case under load
    END IF;
    FOR r IN
        SELECT queue, min(run_at) AS first_run_at, count(*) FILTER (WHERE run_at <= now()) AS due
        FROM new_jobs
        WHERE status = 'queued'
        GROUP BY queue
    LOOP
        IF r.first_run_at > now() THEN
            -- scheduled: the delay lets idle workers set a timer (rare, so never gated)
            PERFORM pg_notify({schema_literal} || ':' || r.queue,
                              extract(epoch FROM r.first_run_at - now())::text);
        ELSIF EXISTS (
            SELECT 1 FROM {schema}.queue_waiters w
            WHERE w.queue = r.queue
              AND (w.woken_at IS NULL OR w.woken_at > now() - interval '50 milliseconds')  -- WAKE_GRACE
        ) THEN
            job := NULL;
            waiter := {schema}.hand_over_slot(r.queue, true);
            IF waiter.worker_id IS NOT NULL THEN
                UPDATE {schema}.jobs j
                SET status = 'running',
                    attempts = j.attempts + 1,
                    lease_holder = waiter.worker_id,
                    lease_expires_at = clock_timestamp() + make_interval(secs => waiter.lease),
                    started_at = clock_timestamp()
                WHERE j.id = (
                    SELECT n.id FROM new_jobs n
                    WHERE n.queue = r.queue AND n.status = 'queued' AND n.run_at <= now()
                    ORDER BY n.priority DESC, n.run_at, n.id
                    LIMIT 1
                  )
                  AND octet_length(j.payload::text) <= 7000
                RETURNING j.* INTO job;
                IF job.id IS NULL THEN  -- not handed over after all: give the slot back
                    UPDATE {schema}.queue_waiters SET slots = slots + 1
                    WHERE queue = r.queue AND worker_id = waiter.worker_id;
                ELSE
                    PERFORM pg_notify(waiter.channel, {schema}.hand_over_message(job));
                END IF;
            END IF;
            IF job.id IS NULL OR r.due > 1 THEN
                PERFORM pg_notify({schema_literal} || ':' || r.queue, '');
                UPDATE {schema}.queue_waiters SET woken_at = now()
                WHERE ctid = ANY (ARRAY(
                    SELECT ctid FROM {schema}.queue_waiters
                    WHERE queue = r.queue AND woken_at IS NULL
                    FOR UPDATE SKIP LOCKED
                ));
            END IF;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
