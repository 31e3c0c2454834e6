-- 0011_demand_until: the insert trigger's common case decided without a query.
--
-- Under load no worker waits (busy workers claim without being told), and the trigger learnt
-- that with two queries on every insert: a probe of queue_waiters and a look for scheduled rows
-- in its transition table. Measured on one server, nobody waiting (docs/benchmarks.md, 2026-12-04
-- late): a DO loop of single-row inserts, median of ten rounds of 5,000, 95.6 µs an insert
-- without a trigger, 101.0 with one that does nothing (the plpgsql call, the transition table),
-- 118.3 with 0010's, 105.8 with this one; pgbench, 8 clients, durable single-row inserts: 0.85 of
-- the rate without a trigger with 0010's, 0.97 with this one.
--
-- Now waiting workers also keep a lease in a sequence, `demand_until` (milliseconds since the
-- epoch), which the trigger reads with a function call (pg_sequence_last_value: no executor, no
-- snapshot). While it lies in the past no worker has waited since, and the trigger returns at
-- once: nobody is notified, not even of a scheduled job. While it lies ahead, the trigger does
-- exactly what 0010's did.
--
-- renew_demand() moves the lease to one second from now when less than 0.7 s of it is left, and
-- otherwise writes nothing (a sequence write is WAL-logged; a fleet of idle workers writes about
-- three times a second in all). A worker renews it as it publishes its demand (queue_wait) and
-- every 0.25 s while it sleeps (notifyq/worker/claimer.py, DEMAND_RENEW_EVERY), and the HTTP API's
-- long polls likewise, so the lease does not run out while anyone waits (a woken worker's
-- WAKE_GRACE included), and runs out within a second of the last renewal. A sequence is not
-- transactional: producers see a renewal before the arm commits (and find no armed row yet,
-- which is harmless), never after it. The race a producer can lose is the one of 0004 (it looked
-- before the arm and committed after the worker's confirming claim), and the worker's rechecks
-- cover it as before. Two workers renewing at once may write their leases in either order: they
-- differ by the time between their statements.
--
-- Scheduled jobs: a busy worker used to learn of them from the notification of their insert
-- (its delay set a timer), which no longer comes while nobody waits. So a worker asks when it
-- publishes its demand, and in each refill and recheck: next_run_at(queues), the earliest run_at
-- of a job queued on those queues. It reads the claim index once per priority present (the index
-- is ordered by priority, then run_at: the first entry of each priority is that priority's
-- earliest), so thousands of jobs scheduled far ahead cost it a few index probes, not a scan.
-- A job scheduled in the race above is found by the next recheck, as a due one is.
--
-- Workers of an older notifyq do not renew the lease: producers stop notifying them a second
-- after the migration, and their jobs come by their rechecks and the poll (poll_interval) until
-- they are upgraded.

-- Roles: every producer's insert reads the sequence and every waiting worker writes it, so that
-- nobody's role needs a new grant, reading is granted to PUBLIC (a time is all it holds) and
-- renewing runs as the owner (SECURITY DEFINER; EXECUTE is PUBLIC's by default).
CREATE SEQUENCE {schema}.demand_until AS bigint MINVALUE 0 START 0 NO CYCLE;
GRANT SELECT ON SEQUENCE {schema}.demand_until TO PUBLIC;

CREATE FUNCTION {schema}.renew_demand() RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT setval('{schema}.demand_until',
                  (extract(epoch FROM clock_timestamp()) * 1000)::bigint + 1000)  -- the lease
    WHERE coalesce(pg_sequence_last_value('{schema}.demand_until'), 0)
          < extract(epoch FROM clock_timestamp()) * 1000 + 700  -- the renewal threshold
$$;

CREATE FUNCTION {schema}.next_run_at(p_queues text[]) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    q text;
    prio smallint;
    first_at timestamptz;
    earliest timestamptz;
BEGIN
    FOREACH q IN ARRAY p_queues LOOP
        SELECT j.priority, j.run_at INTO prio, first_at
        FROM {schema}.jobs j
        WHERE j.queue = q AND j.status = 'queued'
        ORDER BY j.priority DESC, j.run_at, j.id
        LIMIT 1;
        WHILE FOUND LOOP
            earliest := least(earliest, first_at);
            SELECT j.priority, j.run_at INTO prio, first_at
            FROM {schema}.jobs j
            WHERE j.queue = q AND j.status = 'queued' AND j.priority < prio
            ORDER BY j.priority DESC, j.run_at, j.id
            LIMIT 1;
        END LOOP;
    END LOOP;
    RETURN earliest;
END
$$;

CREATE OR REPLACE FUNCTION {schema}.jobs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    waiter {schema}.queue_waiters;
    job {schema}.jobs;
BEGIN
    -- a plpgsql "simple expression", evaluated without the executor: keep it out of any query
    IF coalesce(pg_sequence_last_value('{schema}.demand_until'), 0) < extract(epoch FROM now()) * 1000 THEN
        RETURN NULL;  -- no worker has waited for a second: the common case under load
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM {schema}.queue_waiters w
        WHERE w.woken_at IS NULL OR w.woken_at > now() - interval '50 milliseconds'  -- WAKE_GRACE
    ) AND NOT EXISTS (
        SELECT 1 FROM new_jobs WHERE status = 'queued' AND run_at > now()
    ) THEN
        RETURN NULL;  -- nobody waits and nothing is scheduled
    END IF;
    FOR r IN
        SELECT queue, min(run_at) AS first_run_at, count(*) FILTER (WHERE run_at <= now()) AS due
        FROM new_jobs
        WHERE status = 'queued'
        GROUP BY queue
    LOOP
        IF r.first_run_at > now() THEN
            -- scheduled: the delay lets workers set a timer
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
