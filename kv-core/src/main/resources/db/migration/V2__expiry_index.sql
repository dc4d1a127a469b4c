-- The expiry sweeper looks for live entries whose TTL has passed, oldest first.
CREATE INDEX kv_expire_time ON kv (expire_time) WHERE value IS NOT NULL AND expire_time IS NOT NULL;
