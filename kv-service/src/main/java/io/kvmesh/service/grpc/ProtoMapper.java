package io.kvmesh.service.grpc;

import com.google.protobuf.Timestamp;
import io.kvmesh.api.v1.Entry;
import io.kvmesh.api.v1.EventType;
import io.kvmesh.api.v1.OperationState;
import io.kvmesh.api.v1.OperationStatus;
import io.kvmesh.api.v1.WatchResponse;
import io.kvmesh.core.queue.OperationCodec;
import io.kvmesh.core.store.ChangeRow;
import io.kvmesh.service.read.OperationView;

import java.time.Instant;

/** Converts stored entries to their API messages. */
final class ProtoMapper {
    private ProtoMapper() {
    }

    static Entry toProto(io.kvmesh.core.model.Entry e) {
        Entry.Builder b = Entry.newBuilder().setKey(e.key()).setValue(e.value()).setVersion(e.version());
        if (e.createTime() != null) {
            b.setCreateTime(timestamp(e.createTime()));
        }
        if (e.updateTime() != null) {
            b.setUpdateTime(timestamp(e.updateTime()));
        }
        if (e.expireTime() != null) {
            b.setExpireTime(timestamp(e.expireTime()));
        }
        return b.build();
    }

    static OperationStatus toProto(OperationView op) {
        OperationStatus.Builder b = OperationStatus.newBuilder().setOperationId(op.id()).setKey(op.key())
                .setKind(op.kind()).setState(OperationState.valueOf(op.state())).setVersion(op.version())
                .setReason(op.reason());
        if (op.applyTime() != null) {
            b.setApplyTime(timestamp(op.applyTime()));
        }
        return b.build();
    }

    /**
     * The current state of a key as a Watch catch-up event, as the live event that produced it read: PUT if live;
     * EXPIRE if its TTL ran out (swept or not yet: then the version and id are those the sweep will give it, so the
     * sweep's live event is recognised as already sent); else DELETE. With the operation's id where it is recorded.
     */
    static WatchResponse toCatchUp(ChangeRow row, Instant now) {
        io.kvmesh.core.model.Entry e = row.entry();
        WatchResponse.Builder b = WatchResponse.newBuilder().setKey(e.key());
        if (e.isLiveAt(now)) {
            b.setType(EventType.PUT).setValue(e.value()).setVersion(e.version());
            b.setOperationId(row.operationId() == null ? "" : row.operationId());
            if (e.updateTime() != null) {
                b.setTime(timestamp(e.updateTime()));
            }
        } else if (e.value() != null) {
            long version = e.version() + 1;
            b.setType(EventType.EXPIRE).setVersion(version).setOperationId(OperationCodec.expiryId(e.key(), version))
                    .setTime(timestamp(e.expireTime()));
        } else {
            b.setType("EXPIRE".equals(row.change()) ? EventType.EXPIRE : EventType.DELETE).setVersion(e.version())
                    .setOperationId(row.operationId() == null ? "" : row.operationId());
            if (e.updateTime() != null) {
                b.setTime(timestamp(e.updateTime()));
            }
        }
        return b.build();
    }

    private static Timestamp timestamp(Instant t) {
        return Timestamp.newBuilder().setSeconds(t.getEpochSecond()).setNanos(t.getNano()).build();
    }
}
