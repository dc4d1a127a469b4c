package io.kvmesh.service.grpc;

import com.google.protobuf.Timestamp;
import io.kvmesh.api.v1.Entry;
import io.kvmesh.api.v1.EventType;
import io.kvmesh.api.v1.OperationState;
import io.kvmesh.api.v1.OperationStatus;
import io.kvmesh.api.v1.WatchResponse;
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

    /** The current state of a key as a Watch catch-up event: PUT if live, EXPIRE if past its TTL, else DELETE. */
    static WatchResponse toCatchUp(io.kvmesh.core.model.Entry e, Instant now) {
        EventType type = e.isLiveAt(now) ? EventType.PUT : e.value() != null ? EventType.EXPIRE : EventType.DELETE;
        WatchResponse.Builder b = WatchResponse.newBuilder().setType(type).setKey(e.key()).setVersion(e.version());
        if (type == EventType.PUT) {
            b.setValue(e.value());
        }
        if (e.updateTime() != null) {
            b.setTime(timestamp(e.updateTime()));
        }
        return b.build();
    }

    private static Timestamp timestamp(Instant t) {
        return Timestamp.newBuilder().setSeconds(t.getEpochSecond()).setNanos(t.getNano()).build();
    }
}
