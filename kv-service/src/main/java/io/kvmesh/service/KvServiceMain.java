package io.kvmesh.service;

import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.kvmesh.core.config.Env;
import io.kvmesh.service.config.ServiceConfig;

import java.net.InetSocketAddress;

/** Entry point of a kv-service replica. */
public final class KvServiceMain {
    private KvServiceMain() {
    }

    public static void main(String[] args) throws Exception {
        ServiceConfig config = ServiceConfig.from(Env.system());
        KvServiceServer server = KvServiceServer.create(config,
                NettyServerBuilder.forAddress(new InetSocketAddress(config.bindAddress(), config.port()))).start();
        Runtime.getRuntime().addShutdownHook(new Thread(server::stop, "kv-service-shutdown"));
        server.blockUntilShutdown();
    }
}
