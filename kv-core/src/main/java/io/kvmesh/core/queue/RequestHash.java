package io.kvmesh.core.queue;

import io.kvmesh.queue.v1.OperationOrBuilder;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.Base64;

/**
 * The fingerprint of what a write does: kind, key, value, condition and TTL (not its mode, request id or accept time,
 * which a retry may change). A request id names one request; two writes with one id and different fingerprints are
 * different requests, and the second is refused.
 */
public final class RequestHash {
    private RequestHash() {
    }

    /** 128 bits of SHA-256 over an unambiguous encoding of the operation's effect, base64url. */
    public static String of(OperationOrBuilder op) {
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        field(sha, op.getKind().name());
        field(sha, op.getKey());
        field(sha, op.getValue());
        field(sha, op.hasExpectedVersion() ? Long.toString(op.getExpectedVersion()) : "-");
        field(sha, Long.toString(op.getTtlMillis()));
        return Base64.getUrlEncoder().withoutPadding().encodeToString(Arrays.copyOf(sha.digest(), 16));
    }

    /** Whether two fingerprints may belong to the same request: equal, or one unknown (empty or null). */
    public static boolean sameRequest(String a, String b) {
        return a == null || b == null || a.isEmpty() || b.isEmpty() || a.equals(b);
    }

    /** Length-prefixed, so no two different field lists encode alike. */
    private static void field(MessageDigest sha, String value) {
        byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
        sha.update(Integer.toString(bytes.length).getBytes(StandardCharsets.US_ASCII));
        sha.update((byte) ':');
        sha.update(bytes);
    }
}
