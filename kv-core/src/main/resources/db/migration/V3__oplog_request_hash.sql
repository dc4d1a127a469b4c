-- request_hash fingerprints what an operation does (kind, key, value, condition, TTL). A request id
-- names one request: its retry carries the same hash; the same id with another hash is a different
-- request and is refused. NULL for rows written before the column (and for expiries, which have no request).
ALTER TABLE kv_oplog ADD COLUMN request_hash TEXT;
