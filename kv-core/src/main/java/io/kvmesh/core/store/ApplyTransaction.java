package io.kvmesh.core.store;

import io.kvmesh.core.model.Entry;
import org.jdbi.v3.core.Handle;

import java.time.Instant;
import java.util.Collection;
import java.util.List;

/**
 * The statements of an applier's transaction, on one {@link Handle}: lock the batch's keys, find the operations
 * already applied, then write every key's new state and every operation's log row in <em>one</em> statement.
 * <p>
 * Written against the handle rather than as SqlObject methods of {@link KvDao}: attaching the DAO to each
 * transaction's handle and dispatching through its proxy took about a quarter of the consumer's CPU under REST PUT
 * (2026-12-07 profile, docs/flame/), and the two JDBC batches it replaced ran one INSERT per key and one per operation,
 * each parsed, bound and executed on its own by PostgreSQL. Here each parameter is an array (one element per row)
 * that {@code unnest} turns back into rows, so the SQL text, and PostgreSQL's prepared statement, is the same for every
 * batch size.
 */
public final class ApplyTransaction {
    /**
     * The new state of each key (at most one row per key: ON CONFLICT DO UPDATE may not touch a row twice in one
     * statement) and the log rows, in one round trip. No ON CONFLICT on the log: a repeated operation id fails the
     * whole transaction, the last line of defence against applying an operation twice.
     */
    static final String WRITE = "WITH entries AS ("
            + " INSERT INTO kv (key, value, version, create_time, update_time, expire_time, operation_id, change)"
            + " SELECT * FROM unnest(:keys::text[], :values::text[], :versions::bigint[], :createTimes::timestamptz[],"
            + " :updateTimes::timestamptz[], :expireTimes::timestamptz[], :operationIds::text[], :changes::text[])"
            + " ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version,"
            + " create_time = excluded.create_time, update_time = excluded.update_time,"
            + " expire_time = excluded.expire_time, operation_id = excluded.operation_id, change = excluded.change)"
            + " INSERT INTO kv_oplog (id, key, kind, version, outcome, reason, request_id, request_hash, accept_time,"
            + " apply_time) SELECT * FROM unnest(:ids::text[], :logKeys::text[], :kinds::text[],"
            + " :logVersions::bigint[], :outcomes::text[], :reasons::text[], :requestIds::text[], :requestHashes::text[],"
            + " :acceptTimes::timestamptz[], :applyTimes::timestamptz[])";
    static final String LOCK_ALL = "SELECT " + KvDao.COLUMNS + " FROM kv WHERE key = ANY(:keys) ORDER BY key FOR UPDATE";
    static final String KNOWN = "SELECT " + KvDao.OPLOG_COLUMNS + " FROM kv_oplog WHERE id = ANY(:ids)";
    static final String LOCK_EXPIRED = "SELECT " + KvDao.COLUMNS + " FROM kv WHERE value IS NOT NULL"
            + " AND expire_time <= :now ORDER BY expire_time LIMIT :limit FOR UPDATE SKIP LOCKED";

    private static final Rows.EntryMapper ENTRIES = new Rows.EntryMapper();
    private static final Rows.OplogMapper OPLOG = new Rows.OplogMapper();

    private final Handle handle;

    ApplyTransaction(Handle handle) {
        this.handle = handle;
    }

    /**
     * Rows of the given keys, locked for the rest of the transaction, in key order (no deadlocks). An array
     * parameter keeps the SQL text the same for every batch size.
     */
    public List<Entry> lockAll(String[] keys) {
        return handle.createQuery(LOCK_ALL).bind("keys", keys).map(ENTRIES).list();
    }

    /** The log rows of those of these operation ids that were applied (or rejected) already. */
    public List<OplogRow> knownOperations(String[] ids) {
        return handle.createQuery(KNOWN).bind("ids", ids).map(OPLOG).list();
    }

    /**
     * Live entries whose TTL has passed, oldest first, locked; rows another applier holds are skipped, so several
     * consumers can sweep at once without doing the same work.
     */
    public List<Entry> lockExpired(Instant now, int limit) {
        return handle.createQuery(LOCK_EXPIRED).bind("now", now).bind("limit", limit).map(ENTRIES).list();
    }

    /** Writes the final state of each changed key (each key at most once) and one log row per operation. */
    public void write(Collection<Change> changes, Collection<OplogRow> log) {
        if (changes.isEmpty() && log.isEmpty()) {
            return;
        }
        int n = changes.size();
        String[] keys = new String[n];
        String[] values = new String[n];
        String[] versions = new String[n];
        String[] createTimes = new String[n];
        String[] updateTimes = new String[n];
        String[] expireTimes = new String[n];
        String[] operationIds = new String[n];
        String[] kinds = new String[n];
        int i = 0;
        for (Change c : changes) {
            keys[i] = c.key();
            values[i] = c.value();
            versions[i] = Long.toString(c.version());
            createTimes[i] = text(c.createTime());
            updateTimes[i] = text(c.updateTime());
            expireTimes[i] = text(c.expireTime());
            operationIds[i] = c.operationId();
            kinds[i] = c.kind() == null ? null : c.kind().name();
            i++;
        }
        int m = log.size();
        String[] ids = new String[m];
        String[] logKeys = new String[m];
        String[] logKinds = new String[m];
        String[] logVersions = new String[m];
        String[] outcomes = new String[m];
        String[] reasons = new String[m];
        String[] requestIds = new String[m];
        String[] requestHashes = new String[m];
        String[] acceptTimes = new String[m];
        String[] applyTimes = new String[m];
        int j = 0;
        for (OplogRow r : log) {
            ids[j] = r.id();
            logKeys[j] = r.key();
            logKinds[j] = r.kind().name();
            logVersions[j] = r.version() == null ? null : Long.toString(r.version());
            outcomes[j] = r.outcome().name();
            reasons[j] = r.reason();
            requestIds[j] = r.requestId();
            requestHashes[j] = r.requestHash();
            acceptTimes[j] = text(r.acceptTime());
            applyTimes[j] = text(r.applyTime());
            j++;
        }
        handle.createUpdate(WRITE)
                .bind("keys", keys).bind("values", values).bind("versions", versions)
                .bind("createTimes", createTimes).bind("updateTimes", updateTimes).bind("expireTimes", expireTimes)
                .bind("operationIds", operationIds).bind("changes", kinds)
                .bind("ids", ids).bind("logKeys", logKeys).bind("kinds", logKinds).bind("logVersions", logVersions)
                .bind("outcomes", outcomes).bind("reasons", reasons).bind("requestIds", requestIds)
                .bind("requestHashes", requestHashes).bind("acceptTimes", acceptTimes).bind("applyTimes", applyTimes)
                .execute();
    }

    /** ISO-8601 with the offset Z: PostgreSQL reads it as the same instant (an array of timestamps has no binding). */
    private static String text(Instant t) {
        return t == null ? null : t.toString();
    }
}
