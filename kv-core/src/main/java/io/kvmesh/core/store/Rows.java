package io.kvmesh.core.store;

import io.kvmesh.core.model.Entry;
import io.kvmesh.core.model.OperationKind;
import io.kvmesh.core.model.OperationOutcome;
import org.jdbi.v3.core.mapper.RowMapper;
import org.jdbi.v3.core.statement.StatementContext;

import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Instant;
import java.time.OffsetDateTime;

/**
 * The row mappers of the store's records, written out. Jdbi's constructor mapper inspects the record's constructor
 * (parameter names, annotations, nullability) again for every query it maps, about a tenth of the applier's CPU in a
 * profile under REST PUT (2026-12-07, ghz-bench/profile.sh); these read the aliased columns directly.
 */
public final class Rows {
    private Rows() {
    }

    static Instant instant(ResultSet rs, String column) throws SQLException {
        OffsetDateTime t = rs.getObject(column, OffsetDateTime.class);
        return t == null ? null : t.toInstant();
    }

    static Long nullableLong(ResultSet rs, String column) throws SQLException {
        long v = rs.getLong(column);
        return rs.wasNull() ? null : v;
    }

    /** {@link KvDao#COLUMNS}. */
    public static final class EntryMapper implements RowMapper<Entry> {
        @Override
        public Entry map(ResultSet rs, StatementContext ctx) throws SQLException {
            return new Entry(rs.getString("key"), rs.getString("value"), rs.getLong("version"),
                    instant(rs, "createTime"), instant(rs, "updateTime"), instant(rs, "expireTime"));
        }
    }

    /** {@link KvDao#OPLOG_COLUMNS}. */
    public static final class OplogMapper implements RowMapper<OplogRow> {
        @Override
        public OplogRow map(ResultSet rs, StatementContext ctx) throws SQLException {
            return new OplogRow(rs.getString("id"), rs.getString("key"), OperationKind.valueOf(rs.getString("kind")),
                    nullableLong(rs, "version"), OperationOutcome.valueOf(rs.getString("outcome")),
                    rs.getString("reason"), rs.getString("requestId"), rs.getString("requestHash"),
                    instant(rs, "acceptTime"), instant(rs, "applyTime"));
        }
    }

    /** {@link KvDao#COLUMNS} with the operation that produced the row. */
    public static final class ChangeRowMapper implements RowMapper<ChangeRow> {
        @Override
        public ChangeRow map(ResultSet rs, StatementContext ctx) throws SQLException {
            return new ChangeRow(rs.getString("key"), rs.getString("value"), rs.getLong("version"),
                    instant(rs, "createTime"), instant(rs, "updateTime"), instant(rs, "expireTime"),
                    rs.getString("operationId"), rs.getString("change"));
        }
    }

    /** The columns of {@code kv_request_id}, aliased as the record's components. */
    public static final class RequestIdMapper implements RowMapper<RequestIdRow> {
        @Override
        public RequestIdRow map(ResultSet rs, StatementContext ctx) throws SQLException {
            return new RequestIdRow(rs.getString("requestId"), rs.getString("operationId"),
                    rs.getString("requestHash"), rs.getString("key"), OperationKind.valueOf(rs.getString("kind")),
                    instant(rs, "acceptTime"));
        }
    }
}
