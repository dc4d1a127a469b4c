package io.kvmesh.core.cache;

import io.kvmesh.core.model.Entry;
import org.junit.jupiter.api.Test;

import java.time.Instant;

import static org.assertj.core.api.Assertions.assertThat;

class CacheCodecTest {
    @Test
    void encodeDecode_roundTripsLiveEntryWithPipesInValue() {
        Entry e = new Entry("k", "a|b||c", 42, Instant.ofEpochMilli(1000), Instant.ofEpochMilli(2000),
                Instant.ofEpochMilli(3000));
        assertThat(CacheCodec.decode("k", CacheCodec.encode(e))).isEqualTo(e);
        assertThat(CacheCodec.encode(e)).startsWith("42|L|");
    }

    @Test
    void encodeDecode_roundTripsTombstoneAndEmptyValue() {
        Entry tomb = new Entry("k", null, 7, null, Instant.ofEpochMilli(5), null);
        assertThat(CacheCodec.decode("k", CacheCodec.encode(tomb))).isEqualTo(tomb);
        Entry empty = new Entry("k", "", 1, Instant.ofEpochMilli(5), Instant.ofEpochMilli(5), null);
        assertThat(CacheCodec.decode("k", CacheCodec.encode(empty))).isEqualTo(empty);
    }
}
