package io.kvmesh.core.config;

/**
 * How to reach PostgreSQL, the source of truth. The password has no default: the stack generates one per deployment
 * (./start.sh, scripts/servers.sh, docker-compose's .env).
 */
public record PostgresConfig(String url, String user, String password, int poolSize) {

    public static PostgresConfig from(Env env) {
        return new PostgresConfig(
                env.string("KVMESH_PG_URL", "jdbc:postgresql://127.0.0.1:5432/kvmesh"),
                env.string("KVMESH_PG_USER", "kvmesh"),
                env.required("KVMESH_PG_PASSWORD", Credentials.WHERE_FROM),
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
