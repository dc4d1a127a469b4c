package io.kvmesh.consumer.apply;

import io.kvmesh.consumer.apply.BatchApplier.Outcome;
import io.kvmesh.core.model.Entry;
import io.kvmesh.core.model.OperationOutcome;
import io.kvmesh.queue.v1.Operation;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.time.Instant;
import java.util.stream.Stream;

import static io.kvmesh.core.model.OperationOutcome.APPLIED;
import static io.kvmesh.core.model.OperationOutcome.REJECTED;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.params.provider.Arguments.arguments;

/** {@link BatchApplier#decide}: one operation against the key's current state, as a table. */
class BatchApplierDecideTest {
    private static final Instant NOW = Instant.parse("2026-11-25T12:00:00Z");
    private static final Instant CREATED = Instant.parse("2026-11-20T08:00:00Z");
    private static final Instant UPDATED = Instant.parse("2026-11-24T08:00:00Z");
    private static final Long UNCHANGED = null;

    private static Operation.Builder put(String value) {
        return Operation.newBuilder().setId("op").setKey("k").setKind(Operation.Kind.PUT).setValue(value);
    }

    private static Operation.Builder delete() {
        return Operation.newBuilder().setId("op").setKey("k").setKind(Operation.Kind.DELETE);
    }

    private static Entry absent() {
        return Entry.absent("k");
    }

    private static Entry live(long version) {
        return new Entry("k", "old", version, CREATED, UPDATED, null);
    }

    private static Entry liveUntil(long version, Instant expire) {
        return new Entry("k", "old", version, CREATED, UPDATED, expire);
    }

    private static Entry tombstone(long version) {
        return new Entry("k", null, version, CREATED, UPDATED, null);
    }

