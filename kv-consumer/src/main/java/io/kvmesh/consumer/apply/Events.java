package io.kvmesh.consumer.apply;

import io.kvmesh.core.model.Entry;
import io.kvmesh.core.store.OplogRow;
import io.kvmesh.queue.v1.ChangeEvent;

import java.time.Instant;

/** Builds the change events the applier publishes. */
final class Events {
    private Events() {
    }

    static long micros(Instant t) {
        return t == null ? 0 : t.getEpochSecond() * 1_000_000 + t.getNano() / 1_000;
    }

    static ChangeEvent.Kind kind(String name) {
        return switch (name) {
            case "PUT" -> ChangeEvent.Kind.PUT;
            case "DELETE" -> ChangeEvent.Kind.DELETE;
            case "EXPIRE" -> ChangeEvent.Kind.EXPIRE;
            default -> ChangeEvent.Kind.KIND_UNSPECIFIED;
        };
    }

    /** An event for a state change (PUT, DELETE or EXPIRE that changed the key). */
    static ChangeEvent changed(String operationId, ChangeEvent.Kind kind, Entry after, Instant now) {
        ChangeEvent.Builder b = ChangeEvent.newBuilder()
                .setOperationId(operationId).setKey(after.key()).setKind(kind)
                .setOutcome(ChangeEvent.Outcome.APPLIED).setVersion(after.version()).setTimeMicros(micros(now));
        if (after.value() != null) {
            b.setValue(after.value()).setCreateTimeMicros(micros(after.createTime()))
                    .setExpireTimeMicros(micros(after.expireTime()));
        }
        return b.build();
    }

    /** The record of an operation that was applied or rejected before (a redelivery or a retried request). */
    static ChangeEvent replay(OplogRow row) {
        ChangeEvent.Outcome outcome = OplogRow.REJECTED.equals(row.outcome()) ? ChangeEvent.Outcome.REJECTED
                : row.reason() == null ? ChangeEvent.Outcome.APPLIED : ChangeEvent.Outcome.UNCHANGED;
        return ChangeEvent.newBuilder().setOperationId(row.id()).setKey(row.key()).setKind(kind(row.kind()))
                .setOutcome(outcome).setVersion(row.version() == null ? 0 : row.version())
                .setReason(row.reason() == null ? "" : row.reason()).setTimeMicros(micros(row.applyTime()))
                .setReplayed(true).build();
    }
}
