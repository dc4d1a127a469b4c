package io.kvmesh.core.config;

/**
 * Input limits enforced by the service (and, with the same values, at the edge).
 *
 * @param maxKeyBytes     largest key, in UTF-8 bytes
 * @param maxValueBytes   largest value, in UTF-8 bytes
 * @param defaultPageSize page size used when a List asks for 0
 * @param maxPageSize     page sizes above this are capped to it
 * @param maxPageBytes    a List page holds no more values than this many bytes (its first entry always comes), so
 *                        every page fits through the edge whatever the values' sizes; the rest is on the next page
 */
public record Limits(int maxKeyBytes, int maxValueBytes, int defaultPageSize, int maxPageSize, int maxPageBytes) {

    public static final Limits DEFAULTS = new Limits(1024, 1024 * 1024, 100, 1000, 4 * 1024 * 1024);

    public static Limits from(Env env) {
        return new Limits(
                env.integer("KVMESH_MAX_KEY_BYTES", DEFAULTS.maxKeyBytes(), 1, 64 * 1024),
                env.integer("KVMESH_MAX_VALUE_BYTES", DEFAULTS.maxValueBytes(), 1, 64 * 1024 * 1024),
                env.integer("KVMESH_DEFAULT_PAGE_SIZE", DEFAULTS.defaultPageSize(), 1, 100_000),
                env.integer("KVMESH_MAX_PAGE_SIZE", DEFAULTS.maxPageSize(), 1, 100_000),
                env.integer("KVMESH_MAX_PAGE_BYTES", DEFAULTS.maxPageBytes(), 1, 256 * 1024 * 1024));
    }
}
