-- 0002_leader: the workers registry and cron state, for the leader's maintenance services.

-- One row per live worker process. Each holds a session advisory lock on `lock_key` on its listening
-- connection; the leader proves a worker dead by taking that lock. A regular (logged) table: after a
-- crash or failover the registry must still say who held what.
CREATE TABLE {schema}.workers (
    id           uuid PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    queues       text[] NOT NULL,
    concurrency  integer NOT NULL CHECK (concurrency >= 1),
    lock_key     bigint NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    last_beat_at timestamptz NOT NULL DEFAULT now(),
    leader_since timestamptz
);

-- The last slot enqueued per periodic task: catch-up after downtime starts from here. Exactly-once
-- per slot does not rest on this table but on the jobs' unique idempotency key per task and slot.
CREATE TABLE {schema}.cron_state (
    task      text PRIMARY KEY,
    last_slot timestamptz NOT NULL
);
