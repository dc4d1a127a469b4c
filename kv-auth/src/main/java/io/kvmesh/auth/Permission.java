package io.kvmesh.auth;

import java.util.EnumSet;
import java.util.Locale;
import java.util.Set;

/** What a token may do with the keys under one of its prefixes (etcd's read / write permissions, plus watch). */
public enum Permission {
    /** Get, List, GetOperation. */
    READ,
    /** Put, Delete. */
    WRITE,
    /** Watch. */
    WATCH;

    /** The name used in tokens and on the command line: read, write, watch. */
    public String claimName() {
        return name().toLowerCase(Locale.ROOT);
    }

    /**
     * Parses a comma-separated list: {@code read,write,watch}, or the shorthands {@code r}, {@code w}, {@code rw}
     * (read and write) and {@code all} (all three).
     */
    public static Set<Permission> parseList(String text) {
        Set<Permission> out = EnumSet.noneOf(Permission.class);
        for (String part : text.split(",")) {
            String p = part.trim().toLowerCase(Locale.ROOT);
            switch (p) {
                case "read", "r" -> out.add(READ);
                case "write", "w" -> out.add(WRITE);
                case "watch" -> out.add(WATCH);
                case "rw" -> {
                    out.add(READ);
                    out.add(WRITE);
                }
                case "all" -> out.addAll(EnumSet.allOf(Permission.class));
                default -> throw new IllegalArgumentException(
                        "unknown permission '" + part.trim() + "' (read, write, watch, rw, all)");
            }
        }
        return out;
    }
}
