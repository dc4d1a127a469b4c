package io.kvmesh.auth;

import java.util.EnumSet;
import java.util.Set;

/**
 * Permissions on every key that starts with {@code prefix} (the empty prefix is every key), like one of etcd's
 * role permissions on a key range, or a Consul ACL key_prefix rule.
 */
public record Grant(String prefix, Set<Permission> permissions) {
    public Grant {
        if (prefix == null) {
            throw new IllegalArgumentException("a grant needs a prefix (\"\" for every key)");
        }
        if (permissions == null || permissions.isEmpty()) {
            throw new IllegalArgumentException("a grant needs at least one permission");
        }
        permissions = Set.copyOf(EnumSet.copyOf(permissions));
    }

    /** Whether this grant allows {@code permission} on {@code key}. */
    public boolean covers(Permission permission, String key) {
        return permissions.contains(permission) && key.startsWith(prefix);
    }
}
