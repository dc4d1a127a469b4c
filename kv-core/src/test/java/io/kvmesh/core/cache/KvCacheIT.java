package io.kvmesh.core.cache;

import io.kvmesh.core.model.Entry;
import io.kvmesh.core.queue.Partitioner;
import io.kvmesh.core.testing.TestServers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** Against the run's real Redis: the version guard, and the permits that decide when the cache may be read. */
class KvCacheIT {
    private static final Partitioner PARTITIONS = new Partitioner(4);
    private static TestServers.Isolation iso;
    private KvCache cache;

    @BeforeAll
    static void isolate() {
        iso = TestServers.isolate("cache");
    }

    @AfterAll
    static void release() {
        iso.close();
    }

    @BeforeEach
    void open() {
        // a namespace of its own per test: permits are per partition, and each test grants its own
        cache = new KvCache(iso.redis().withKeyPrefix(iso.redis().keyPrefix() + UUID.randomUUID() + ":"), PARTITIONS);
    }

    @AfterEach
    void close() {
        cache.close();
    }

    private static Entry live(String key, String value, long version) {
        Instant t = Instant.ofEpochMilli(1_700_000_000_000L + version);
        return new Entry(key, value, version, t, t, null);
    }

    private String grant(String key, String holder, Duration life, boolean fresh) {
        return cache.grant(PARTITIONS.partitionOf(key), holder, Instant.now().plus(life), fresh).join().orElseThrow();
    }

    private boolean write(Entry... entries) {
        Instant now = Instant.now();
        return cache.write(List.of(entries), now, now.plusSeconds(5)).join();
    }

    private Optional<Entry> hit(String key) {
        KvCache.Lookup lookup = cache.get(key).join();
        assertThat(lookup.trusted()).as("a permit is in force for %s", key).isTrue();
        return lookup.entry();
    }

    @Test
    void withoutAPermit_nothingIsReadFilledOrWritten() {
        KvCache.Lookup lookup = cache.get("a").join();
        assertThat(lookup.trusted()).isFalse();
        assertThat(cache.fill(live("a", "v1", 1), lookup, Instant.now()).join()).isFalse();
        assertThat(write(live("a", "v1", 1))).isTrue(); // ran in time, and wrote nothing: nobody reads it
        grant("a", "c1", Duration.ofSeconds(30), false);
        assertThat(hit("a")).isEmpty();
    }

    @Test
    void underAPermit_updatesAndFillsNeverReplaceANewerVersion() {
        grant("a", "c1", Duration.ofSeconds(30), false);
        assertThat(write(live("a", "v2", 2))).isTrue();
        assertThat(hit("a")).contains(live("a", "v2", 2));
        write(live("a", "v1", 1));
        KvCache.Lookup lookup = cache.get("a").join();
        assertThat(cache.fill(live("a", "v2-again", 2), lookup, Instant.now()).join()).isFalse();
        assertThat(hit("a")).contains(live("a", "v2", 2));
        write(live("a", "v3", 3));
        assertThat(hit("a")).map(Entry::value).contains("v3");

        grant("filled", "c1", Duration.ofSeconds(30), false);
        KvCache.Lookup miss = cache.get("filled").join();
        assertThat(miss.entry()).isEmpty();
        assertThat(cache.fill(live("filled", "from postgres", 4), miss, Instant.now()).join()).isTrue();
        assertThat(hit("filled")).map(Entry::value).contains("from postgres");
    }

    @Test
    void aTombstoneHidesOlderVersions_andANewerWriteReplacesIt() {
        grant("b", "c1", Duration.ofSeconds(30), false);
        Instant now = Instant.now();
        write(live("b", "v1", 1));
        write(new Entry("b", null, 2, null, now, null));
        write(live("b", "v1", 1));
        Optional<Entry> cached = hit("b");
        assertThat(cached).isPresent();
        assertThat(cached.get().value()).isNull();
        assertThat(cached.get().version()).isEqualTo(2);
        write(live("b", "v3", 3));
        assertThat(hit("b")).map(Entry::value).contains("v3");
    }

