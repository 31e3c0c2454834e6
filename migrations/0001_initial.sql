-- 0001_initial: the jobs table, its claim index and the NOTIFY trigger.
--
-- Every migration is rendered with psycopg.sql before it runs: {schema} becomes the quoted schema
-- identifier and {schema_literal} its name as a string literal, so a literal brace is written {{ }}.

CREATE TYPE {schema}.job_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');

CREATE TABLE {schema}.jobs (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- queue names become LISTEN channels "<schema>:<queue>"; 40 characters keep them under 63 bytes
    queue               text NOT NULL DEFAULT 'default'
                        CONSTRAINT jobs_queue_format CHECK (queue ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]{{0,39}}$'),
    task                text NOT NULL
                        CONSTRAINT jobs_task_format CHECK (task ~ '^[A-Za-z_][A-Za-z0-9_.:-]{{0,199}}$'),
    payload             jsonb NOT NULL DEFAULT '{{}}',
    status              {schema}.job_status NOT NULL DEFAULT 'queued',
    -- higher runs first
    priority            smallint NOT NULL DEFAULT 0,
    attempts            integer NOT NULL DEFAULT 0,
    max_attempts        integer NOT NULL DEFAULT 20,
    run_at              timestamptz NOT NULL DEFAULT now(),
    -- the lease: which worker holds the job, and until when; (lease_holder, attempts) is the claim token
    lease_holder        uuid,
    lease_expires_at    timestamptz,
    last_error          text,
    errors              jsonb NOT NULL DEFAULT '[]',
    idempotency_key     text CONSTRAINT jobs_idempotency_key_length
                        CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    cancel_requested_at timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    CONSTRAINT jobs_attempts_range CHECK (attempts >= 0 AND attempts <= max_attempts),
    CONSTRAINT jobs_max_attempts_positive CHECK (max_attempts >= 1),
    CONSTRAINT jobs_errors_array CHECK (jsonb_typeof(errors) = 'array'),
    CONSTRAINT jobs_lease_iff_running CHECK (
        (status = 'running') = (lease_holder IS NOT NULL AND lease_expires_at IS NOT NULL)
    ),
    CONSTRAINT jobs_finished_iff_final CHECK (
        (status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)
    ),
    CONSTRAINT jobs_started_when_run CHECK (status NOT IN ('running', 'succeeded') OR started_at IS NOT NULL)
);

-- The claim walks this index in claim order and stops at the LIMIT; partial, so finished rows
-- (the bulk of the table) never enter it.
CREATE INDEX jobs_claim_idx ON {schema}.jobs (queue, priority DESC, run_at, id)
    WHERE status = 'queued';

-- Rescue looks for running jobs by lease expiry.
CREATE INDEX jobs_lease_idx ON {schema}.jobs (lease_expires_at) WHERE status = 'running';

-- Retention deletes finished jobs oldest first.
CREATE INDEX jobs_finished_idx ON {schema}.jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE UNIQUE INDEX jobs_idempotency_key_idx ON {schema}.jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- One NOTIFY per distinct queue per statement. Jobs due now get the empty payload, which Postgres
-- folds when a transaction notifies the same queue again; scheduled jobs carry the seconds until
-- their earliest run_at (relative, so the workers' clocks do not matter) so idle workers can set a
-- timer instead of polling for them.
CREATE FUNCTION {schema}.jobs_notify() RETURNS trigger
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
        PERFORM pg_notify(
            {schema_literal} || ':' || r.queue,
            CASE WHEN r.first_run_at <= now() THEN ''
                 ELSE extract(epoch FROM r.first_run_at - now())::text END
        );
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify AFTER INSERT ON {schema}.jobs
    REFERENCING NEW TABLE AS new_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.jobs_notify();
