-- kv_request_id: the first use of each client request id (the request_id field, the Idempotency-Key header, or an
-- x-request-id the client set itself). A replica records it here, in PostgreSQL, before it publishes the write, so
-- before the write is acknowledged: the first request under an id keeps it whatever happens to Redis, and a different
-- request under the same id is refused before anything reaches the queue, even while the first is still queued
-- (different keys live in different partitions, applied by different consumers in no common order, so only a record
-- made before the publish can say which request came first). A row lives as long as the operation log's retention.
-- Writes without a client request id (Envoy's own ids included) never touch this table.
CREATE TABLE kv_request_id (
    request_id   TEXT PRIMARY KEY,
    operation_id TEXT        NOT NULL,
    request_hash TEXT        NOT NULL,
    key          TEXT        NOT NULL,
    kind         TEXT        NOT NULL,
    accept_time  TIMESTAMPTZ NOT NULL
);
-- GetOperation: an operation with a recorded request id and no log row yet is PENDING.
CREATE INDEX kv_request_id_operation ON kv_request_id (operation_id);
-- Retention: the sweep forgets rows older than the operation log keeps.
CREATE INDEX kv_request_id_accept_time ON kv_request_id (accept_time);