    @Test
    void anExpiringEntryNeverOutlivesItsKey() {
        grant("c", "c1", Duration.ofSeconds(30), false);
        grant("d", "c1", Duration.ofSeconds(30), false);
        Instant now = Instant.now();
        write(new Entry("c", "v", 1, now, now, now.plusMillis(150)));
        assertThat(hit("c")).isPresent();
        await().atMost(Duration.ofSeconds(3)).until(() -> hit("c").isEmpty());
        write(new Entry("d", "v", 1, now, now, now.minusMillis(1)));
        assertThat(hit("d")).hasValueSatisfying(e -> assertThat(e.value()).isNull());
    }

    @Test
    void aPermitThatLapses_stopsReads_andTheNextEpochStartsEmpty() {
        String first = grant("e", "c1", Duration.ofMillis(400), false);
        write(live("e", "v1", 1));
        assertThat(hit("e")).isPresent();
        await().atMost(Duration.ofSeconds(3)).until(() -> !cache.get("e").join().trusted());

        String second = grant("e", "c1", Duration.ofSeconds(30), false);
        assertThat(second).isNotEqualTo(first);
        assertThat(hit("e")).as("written under the lapsed epoch").isEmpty();
    }

    @Test
    void aRenewalKeepsTheEpochAndWhatWasCached() {
        String first = grant("f", "c1", Duration.ofSeconds(30), false);
        write(live("f", "v1", 1));
        assertThat(grant("f", "c1", Duration.ofSeconds(30), false)).isEqualTo(first);
        assertThat(hit("f")).isPresent();
    }

    /**
     * The fault suite's stale read, step by step: a reader misses and reads the old version from PostgreSQL; the
     * applier commits a newer one and its update does not reach Redis; the reader's fill must not survive the new
     * epoch the applier asks for before acknowledging.
     */
    @Test
    void aFreshEpoch_hidesEverythingAndRefusesFillsReadUnderTheOldOne() {
        String first = grant("g", "c1", Duration.ofSeconds(30), false);
        write(live("other", "x", 1));
        KvCache.Lookup reader = cache.get("g").join();
        assertThat(reader.epoch()).isEqualTo(first);

        String second = grant("g", "c1", Duration.ofSeconds(30), true); // the applier's update failed
        assertThat(second).isNotEqualTo(first);
        assertThat(cache.fill(live("g", "v1 read before the commit", 1), reader, Instant.now()).join()).isFalse();
        assertThat(hit("g")).isEmpty();
        if (PARTITIONS.partitionOf("other") == PARTITIONS.partitionOf("g")) {
            assertThat(hit("other")).isEmpty();
        }
    }

    @Test
    void anotherHoldersPermitInForce_isNotTaken_untilItLapses() {
        grant("h", "c1", Duration.ofMillis(500), false);
        int p = PARTITIONS.partitionOf("h");
        assertThat(cache.grant(p, "c2", Instant.now().plusSeconds(30), false).join()).isEmpty();
        assertThat(cache.grant(p, "c2", Instant.now().plusSeconds(30), true).join()).isEmpty();
        await().atMost(Duration.ofSeconds(3))
                .until(() -> cache.grant(p, "c2", Instant.now().plusSeconds(30), false).join().isPresent());
    }

    @Test
    void anUpdateThatRunsAfterItsGiveUpTime_changesNothing() {
        grant("i", "c1", Duration.ofSeconds(30), false);
        write(live("i", "v1", 1));
        Instant now = Instant.now();
        assertThat(cache.write(List.of(live("i", "v2", 2)), now, now.minusMillis(1)).join()).isFalse();
        assertThat(hit("i")).map(Entry::value).contains("v1");
    }

    @Test
    void aGrantWhoseDeadlineHasPassed_isRefused() {
        assertThat(cache.grant(0, "c1", Instant.now().minusMillis(1), false).join()).isEmpty();
    }
}
