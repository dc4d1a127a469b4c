package io.kvmesh.service.grpc;

import com.google.protobuf.Timestamp;
import io.kvmesh.api.v1.Entry;

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
        return b.build();
    }

    private static Timestamp timestamp(Instant t) {
        return Timestamp.newBuilder().setSeconds(t.getEpochSecond()).setNanos(t.getNano()).build();
    }
}
