-- kv: one row per key ever written. value IS NULL marks a tombstone: the key is
-- deleted but its version is kept, so versions never go back across a re-create
-- and version-guarded cache writes stay correct.
CREATE TABLE kv (
    key         TEXT COLLATE "C" PRIMARY KEY,
    value       TEXT,
    version     BIGINT      NOT NULL,
    create_time TIMESTAMPTZ NOT NULL,
    update_time TIMESTAMPTZ NOT NULL,
    expire_time TIMESTAMPTZ
);

-- kv_oplog: one row per operation applied or rejected. Its primary key is the
-- de-duplication record: a redelivered operation id is skipped.
CREATE TABLE kv_oplog (
    id          TEXT PRIMARY KEY,
    key         TEXT        NOT NULL,
    kind        TEXT        NOT NULL,
    version     BIGINT,
    outcome     TEXT        NOT NULL,
    reason      TEXT,
    request_id  TEXT,
    accept_time TIMESTAMPTZ NOT NULL,
    apply_time  TIMESTAMPTZ NOT NULL
);

CREATE INDEX kv_oplog_apply_time ON kv_oplog (apply_time);
