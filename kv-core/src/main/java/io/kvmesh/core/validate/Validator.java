package io.kvmesh.core.validate;

import io.kvmesh.core.config.Limits;
import io.kvmesh.core.error.KvException;

import java.nio.charset.StandardCharsets;

/** Checks keys, values and page sizes against the configured limits; throws INVALID_ARGUMENT with a clear message. */
public final class Validator {
    private final Limits limits;

    public Validator(Limits limits) {
        this.limits = limits;
    }

    public Limits limits() {
        return limits;
    }

    public void checkKey(String key) {
        if (key == null || key.isEmpty()) {
            throw KvException.invalid("key must not be empty");
        }
        int bytes = utf8Length(key);
        if (bytes > limits.maxKeyBytes()) {
            throw KvException.invalid("key is " + bytes + " bytes; the limit is " + limits.maxKeyBytes());
        }
        checkCharacters("key", key);
    }

    public void checkValue(String value) {
        int bytes = utf8Length(value);
        if (bytes > limits.maxValueBytes()) {
            throw KvException.invalid("value is " + bytes + " bytes; the limit is " + limits.maxValueBytes());
        }
        if (value.indexOf('\0') >= 0) {
            throw KvException.invalid("value must not contain NUL characters");
        }
    }

    /** A prefix may be empty; otherwise it follows the rules of a key. */
    public void checkPrefix(String prefix) {
        if (prefix.isEmpty()) {
            return;
        }
        if (utf8Length(prefix) > limits.maxKeyBytes()) {
            throw KvException.invalid("prefix is longer than the key limit of " + limits.maxKeyBytes() + " bytes");
        }
        checkCharacters("prefix", prefix);
    }

    /** The effective page size: 0 gives the default, larger than the maximum is capped, negative is rejected. */
    public int pageSize(int requested) {
        if (requested < 0) {
            throw KvException.invalid("page_size must not be negative");
        }
        if (requested == 0) {
            return limits.defaultPageSize();
        }
        return Math.min(requested, limits.maxPageSize());
    }

    /** A condition's expected version: 0 (must not exist) or a positive version. */
    public void checkExpectedVersion(long expected) {
        if (expected < 0) {
            throw KvException.invalid("expected_version must be 0 (key must not exist) or a positive version");
        }
    }

    /** A TTL: zero means none; negative or over ten years is rejected. */
    public java.time.Duration ttl(long seconds, int nanos) {
        if (seconds < 0 || nanos < 0) {
            throw KvException.invalid("ttl must not be negative");
        }
        if (seconds > 10L * 366 * 24 * 3600) {
            throw KvException.invalid("ttl must be at most ten years");
        }
        java.time.Duration ttl = java.time.Duration.ofSeconds(seconds, nanos);
        if (!ttl.isZero() && ttl.toMillis() == 0) {
            throw KvException.invalid("ttl must be at least 1ms");
        }
        return ttl;
    }

    /** An operation id: what a write answered with, so short printable text. */
    public void checkOperationId(String id) {
        if (id.isEmpty()) {
            throw KvException.invalid("operation_id must not be empty");
        }
        if (id.length() > 200) {
            throw KvException.invalid("operation_id is longer than 200 characters");
        }
        checkCharacters("operation_id", id);
    }

    private static void checkCharacters(String what, String s) {
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            if (Character.isISOControl(cp)) {
                throw KvException.invalid(what + " must not contain control characters (found U+"
                        + String.format("%04X", cp) + " at index " + i + ")");
            }
            if (isNoncharacter(cp) || Character.isSurrogate(s.charAt(i)) && !Character.isSupplementaryCodePoint(cp)) {
                throw KvException.invalid(what + " must be valid Unicode text without noncharacters (index " + i + ")");
            }
            i += Character.charCount(cp);
        }
    }

    private static boolean isNoncharacter(int cp) {
        return (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE;
    }

    private static int utf8Length(String s) {
        return s.getBytes(StandardCharsets.UTF_8).length;
    }
}
