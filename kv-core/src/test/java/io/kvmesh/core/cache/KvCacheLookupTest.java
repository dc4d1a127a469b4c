package io.kvmesh.core.cache;

import io.kvmesh.core.model.Entry;
import org.junit.jupiter.api.Test;

import java.time.Instant;

import static org.assertj.core.api.Assertions.assertThat;

/** What a read may use, from the raw permit and entry one MGET returns (KvCache.get). */
class KvCacheLookupTest {
    private static final long NOW = 1_800_000_000_000L;
    private static final Entry V2 = new Entry("k", "two", 2, Instant.ofEpochMilli(1), Instant.ofEpochMilli(2), null);
    private static final String ENCODED = CacheCodec.encode(V2);

    @Test
    void withoutAPermitInForce_nothingIsTrusted() {
        assertThat(KvCache.lookup("k", null, "3:" + ENCODED, NOW).trusted()).isFalse();
        assertThat(KvCache.lookup("k", "3:" + NOW + ":c1", "3:" + ENCODED, NOW).trusted()).as("deadline now").isFalse();
        assertThat(KvCache.lookup("k", "3:" + (NOW - 1) + ":c1", "3:" + ENCODED, NOW).trusted()).isFalse();
        for (String malformed : new String[] {"", "3", "3:", "3:x:c1", "3:12"}) {
            assertThat(KvCache.lookup("k", malformed, "3:" + ENCODED, NOW).trusted()).as(malformed).isFalse();
        }
    }

    @Test
    void underAPermit_onlyAnEntryOfItsEpochIsAHit() {
        String permit = "3:" + (NOW + 1) + ":c1";
        KvCache.Lookup hit = KvCache.lookup("k", permit, "3:" + ENCODED, NOW);
        assertThat(hit.epoch()).isEqualTo("3");
        assertThat(hit.entry()).contains(V2);

        for (String other : new String[] {"2:" + ENCODED, "33:" + ENCODED, "31:" + ENCODED, ENCODED, "3"}) {
            KvCache.Lookup miss = KvCache.lookup("k", permit, other, NOW);
            assertThat(miss.trusted()).isTrue();
            assertThat(miss.entry()).as(other).isEmpty();
        }
        assertThat(KvCache.lookup("k", permit, null, NOW).entry()).isEmpty();
    }
}
