package io.kvmesh.core.store;

import io.kvmesh.core.model.Entry;
import io.kvmesh.core.model.OperationKind;
import io.kvmesh.core.model.OperationOutcome;
import io.kvmesh.core.testing.TestServers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The applier's one-statement write (arrays unnested into rows), against the run's real PostgreSQL. */
class ApplyTransactionIT {
    private static final Instant T0 = Instant.parse("2026-12-07T08:00:00.123Z");
    private static TestServers.Isolation iso;
    private static Database database;
    private static KvStore store;

    @BeforeAll
    static void setUp() {
        iso = TestServers.isolate("applytx");
        database = Database.open(iso.postgres(), iso.startupTimeout());
        store = new KvStore(database.jdbi());
    }

    @AfterAll
    static void tearDown() {
        database.close();
        iso.close();
    }

    private static OplogRow applied(String id, String key, OperationKind kind, long version, String requestId,
                                    Instant accept, Instant at) {
        return new OplogRow(id, key, kind, version, OperationOutcome.APPLIED, null, requestId,
                requestId == null ? null : "hash-" + id, accept, at);
    }

    @Test
    void write_insertsAndUpdatesEntries_andLogsEveryOperation_nullsAndAllKindsIncluded() {
        Instant t1 = T0.plusMillis(5);
        Entry a = new Entry("w1/a", "alpha ü \"quoted\", {braces}", 1, T0, T0, null);
        Entry b = new Entry("w1/b", "", 1, T0, T0, T0.plusSeconds(60));
        store.inApplyTransaction(tx -> {
            tx.write(List.of(new Change(a, "op-a1", OperationKind.PUT), new Change(b, "op-b1", OperationKind.PUT)),
                    List.of(applied("op-a1", "w1/a", OperationKind.PUT, 1, "req-1", T0.minusNanos(1_000), T0),
                            applied("op-b1", "w1/b", OperationKind.PUT, 1, null, T0, T0),
                            new OplogRow("op-b0", "w1/b", OperationKind.PUT, null, OperationOutcome.REJECTED,
                                    "version conflict: expected version 7, current version 0", null, null, T0, T0)));
            return null;
        });
        Entry tombstone = new Entry("w1/a", null, 2, T0, t1, null);
        store.inApplyTransaction(tx -> {
            tx.write(List.of(new Change(tombstone, "op-a2", OperationKind.DELETE)),
                    List.of(applied("op-a2", "w1/a", OperationKind.DELETE, 2, null, t1, t1)));
            return null;
        });

        assertThat(store.find("w1/a")).contains(tombstone);
        assertThat(store.find("w1/b")).contains(b);
        Map<String, OplogRow> log = store.findOperations(List.of("op-a1", "op-b1", "op-b0", "op-a2", "nope")).stream()
                .collect(Collectors.toMap(OplogRow::id, r -> r));
        assertThat(log).containsOnlyKeys("op-a1", "op-b1", "op-b0", "op-a2");
        assertThat(log.get("op-a1")).isEqualTo(applied("op-a1", "w1/a", OperationKind.PUT, 1, "req-1",
                T0.minusNanos(1_000), T0));
        assertThat(log.get("op-b0").version()).isNull();
        assertThat(log.get("op-b0").outcome()).isEqualTo(OperationOutcome.REJECTED);
        assertThat(log.get("op-b0").reason()).startsWith("version conflict");
        assertThat(log.get("op-a2").kind()).isEqualTo(OperationKind.DELETE);
        List<ChangeRow> changes = store.changedSince("w1/", 0, "", 10, 1 << 20);
        assertThat(changes).extracting(ChangeRow::operationId).containsExactly("op-a2", "op-b1");
    }

    @Test
    void write_onlyLogRows_whenNothingChanged_andLockReadsWhatWasWritten() {
        store.inApplyTransaction(tx -> {
            tx.write(List.of(), List.of(new OplogRow("op-c1", "tx/c", OperationKind.DELETE, 0L,
                    OperationOutcome.APPLIED, "key did not exist", null, null, T0, T0)));
            return null;
        });
        assertThat(store.find("tx/c")).isEmpty();
        assertThat(store.findOperation("op-c1")).map(OplogRow::reason).contains("key did not exist");
        Entry d = new Entry("tx/d", "v", 3, T0, T0, null);
        store.inApplyTransaction(tx -> {
            tx.write(List.of(new Change(d, "op-d3", OperationKind.PUT)), List.of());
            return null;
        });
        List<Entry> locked = store.inApplyTransaction(tx -> tx.lockAll(new String[] {"tx/d", "tx/missing"}));
        assertThat(locked).containsExactly(d);
        List<OplogRow> known = store.inApplyTransaction(tx -> tx.knownOperations(new String[] {"op-c1", "op-x"}));
        assertThat(known).extracting(OplogRow::id).containsExactly("op-c1");
    }

    @Test
    void write_aRepeatedOperationId_failsTheWholeTransaction_andChangesNothing() {
        Entry e = new Entry("tx/e", "first", 1, T0, T0, null);
        store.inApplyTransaction(tx -> {
            tx.write(List.of(new Change(e, "op-e1", OperationKind.PUT)),
                    List.of(applied("op-e1", "tx/e", OperationKind.PUT, 1, null, T0, T0)));
            return null;
        });
        Entry again = new Entry("tx/e", "second", 2, T0, T0, null);
        assertThatThrownBy(() -> store.inApplyTransaction(tx -> {
            tx.write(List.of(new Change(again, "op-e1", OperationKind.PUT)),
                    List.of(applied("op-e1", "tx/e", OperationKind.PUT, 2, null, T0, T0)));
            return null;
        })).satisfies(ex -> assertThat(KvStore.isTransient(ex)).as("a duplicate id is retried, not dead-lettered")
                .isTrue());
        assertThat(store.find("tx/e")).contains(e);
    }

    @Test
    void lockExpired_returnsLiveEntriesPastTheirTtl_oldestFirst() {
        Entry old = new Entry("tx/exp1", "v", 1, T0, T0, T0.plusSeconds(1));
        Entry older = new Entry("tx/exp2", "v", 1, T0, T0, T0.plusMillis(500));
        Entry later = new Entry("tx/exp3", "v", 1, T0, T0, T0.plusSeconds(3600));
        store.inApplyTransaction(tx -> {
            tx.write(List.of(new Change(old, "op-x1", OperationKind.PUT), new Change(older, "op-x2", OperationKind.PUT),
                    new Change(later, "op-x3", OperationKind.PUT)), List.of());
            return null;
        });
        List<Entry> expired = store.inApplyTransaction(tx -> tx.lockExpired(T0.plusSeconds(2), 10));
        assertThat(expired).extracting(Entry::key).containsSubsequence("tx/exp2", "tx/exp1").doesNotContain("tx/exp3");
    }
}
