package io.kvmesh.core.cache;

import io.kvmesh.core.model.Entry;

import java.time.Instant;

/**
 * The one encoding of a cached entry: {@code version|L or T|create|update|expire|value} (times in epoch
 * millis, empty when unset). The version comes first so the guard script can compare it cheaply.
 */
public final class CacheCodec {
    private CacheCodec() {
    }

    public static String encode(Entry e) {
        StringBuilder sb = new StringBuilder(32 + (e.value() == null ? 0 : e.value().length()));
        sb.append(e.version()).append('|').append(e.value() == null ? 'T' : 'L').append('|');
        millis(sb, e.createTime()).append('|');
        millis(sb, e.updateTime()).append('|');
        millis(sb, e.expireTime()).append('|');
        if (e.value() != null) {
            sb.append(e.value());
        }
        return sb.toString();
    }

    public static Entry decode(String key, String s) {
        int a = s.indexOf('|');
        int b = s.indexOf('|', a + 1);
        int c = s.indexOf('|', b + 1);
        int d = s.indexOf('|', c + 1);
        int f = s.indexOf('|', d + 1);
        if (a < 0 || b < 0 || c < 0 || d < 0 || f < 0) {
            throw new IllegalArgumentException("malformed cache entry for key " + key);
        }
        long version = Long.parseLong(s, 0, a, 10);
        boolean live = s.charAt(a + 1) == 'L';
        return new Entry(key, live ? s.substring(f + 1) : null, version,
                instant(s, b + 1, c), instant(s, c + 1, d), instant(s, d + 1, f));
    }

    private static StringBuilder millis(StringBuilder sb, Instant t) {
        return t == null ? sb : sb.append(t.toEpochMilli());
    }

    private static Instant instant(String s, int from, int to) {
        return from == to ? null : Instant.ofEpochMilli(Long.parseLong(s, from, to, 10));
    }
}