    /**
     * name, operation, current state, then expected: outcome, version recorded, next version (null = the state does
     * not change), reason (null = none).
     */
    static Stream<Arguments> table() {
        return Stream.of(
                // plain writes: version = previous + 1, tombstones and expired entries keep counting
                arguments("put on a key never written", put("v"), absent(), APPLIED, 1L, 1L, null),
                arguments("put on a live key", put("v"), live(3), APPLIED, 4L, 4L, null),
                arguments("put on a deleted key", put("v"), tombstone(2), APPLIED, 3L, 3L, null),
                arguments("put on an expired key", put("v"), liveUntil(5, NOW.minusSeconds(1)), APPLIED, 6L, 6L, null),
                arguments("put on a key expiring exactly now", put("v"), liveUntil(5, NOW), APPLIED, 6L, 6L, null),
                // conditions are checked against the visible version (0 when deleted, expired or never written)
                arguments("must not exist, never written", put("v").setExpectedVersion(0), absent(),
                        APPLIED, 1L, 1L, null),
                arguments("must not exist, but live", put("v").setExpectedVersion(0), live(1),
                        REJECTED, 1L, UNCHANGED, "version conflict: expected version 0, current version 1"),
                arguments("must not exist, deleted", put("v").setExpectedVersion(0), tombstone(4),
                        APPLIED, 5L, 5L, null),
                arguments("must not exist, expired", put("v").setExpectedVersion(0), liveUntil(7, NOW.minusMillis(1)),
                        APPLIED, 8L, 8L, null),
                arguments("expected version matches", put("v").setExpectedVersion(3), live(3), APPLIED, 4L, 4L, null),
                arguments("expected version is older", put("v").setExpectedVersion(2), live(3),
                        REJECTED, 3L, UNCHANGED, "version conflict: expected version 2, current version 3"),
                arguments("expected version is newer", put("v").setExpectedVersion(9), live(3),
                        REJECTED, 3L, UNCHANGED, "version conflict: expected version 9, current version 3"),
                arguments("expected version of an expired entry", put("v").setExpectedVersion(7),
                        liveUntil(7, NOW.minusSeconds(60)),
                        REJECTED, 0L, UNCHANGED, "version conflict: expected version 7, current version 0"),
                arguments("expected version of a deleted key", put("v").setExpectedVersion(4), tombstone(4),
                        REJECTED, 0L, UNCHANGED, "version conflict: expected version 4, current version 0"),
                // deletes
                arguments("delete of a missing key", delete(), absent(), APPLIED, 0L, UNCHANGED, "key did not exist"),
                arguments("delete of a deleted key", delete(), tombstone(4), APPLIED, 4L, UNCHANGED,
                        "key did not exist"),
                arguments("delete of a live key", delete(), live(2), APPLIED, 3L, 3L, null),
                // an expired row that the sweep has not turned into a tombstone yet still gets one
                arguments("delete of an expired, unswept key", delete(), liveUntil(2, NOW.minusSeconds(1)),
                        APPLIED, 3L, 3L, null),
                arguments("conditional delete, version matches", delete().setExpectedVersion(2), live(2),
                        APPLIED, 3L, 3L, null),
                arguments("conditional delete, version differs", delete().setExpectedVersion(1), live(2),
                        REJECTED, 2L, UNCHANGED, "version conflict: expected version 1, current version 2"),
                arguments("conditional delete of a missing key that must not exist", delete().setExpectedVersion(0),
                        absent(), APPLIED, 0L, UNCHANGED, "key did not exist"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("table")
    void decide(String name, Operation.Builder op, Entry current, OperationOutcome outcome, Long version,
                Long nextVersion, String reason) {
        Outcome o = BatchApplier.decide(op.build(), current, NOW);

        assertThat(o.outcome()).isEqualTo(outcome);
        assertThat(o.version()).isEqualTo(version);
        assertThat(o.reason()).isEqualTo(reason);
        if (nextVersion == null) {
            assertThat(o.next()).isNull();
        } else {
            assertThat(o.next().version()).isEqualTo(nextVersion);
            assertThat(o.next().key()).isEqualTo("k");
            assertThat(o.next().updateTime()).isEqualTo(NOW);
        }
    }

    static Stream<Arguments> puts() {
        return Stream.of(
                // name, current, ttl millis, expected create time, expected expire time
                arguments("new key, no TTL", absent(), 0L, NOW, null),
                arguments("new key, TTL", absent(), 1_500L, NOW, NOW.plusMillis(1_500)),
                arguments("live key keeps its create time", live(1), 0L, CREATED, null),
                arguments("a TTL is replaced by none", liveUntil(1, NOW.plusSeconds(60)), 0L, CREATED, null),
                arguments("a TTL is replaced by a new one", liveUntil(1, NOW.plusSeconds(60)), 10L, CREATED,
                        NOW.plusMillis(10)),
                arguments("an expired key is created anew", liveUntil(1, NOW), 0L, NOW, null),
                arguments("a deleted key is created anew", tombstone(3), 0L, NOW, null));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("puts")
    void put_setsValueTimesAndExpiry(String name, Entry current, long ttlMillis, Instant createTime, Instant expire) {
        Outcome o = BatchApplier.decide(put("new").setTtlMillis(ttlMillis).build(), current, NOW);

        assertThat(o.next().value()).isEqualTo("new");
        assertThat(o.next().createTime()).isEqualTo(createTime);
        assertThat(o.next().expireTime()).isEqualTo(expire);
    }

    @Test
    void delete_leavesATombstoneWithTheCreateTime_andNoExpiry() {
        Outcome o = BatchApplier.decide(delete().build(), liveUntil(2, NOW.plusSeconds(5)), NOW);

        assertThat(o.next().value()).isNull();
        assertThat(o.next().createTime()).isEqualTo(CREATED);
        assertThat(o.next().expireTime()).isNull();
    }

    @Test
    void decide_refusesAnUnknownKind() {
        Operation op = Operation.newBuilder().setId("op").setKey("k").setKind(Operation.Kind.KIND_UNSPECIFIED).build();

        assertThatThrownBy(() -> BatchApplier.decide(op, absent(), NOW)).isInstanceOf(IllegalArgumentException.class);
    }
}
