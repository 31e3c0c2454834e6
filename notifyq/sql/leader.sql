-- Statements of the workers registry and the leader's maintenance services (notifyq/leader/).

-- name: worker_register
-- Upsert: a worker re-registers after its listener reconnects (e.g. after a database restart).
INSERT INTO {schema}.workers (id, host, pid, queues, concurrency, lock_key)
VALUES (%(id)s, %(host)s, %(pid)s, %(queues)s::text[], %(concurrency)s, %(lock_key)s)
ON CONFLICT (id) DO UPDATE SET last_beat_at = now();

-- name: worker_lock_takeover
-- Run by a reconnecting listener before it takes its worker's liveness lock. If the old link went
-- silent without closing (a NAT or load balancer lost the flow), the server still runs the old
-- session, which holds the lock and would never let go: the listener session holding this worker's
-- own key in this database is that stale session of ours, so end it (not the leader's session, whose
-- rescue probe holds the key for an instant). A no-op on a first connect.
SELECT pg_terminate_backend(l.pid)
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid AND a.application_name = 'notifyq listener'
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND ((l.classid::bigint << 32) | l.objid::bigint) = %(lock_key)s
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.pid <> pg_backend_pid();

-- name: worker_lock
-- Blocks while the leader's probe holds the lock for an instant (or a stale session of ours, ended
-- just before, exits).
SELECT pg_advisory_lock(%(lock_key)s);

-- name: worker_beat
UPDATE {schema}.workers SET last_beat_at = now() WHERE id = %(id)s RETURNING id;

-- name: worker_delete
DELETE FROM {schema}.workers WHERE id = %(id)s;

-- name: lock_timeout_local
-- For the rest of this transaction, a lock wait longer than this fails (LockNotAvailable) on the
-- server. A client-side deadline alone cannot stop a statement waiting on a lock: the server runs
-- it on, and commits it, once the lock is free.
SELECT set_config('lock_timeout', %(ms)s, true);

-- name: worker_list
SELECT id, host, pid, queues, concurrency, started_at, last_beat_at, leader_since,
       (SELECT count(*) FROM {schema}.jobs j WHERE j.status = 'running' AND j.lease_holder = w.id)::int
           AS running
FROM {schema}.workers w
ORDER BY started_at;

-- name: worker_probe
-- Which registered workers have lost their lock: taking it (and letting it go in the same
-- statement) succeeds only if no session holds it, i.e. the worker's connection is gone. Nothing is
-- probed within `grace` of the server's start: a restart drops every lock at once, and workers
-- need a moment to reconnect and take theirs again.
SELECT id,
       CASE WHEN pg_try_advisory_lock(lock_key) THEN pg_advisory_unlock(lock_key) ELSE false END
           AS lock_free
FROM {schema}.workers
WHERE now() - pg_postmaster_start_time() > make_interval(secs => %(grace)s);

-- name: worker_delete_many
DELETE FROM {schema}.workers WHERE id = ANY(%(ids)s::uuid[]);

-- name: leader_try_lock
SELECT pg_try_advisory_lock(%(key)s);

-- name: leader_mark
UPDATE {schema}.workers SET leader_since = CASE WHEN id = %(id)s THEN now() END
WHERE leader_since IS NOT NULL OR id = %(id)s;

-- name: job_rescue_many
-- Running jobs of dead workers, or whose lease expired, back to queued (or failed when the attempt
-- they were on was their last: a job that keeps killing its worker does not loop). The attempt was
-- counted at claim. Requeued jobs notify their queue so a live worker takes them at once.
WITH rescued AS (
    UPDATE {schema}.jobs j
    SET status = CASE WHEN j.attempts >= j.max_attempts THEN 'failed'::{schema}.job_status
                      ELSE 'queued' END,
        finished_at = CASE WHEN j.attempts >= j.max_attempts THEN now() END,
        run_at = now(),
        lease_holder = NULL,
        lease_expires_at = NULL,
        last_error = t.reason,
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempts, 'at', now(), 'error', t.reason))
    FROM (
        SELECT id,
               CASE WHEN lease_holder = ANY(%(dead)s::uuid[])
                    THEN 'worker ' || lease_holder || ' died while running this job'
                    ELSE 'lease expired: worker ' || lease_holder || ' stopped renewing it' END AS reason
        FROM {schema}.jobs
        WHERE status = 'running'
          AND (lease_holder = ANY(%(dead)s::uuid[]) OR lease_expires_at < now())
        ORDER BY id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) t
    WHERE j.id = t.id
    RETURNING j.id, j.queue, j.status
), wake AS (
    SELECT count(pg_notify({schema_literal} || ':' || queue, '')) AS n
    FROM (SELECT DISTINCT queue FROM rescued WHERE status = 'queued') due
)
SELECT id, status::text AS status FROM rescued WHERE (SELECT n FROM wake) >= 0;

-- name: job_prune_batch
-- One small batch of finished jobs past their retention, walking the primary key from the oldest
-- id (no index on finished_at: every finish would pay for it); SKIP LOCKED never waits.
DELETE FROM {schema}.jobs
WHERE id IN (
    SELECT id FROM {schema}.jobs
    WHERE finished_at IS NOT NULL
      AND ((status IN ('succeeded', 'cancelled') AND finished_at < now() - make_interval(secs => %(keep_done)s))
           OR (status = 'failed' AND finished_at < now() - make_interval(secs => %(keep_failed)s)))
    ORDER BY id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id;

-- name: cron_state_get
SELECT task, last_slot FROM {schema}.cron_state WHERE task = ANY(%(tasks)s::text[]);

-- name: cron_state_advance
INSERT INTO {schema}.cron_state (task, last_slot)
SELECT * FROM unnest(%(tasks)s::text[], %(slots)s::timestamptz[])
ON CONFLICT (task) DO UPDATE SET last_slot = greatest({schema}.cron_state.last_slot, excluded.last_slot);

-- name: database_now
SELECT now();

-- name: notification_queue_usage
SELECT pg_notification_queue_usage();

-- name: notification_queue_blockers
-- Run when the notification queue is filling. A session that LISTENs and stopped reading holds the
-- queue's tail; its backend then waits on ClientWrite, sending notifications nobody reads. `ours`:
-- a notifyq listener in this database whose role we may signal (the guard ends those it sees stuck
-- twice in a row); the others are only named.
SELECT pid, coalesce(application_name, ''),
       application_name = 'notifyq listener' AND datname = current_database()
           AND pg_has_role(usesysid, 'MEMBER') AS ours
FROM pg_stat_activity
WHERE wait_event = 'ClientWrite' AND pid <> pg_backend_pid();

-- name: backends_terminate
SELECT pg_terminate_backend(pid) FROM unnest(%(pids)s::int[]) AS pid;
