package io.kvmesh.core.store;

import io.kvmesh.core.error.KvError;
import io.kvmesh.core.error.KvException;
import io.kvmesh.core.model.Entry;
import org.jdbi.v3.core.Jdbi;

import java.sql.SQLException;
import java.sql.SQLTransientException;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;

/** The store: reads for the service and one-transaction batches for the applier, over PostgreSQL. */
public final class KvStore {
    /** U+10FFFF: greater than every character a valid key may hold (the validator rejects noncharacters). */
    private static final String MAX_CHAR = new String(Character.toChars(0x10FFFF));

    private final Jdbi jdbi;

    public KvStore(Jdbi jdbi) {
        this.jdbi = jdbi;
    }

    /** The row of a key, tombstones and expired entries included. */
    public Optional<Entry> find(String key) {
        return call(() -> jdbi.withExtension(KvDao.class, dao -> dao.find(key)));
    }

    /**
     * Up to {@code limit} live entries after {@code after} ("" = from the start), under {@code prefix} ("" = all),
     * stopping at the first entry at which the values reach {@code maxBytes} (included).
     */
    public List<Entry> list(String prefix, String after, int limit, long maxBytes) {
        return call(() -> jdbi.withExtension(KvDao.class,
                dao -> dao.listPrefix(prefix, prefix + MAX_CHAR, after, limit, maxBytes)));
    }

    /**
     * Entries under {@code prefix} with version >= {@code minVersion}, tombstones included, after {@code after}: at
     * most {@code limit} rows holding about {@code maxBytes} of values (always at least one row if any is left).
     */
    public List<ChangeRow> changedSince(String prefix, long minVersion, String after, int limit, long maxBytes) {
        return call(() -> jdbi.withExtension(KvDao.class,
                dao -> dao.changedSince(prefix, minVersion, after, limit, maxBytes)));
    }

    public Optional<OplogRow> findOperation(String id) {
        return call(() -> jdbi.withExtension(KvDao.class, dao -> dao.findOperation(id)));
    }

    /** The log rows of those of {@code ids} that were applied or rejected, in one query. */
    public List<OplogRow> findOperations(Collection<String> ids) {
        return call(() -> jdbi.withExtension(KvDao.class, dao -> dao.knownOperations(ids.toArray(String[]::new))));
    }

    /**
     * Records the first use of each request id in {@code claims} (one transaction for all of them) and returns the
     * request that holds each id afterwards: the claim itself when the id was new or held by the same operation,
     * else the request that had it first.
     */
    public Map<String, RequestIdRow> claimRequestIds(List<RequestIdRow> claims) {
        int n = claims.size();
        String[] ids = new String[n];
        String[] ops = new String[n];
        String[] hashes = new String[n];
        String[] keys = new String[n];
        String[] kinds = new String[n];
        String[] times = new String[n];
        for (int i = 0; i < n; i++) {
            RequestIdRow c = claims.get(i);
            ids[i] = c.requestId();
            ops[i] = c.operationId();
            hashes[i] = c.requestHash();
            keys[i] = c.key();
            kinds[i] = c.kind().name();
            times[i] = c.acceptTime().toString();
        }
        return call(() -> jdbi.inTransaction(handle -> {
            KvDao dao = handle.attach(KvDao.class);
            dao.claimRequestIds(ids, ops, hashes, keys, kinds, times);
            // a new statement, so a new snapshot: it sees ids that a concurrent claim committed while ours waited
            Map<String, RequestIdRow> holders = new HashMap<>();
            for (RequestIdRow row : dao.requestIdHolders(ids)) {
                holders.put(row.requestId(), row);
            }
            return holders;
        }));
    }

    /** Whether an operation's request id was recorded (so the operation was accepted at some point). */
    public boolean requestIdRecorded(String operationId) {
        return call(() -> jdbi.withExtension(KvDao.class, dao -> dao.requestIdRecorded(operationId)));
    }

    /**
     * Runs an applier's {@code work} in one transaction at PostgreSQL's default level, READ COMMITTED; any failure
     * rolls it back and is rethrown. Its statements are written against the transaction's handle
     * ({@link ApplyTransaction}), without a SqlObject attached per transaction.
     */
    public <T> T inApplyTransaction(Function<ApplyTransaction, T> work) {
        return jdbi.inTransaction(handle -> work.apply(new ApplyTransaction(handle)));
    }

    /**
     * Runs {@code work} in one transaction at PostgreSQL's default level, READ COMMITTED (naming the level would
     * cost two more statements per transaction: set it, then restore it); any failure rolls it back and is rethrown.
     */
    public <T> T inTransaction(Function<KvDao, T> work) {
        return jdbi.inTransaction(handle -> work.apply(handle.attach(KvDao.class)));
    }

    private static <T> T call(java.util.function.Supplier<T> query) {
        try {
            return query.get();
        } catch (RuntimeException e) {
            throw isTransient(e)
                    ? new KvException(KvError.UNAVAILABLE, "database unavailable", e)
                    : new KvException(KvError.INTERNAL, "database error", e);
        }
    }

    /**
     * Whether a database failure may go away by itself (connection lost, server shutting down, lock
     * conflict, duplicate operation id raced in by another applier): retry, don't dead-letter.
     */
    public static boolean isTransient(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof SQLTransientException) {
                return true;
            }
            if (t instanceof SQLException sql && sql.getSQLState() != null) {
                String state = sql.getSQLState();
                return state.startsWith("08") || state.startsWith("53") || state.startsWith("57")
                        || state.startsWith("40") || state.equals("23505") || state.equals("55P03");
            }
        }
        return false;
    }
}
