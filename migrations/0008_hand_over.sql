-- 0008_hand_over: a producer hands a due job straight to an idle worker, claim and all.
--
-- At light load an idle worker's share of enqueue-to-start was one claim round trip after the
-- notification (about 0.5 ms p50, 1.5 ms p99 here: bench/dispatch.py). Now the insert trigger, when
-- a waiting worker has room, claims the statement's first due job of the queue for that worker (the
-- claim's own SET list: running, attempts + 1, the worker's lease) and sends the whole job in a
-- NOTIFY on the worker's own channel. The worker starts it as it arrives, with no statement of its
-- own. Everything happens in the producer's transaction: a rollback takes back the claim and the
-- notification together, and nobody else can see the job before it is claimed.
--
-- queue_waiters gains what the trigger needs to claim for a worker:
--   slots   jobs the worker still takes this way on this queue (it arms with its free room, the
--           trigger counts down, the worker refills); 0 = only wake it, as before (API long polls)
--   lease   the worker's lease in seconds
--   channel the worker's own channel (names.hand_over_channel)
-- With no armed waiter that has a slot, a job too big for a notification (payload over 7,000 bytes;
-- the limit is 8,000 for the whole message) or a statement with more due jobs than the one handed
-- over, the queue is notified as before and workers claim. The fast path of 0007 is unchanged.
--
-- The lease runs from the insert (clock_timestamp(): a transaction's now() is its start), but the
-- worker learns of the job at the commit; it renews the lease within a second of that. So a
-- transaction already older than a quarter of the lease hands nothing over (it notifies instead),
-- and one that commits more than the lease (less that second) after its insert hands over a job
-- whose lease has run out: the leader may rescue it as the worker starts it, and it runs again, as
-- after any rescue. The job goes as it was inserted: a later UPDATE of the row in the same
-- transaction does not reach the worker (a DELETE leaves it a job whose outcome finds no row).
-- The function runs with the producer's rights: a producer's role needs UPDATE on jobs and
-- queue_waiters (the latter since 0004) besides INSERT.
--
-- A hand-over whose notification never arrives (the worker's listener connection was lost) is a
-- job leased to that worker that it does not run: the worker looks for such jobs when its listener
-- reconnects and when it stops, the leader rescues them when the worker dies, and in any case the
-- lease expiring (it is not renewed: the worker does not know the job) bounds the delay.

ALTER TABLE {schema}.queue_waiters
    ADD COLUMN slots   int NOT NULL DEFAULT 0 CHECK (slots >= 0),
    ADD COLUMN lease   float8 CHECK (lease > 0),
    ADD COLUMN channel text,
    ADD CONSTRAINT queue_waiters_hand_over CHECK (slots = 0 OR (lease IS NOT NULL AND channel IS NOT NULL));

CREATE OR REPLACE FUNCTION {schema}.jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    waiter record;
    took boolean;
    job text;
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
            -- take a slot of the most recently active armed worker with room (a dead or frozen
            -- one comes last), unless this transaction is already older than a quarter of its
            -- lease; SKIP LOCKED: never wait on another producer
            UPDATE {schema}.queue_waiters SET slots = slots - 1
            WHERE ctid = (
                SELECT q.ctid FROM {schema}.queue_waiters q
                WHERE q.queue = r.queue AND q.woken_at IS NULL AND q.slots > 0
                  AND clock_timestamp() - now() < make_interval(secs => q.lease / 4)
                ORDER BY q.since DESC
                LIMIT 1
                FOR UPDATE SKIP LOCKED
            )
            RETURNING worker_id, lease, channel INTO waiter;
            took := FOUND;
            IF took THEN
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
                RETURNING json_build_object(
                    'id', j.id, 'queue', j.queue, 'task', j.task, 'payload', j.payload,
                    'attempts', j.attempts, 'max_attempts', j.max_attempts, 'priority', j.priority,
                    'run_at', j.run_at, 'created_at', j.created_at,
                    'lease_expires_at', j.lease_expires_at)::text
                INTO job;
            END IF;
            IF took AND job IS NULL THEN  -- not handed over after all: give the slot back
                UPDATE {schema}.queue_waiters SET slots = slots + 1
                WHERE queue = r.queue AND worker_id = waiter.worker_id;
            ELSIF job IS NOT NULL THEN
                PERFORM pg_notify(waiter.channel, job);
            END IF;
            IF job IS NULL OR r.due > 1 THEN
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
