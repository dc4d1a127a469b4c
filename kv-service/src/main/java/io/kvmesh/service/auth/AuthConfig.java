package io.kvmesh.service.auth;

import io.kvmesh.core.config.Env;

import java.nio.file.Path;
import java.util.Locale;

/**
 * Whether the KeyValue API asks for tokens, and the public keys it checks them with.
 *
 * @param enabled    {@code KVMESH_AUTH=on}: every KeyValue call needs a valid token granting it (health and reflection
 *                   stay open). start.sh turns it on when the public port listens beyond loopback; compose always.
 * @param publicKeys {@code KVMESH_AUTH_JWKS_FILE}: the JWK set (public keys only) tokens are verified with
 */
public record AuthConfig(boolean enabled, Path publicKeys) {
    public static final AuthConfig OFF = new AuthConfig(false, null);

    public AuthConfig {
        if (enabled && publicKeys == null) {
            throw new IllegalArgumentException("KVMESH_AUTH=on needs KVMESH_AUTH_JWKS_FILE (the public key set)");
        }
    }

    public static AuthConfig from(Env env) {
        String mode = env.string("KVMESH_AUTH", "off").trim().toLowerCase(Locale.ROOT);
        boolean on = switch (mode) {
            case "on", "true", "1", "yes" -> true;
            case "off", "false", "0", "no", "" -> false;
            default -> throw new IllegalArgumentException("KVMESH_AUTH must be on or off, not '" + mode + "'");
        };
        String file = env.string("KVMESH_AUTH_JWKS_FILE", "");
        return new AuthConfig(on, file.isBlank() ? null : Path.of(file));
    }
}
