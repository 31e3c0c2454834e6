-- Statements of the migration runner (notifyq/migrate.py).

-- name: migration_lock
-- Held until the transaction ends, so concurrent `notifyq migrate` calls queue up behind it.
SELECT pg_advisory_xact_lock(%(key)s);

-- name: migration_table_create
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: migration_list
SELECT version, name, checksum FROM {schema}.migrations ORDER BY version;

-- name: migration_record
INSERT INTO {schema}.migrations (version, name, checksum)
VALUES (%(version)s, %(name)s, %(checksum)s);
