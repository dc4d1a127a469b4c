package io.kvmesh.service.read;

import io.kvmesh.core.error.KvException;

import java.nio.charset.StandardCharsets;
import java.util.Base64;

/** The opaque List page token: the last key of the previous page, versioned and base64url-encoded. */
final class PageToken {
    private static final String VERSION = "k1:";

    private PageToken() {
    }

    static String encode(String lastKey) {
        return Base64.getUrlEncoder().withoutPadding()
                .encodeToString((VERSION + lastKey).getBytes(StandardCharsets.UTF_8));
    }

    /** The key to continue after; "" for an empty token. */
    static String decode(String token) {
        if (token.isEmpty()) {
            return "";
        }
        try {
            String s = new String(Base64.getUrlDecoder().decode(token), StandardCharsets.UTF_8);
            if (s.startsWith(VERSION)) {
                return s.substring(VERSION.length());
            }
        } catch (IllegalArgumentException e) {
            // fall through to the error below
        }
        throw KvException.invalid("page_token is not a token this service issued");
    }
}
