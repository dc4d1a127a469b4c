-- The operation that produced each row's current version, and its kind (PUT, DELETE or EXPIRE), so a resumed Watch
-- stream's catch-up can say what a key's current state came from exactly as the live event did: its operation id,
-- and EXPIRE rather than DELETE for a key whose TTL ran out. NULL for rows written before these columns.
ALTER TABLE kv ADD COLUMN operation_id TEXT, ADD COLUMN change TEXT;
