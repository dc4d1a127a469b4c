package io.kvmesh.service;

import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.kvmesh.core.config.Env;
import io.kvmesh.service.config.ServiceConfig;

import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;

/** Entry point of a kv-service replica. */
public final class KvServiceMain {
    /** The most frequent client keepalive ping tolerated; well under Envoy's 10 s interval. */
    static final long KEEPALIVE_PERMIT_SECONDS = 5;

    private KvServiceMain() {
    }

    public static void main(String[] args) throws Exception {
        ServiceConfig config = ServiceConfig.from(Env.system());
        // Envoy pings its upstream connections every 10 s (envoy.yaml, connection_keepalive) to find dead ones, idle
        // Watch streams included. grpc-java answers pings more frequent than every 5 minutes with GOAWAY
        // ENHANCE_YOUR_CALM "too_many_pings", which cut every idle Watch after about 30 s: permit them.
        KvServiceServer server = KvServiceServer.create(config,
                NettyServerBuilder.forAddress(new InetSocketAddress(config.bindAddress(), config.port()))
                        .permitKeepAliveTime(KEEPALIVE_PERMIT_SECONDS, TimeUnit.SECONDS)
                        .permitKeepAliveWithoutCalls(true)).start();
        Runtime.getRuntime().addShutdownHook(new Thread(server::stop, "kv-service-shutdown"));
        server.blockUntilShutdown();
    }
}
