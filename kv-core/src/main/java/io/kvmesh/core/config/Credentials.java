package io.kvmesh.core.config;

import java.net.URI;
import java.net.URISyntaxException;

/** Checks and masking for the stores' credentials, which are never defaulted and never printed. */
final class Credentials {
    /** Where a missing credential comes from, for the start-up error. */
    static final String WHERE_FROM = "the stores' passwords are generated per deployment (./start.sh and "
            + "scripts/servers.sh: RUN_DIR/servers.env from RUN_DIR/secrets/credentials.env; docker compose: .env); "
            + "there is no default";

    private Credentials() {
    }

    /** The URI, if it names a user or password ({@code scheme://[user]:password@...}); else a clear error. */
    static String requireUserInfo(String name, String uri, String shape) {
        String userInfo;
        try {
            userInfo = new URI(uri).getRawUserInfo();
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException(name + " is not a valid URI (expected " + shape + ")", e);
        }
        if (userInfo == null || userInfo.indexOf(':') < 0 || userInfo.indexOf(':') == userInfo.length() - 1) {
            throw new IllegalArgumentException(name + " carries no password (expected " + shape + "): "
                    + WHERE_FROM);
        }
        return uri;
    }

    /** The URI with its user and password replaced by {@code ***}, for logs. */
    static String mask(String uri) {
        return uri.replaceAll("//[^@/]*@", "//***@");
    }
}
