package io.kvmesh.core.cache;

import io.kvmesh.core.model.Entry;
import io.kvmesh.core.testing.TestServers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Instant;
import java.util.Optional;

import static org.assertj.core.api.Assertions.assertThat;

/** Against the run's real Redis. */
class KvCacheIT {
    private static TestServers.Isolation iso;
    private static KvCache cache;

    @BeforeAll
    static void setUp() {
        iso = TestServers.isolate("cache");
        cache = new KvCache(iso.redis());
    }

    @AfterAll
    static void tearDown() {
        cache.close();
        iso.close();
    }

    private static Entry live(String key, String value, long version) {
        Instant t = Instant.ofEpochMilli(1_700_000_000_000L + version);
        return new Entry(key, value, version, t, t, null);
    }

    @Test
    void put_staleFillNeverOverwritesNewerVersion() {
        Instant now = Instant.now();
        assertThat(cache.put(live("a", "v2", 2), now).join()).isTrue();
        assertThat(cache.put(live("a", "v1", 1), now).join()).isFalse();
        assertThat(cache.put(live("a", "v2-again", 2), now).join()).isFalse();
        assertThat(cache.get("a").join()).contains(live("a", "v2", 2));
        assertThat(cache.put(live("a", "v3", 3), now).join()).isTrue();
        assertThat(cache.get("a").join()).map(Entry::value).contains("v3");
    }

    @Test
    void put_tombstoneHidesOlderVersionsAndANewerWriteReplacesIt() {
        Instant now = Instant.now();
        cache.put(live("b", "v1", 1), now).join();
        Entry tombstone = new Entry("b", null, 2, null, now, null);
        assertThat(cache.put(tombstone, now).join()).isTrue();
        assertThat(cache.put(live("b", "v1", 1), now).join()).isFalse();
        Optional<Entry> cached = cache.get("b").join();
        assertThat(cached).isPresent();
        assertThat(cached.get().value()).isNull();
        assertThat(cached.get().version()).isEqualTo(2);
        assertThat(cache.put(live("b", "v3", 3), now).join()).isTrue();
    }

    @Test
    void get_returnsEmptyOnMiss() {
        assertThat(cache.get("never-written").join()).isEmpty();
    }

    @Test
    void put_expiringEntryNeverOutlivesItsKey() {
        Instant now = Instant.now();
        Entry expiring = new Entry("c", "v", 1, now, now, now.plusMillis(150));
        cache.put(expiring, now).join();
        assertThat(cache.get("c").join()).isPresent();
        org.awaitility.Awaitility.await().atMost(java.time.Duration.ofSeconds(3))
                .until(() -> cache.get("c").join().isEmpty());
        Entry expired = new Entry("d", "v", 1, now, now, now.minusMillis(1));
        cache.put(expired, now).join();
        assertThat(cache.get("d").join()).hasValueSatisfying(e -> assertThat(e.value()).isNull());
    }
}
