package io.kvmesh.consumer.apply;

import io.kvmesh.core.model.Entry;
import io.kvmesh.core.model.OperationOutcome;
import io.kvmesh.core.store.OplogRow;
import io.kvmesh.core.time.Micros;
import io.kvmesh.queue.v1.ChangeEvent;

import java.time.Instant;

/** Builds the change events the applier publishes. */
final class Events {
    private Events() {
    }

    /** An event for a state change (PUT, DELETE or EXPIRE that changed the key). */
    static ChangeEvent changed(String operationId, ChangeEvent.Kind kind, Entry after, Instant now) {
        ChangeEvent.Builder b = ChangeEvent.newBuilder()
                .setOperationId(operationId).setKey(after.key()).setKind(kind)
                .setOutcome(ChangeEvent.Outcome.APPLIED).setVersion(after.version()).setTimeMicros(Micros.of(now));
        if (after.value() != null) {
            b.setValue(after.value()).setCreateTimeMicros(Micros.of(after.createTime()))
                    .setExpireTimeMicros(Micros.of(after.expireTime()));
        }
        return b.build();
    }

    /** The record of an operation that was applied or rejected before (a redelivery or a retried request). */
    static ChangeEvent replay(OplogRow row) {
        ChangeEvent.Outcome outcome = row.outcome() == OperationOutcome.REJECTED ? ChangeEvent.Outcome.REJECTED
                : row.reason() == null ? ChangeEvent.Outcome.APPLIED : ChangeEvent.Outcome.UNCHANGED;
        return ChangeEvent.newBuilder().setOperationId(row.id()).setKey(row.key()).setKind(row.kind().toEvent())
                .setOutcome(outcome).setVersion(row.version() == null ? 0 : row.version())
                .setReason(row.reason() == null ? "" : row.reason()).setTimeMicros(Micros.of(row.applyTime()))
                .setReplayed(true).build();
    }
}
