package io.kvmesh.core.store;

import io.kvmesh.core.model.Entry;
import org.jdbi.v3.sqlobject.config.RegisterRowMapper;
import org.jdbi.v3.sqlobject.customizer.Bind;
import org.jdbi.v3.sqlobject.statement.SqlQuery;
import org.jdbi.v3.sqlobject.statement.SqlUpdate;

import java.util.List;
import java.util.Optional;

/** The SQL of the {@code kv}, {@code kv_oplog} and {@code kv_request_id} tables, one method per statement. */
@RegisterRowMapper(Rows.EntryMapper.class)
public interface KvDao {

    String COLUMNS = "key, value, version, create_time AS createTime, update_time AS updateTime, expire_time AS expireTime";
    String OPLOG_COLUMNS = "id, key, kind, version, outcome, reason, request_id AS requestId,"
            + " request_hash AS requestHash, accept_time AS acceptTime, apply_time AS applyTime";

    /** The row of a key, tombstone or expired included; the caller decides visibility. */
    @SqlQuery("SELECT " + COLUMNS + " FROM kv WHERE key = :key")
    Optional<Entry> find(@Bind("key") String key);

    /**
     * Live entries under a prefix after {@code after}, in key order: at most {@code limit}, and no further than the
     * first entry at which the values so far reach {@code maxBytes} (that entry included, so the caller can tell the
     * page was cut). {@code upper} is the prefix followed by U+10FFFF, a character keys cannot contain, so the range
     * scan stops at the end of the prefix; "" lists every key.
     */
    @SqlQuery("SELECT key, value, version, createTime, updateTime, expireTime FROM ("
            + " SELECT p.*, sum(octet_length(p.value)) OVER (ORDER BY p.key) AS upto FROM ("
            + "  SELECT " + COLUMNS + " FROM kv WHERE key > :after AND key >= :prefix AND key < :upper"
            + "  AND starts_with(key, :prefix) AND value IS NOT NULL"
            + "  AND (expire_time IS NULL OR expire_time > now()) ORDER BY key LIMIT :limit) p) q"
            + " WHERE upto - octet_length(value) < :maxBytes ORDER BY key")
    List<Entry> listPrefix(@Bind("prefix") String prefix, @Bind("upper") String upper,
                           @Bind("after") String after, @Bind("limit") int limit, @Bind("maxBytes") long maxBytes);

    /** The log rows of those of these operation ids that were applied (or rejected) already (the applier's query). */
    @SqlQuery(ApplyTransaction.KNOWN)
    @RegisterRowMapper(Rows.OplogMapper.class)
    List<OplogRow> knownOperations(@Bind("ids") String[] ids);

    /** Forgets operation log rows older than the retention (their ids can no longer be recognised as repeats). */
    @SqlUpdate("DELETE FROM kv_oplog WHERE id IN (SELECT id FROM kv_oplog WHERE apply_time < :before LIMIT :limit)")
    int deleteOplogBefore(@Bind("before") java.time.Instant before, @Bind("limit") int limit);

    /**
     * Entries under a prefix (all keys for "") with at least this version, tombstones included, in key order after
     * {@code after}: at most {@code limit} rows, and no more rows than fit in {@code maxBytes} of values (the first
     * row always comes, whatever its size), so a page in memory stays small however large the values are.
     */
    @SqlQuery("SELECT key, value, version, createTime, updateTime, expireTime, operationId, change FROM ("
            + " SELECT p.*, sum(coalesce(octet_length(p.value), 0)) OVER (ORDER BY p.key) AS upto FROM ("
            + "  SELECT " + COLUMNS + ", operation_id AS operationId, change FROM kv WHERE key > :after"
            + "  AND starts_with(key, :prefix) AND version >= :minVersion ORDER BY key LIMIT :limit) p) q"
            + " WHERE upto - coalesce(octet_length(value), 0) < :maxBytes ORDER BY key")
    @RegisterRowMapper(Rows.ChangeRowMapper.class)
    List<ChangeRow> changedSince(@Bind("prefix") String prefix, @Bind("minVersion") long minVersion,
                                 @Bind("after") String after, @Bind("limit") int limit, @Bind("maxBytes") long maxBytes);

    /**
     * Records the first use of each of these request ids; ids already held are left as they are (also when the same
     * id comes twice in one call: the first wins). Arrays keep one prepared statement for every batch size; the
     * accept times travel as ISO-8601 text (an array of timestamps has no binding of its own).
     */
    @SqlUpdate("INSERT INTO kv_request_id (request_id, operation_id, request_hash, key, kind, accept_time)"
            + " SELECT * FROM unnest(:requestIds, :operationIds, :hashes, :keys, :kinds, :acceptTimes::timestamptz[])"
            + " ON CONFLICT (request_id) DO NOTHING")
    int claimRequestIds(@Bind("requestIds") String[] requestIds, @Bind("operationIds") String[] operationIds,
                        @Bind("hashes") String[] hashes, @Bind("keys") String[] keys, @Bind("kinds") String[] kinds,
                        @Bind("acceptTimes") String[] acceptTimes);

    /** The requests that hold these request ids. */
    @SqlQuery("SELECT request_id AS requestId, operation_id AS operationId, request_hash AS requestHash, key, kind,"
            + " accept_time AS acceptTime FROM kv_request_id WHERE request_id = ANY(:ids)")
    @RegisterRowMapper(Rows.RequestIdMapper.class)
    List<RequestIdRow> requestIdHolders(@Bind("ids") String[] ids);

    /** Whether an operation's request id was recorded (it was accepted; its log row says whether it applied). */
    @SqlQuery("SELECT EXISTS (SELECT 1 FROM kv_request_id WHERE operation_id = :id)")
    boolean requestIdRecorded(@Bind("id") String operationId);

    /** Forgets request ids older than the operation log's retention (the id may then be used again). */
    @SqlUpdate("DELETE FROM kv_request_id WHERE request_id IN (SELECT request_id FROM kv_request_id"
            + " WHERE accept_time < :before LIMIT :limit)")
    int deleteRequestIdsBefore(@Bind("before") java.time.Instant before, @Bind("limit") int limit);

    @SqlQuery("SELECT " + OPLOG_COLUMNS + " FROM kv_oplog WHERE id = :id")
    @RegisterRowMapper(Rows.OplogMapper.class)
    Optional<OplogRow> findOperation(@Bind("id") String id);

    /** The operations recorded for a key, in version order (rejected ones last). */
    @SqlQuery("SELECT " + OPLOG_COLUMNS + " FROM kv_oplog WHERE key = :key"
            + " ORDER BY version NULLS LAST, apply_time")
    @RegisterRowMapper(Rows.OplogMapper.class)
    List<OplogRow> operationsOfKey(@Bind("key") String key);
}
