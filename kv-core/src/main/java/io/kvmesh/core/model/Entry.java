package io.kvmesh.core.model;

import java.time.Instant;

/**
 * The state of one key as stored: a live value, or a tombstone ({@code value == null}) that keeps the
 * version of a deleted key. Version 0 with no value means the key was never written.
 */
public record Entry(String key, String value, long version, Instant createTime, Instant updateTime, Instant expireTime) {

    /** The state of a key that was never written. */
    public static Entry absent(String key) {
        return new Entry(key, null, 0, null, null, null);
    }

    /** Whether the entry holds a value that is visible at {@code now} (not deleted, not expired). */
    public boolean isLiveAt(Instant now) {
        return value != null && (expireTime == null || expireTime.isAfter(now));
    }
}
