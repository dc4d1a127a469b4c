package io.kvmesh.auth;

import java.time.Instant;
import java.util.List;

/** Who a verified token speaks for, what it may do, and until when. */
public record Principal(String subject, List<Grant> grants, Instant expiresAt) {
    public Principal {
        grants = List.copyOf(grants);
    }

    /** Whether some grant allows {@code permission} on this one key. */
    public boolean allowsKey(Permission permission, String key) {
        for (Grant g : grants) {
            if (g.covers(permission, key)) {
                return true;
            }
        }
        return false;
    }

    /**
     * Whether some grant allows {@code permission} on every key under {@code prefix} (List and Watch of a prefix):
     * true when the prefix lies inside a granted prefix. Like etcd, a range that is only partly granted is refused,
     * not filtered.
     */
    public boolean allowsPrefix(Permission permission, String prefix) {
        return allowsKey(permission, prefix);
    }
}
