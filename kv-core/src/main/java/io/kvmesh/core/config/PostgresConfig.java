package io.kvmesh.core.config;

/** How to reach PostgreSQL, the source of truth. */
public record PostgresConfig(String url, String user, String password, int poolSize) {

    public static PostgresConfig from(Env env) {
        return new PostgresConfig(
                env.string("KVMESH_PG_URL", "jdbc:postgresql://127.0.0.1:5432/kvmesh"),
                env.string("KVMESH_PG_USER", "kvmesh"),
                env.string("KVMESH_PG_PASSWORD", "kvmesh"),
                env.integer("KVMESH_PG_POOL_SIZE", 16, 1, 512));
    }

    public PostgresConfig withUrl(String newUrl) {
        return new PostgresConfig(newUrl, user, password, poolSize);
    }

    @Override
    public String toString() {
        return "PostgresConfig[url=" + url + ", user=" + user + ", poolSize=" + poolSize + "]";
    }
}
