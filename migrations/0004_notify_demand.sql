-- 0004_notify_demand: notify only when a worker waits on the queue.
--
-- NOTIFY takes a database-wide lock from the notify until the end of the commit, so notifying
-- commits run one at a time. Workers that are busy do not need the hint (they claim again as soon as
-- they have room), so the trigger only notifies while some worker has said it waits on the queue.
--
-- Protocol (see notifyq/worker/claimer.py): a worker whose claim came back empty (re)arms its
-- (queue, worker) rows here (woken_at NULL), claims once more, and only then sleeps. A producer whose
-- insert finds an armed waiter notifies the queue and stamps woken_at on the waiters it woke (SKIP
-- LOCKED: it never waits on another producer). For WAKE_GRACE after a wake-up producers keep
-- notifying, which covers the woken worker's claim cycle until it re-arms (without it, a job whose
-- trigger ran in that cycle and committed after the worker's last claim would wait for the poll).
-- A busy worker does not re-arm, so a busy queue costs producers one index probe and no NOTIFY.
-- The table is UNLOGGED: it is a hint that workers rewrite whenever they go idle; after a crash it
-- is empty and workers, whose listeners reconnect and claim at once, publish their demand again.

CREATE UNLOGGED TABLE {schema}.queue_waiters (
    queue     text NOT NULL,
    worker_id uuid NOT NULL REFERENCES {schema}.workers (id) ON DELETE CASCADE,
    since     timestamptz NOT NULL DEFAULT now(),
    -- NULL: waiting; else when a producer's notification woke it
    woken_at  timestamptz,
    PRIMARY KEY (queue, worker_id)
);
CREATE INDEX queue_waiters_worker_idx ON {schema}.queue_waiters (worker_id);

CREATE OR REPLACE FUNCTION {schema}.jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT queue, min(run_at) AS first_run_at
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
            PERFORM pg_notify({schema_literal} || ':' || r.queue, '');
            UPDATE {schema}.queue_waiters SET woken_at = now()
            WHERE ctid = ANY (ARRAY(
                SELECT ctid FROM {schema}.queue_waiters
                WHERE queue = r.queue AND woken_at IS NULL
                FOR UPDATE SKIP LOCKED
            ));
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
