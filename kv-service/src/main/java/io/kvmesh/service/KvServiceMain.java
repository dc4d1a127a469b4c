package io.kvmesh.service;

import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.MultiThreadIoEventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.Epoll;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollIoHandler;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollServerSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.nio.NioIoHandler;
import io.grpc.netty.shaded.io.netty.channel.socket.nio.NioServerSocketChannel;
import io.grpc.netty.shaded.io.netty.util.concurrent.DefaultThreadFactory;
import io.kvmesh.core.config.Env;
import io.kvmesh.service.config.ServiceConfig;

import java.net.InetSocketAddress;
import java.util.List;
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
        NettyServerBuilder builder = NettyServerBuilder.forAddress(new InetSocketAddress(config.bindAddress(), config.port()))
                .permitKeepAliveTime(KEEPALIVE_PERMIT_SECONDS, TimeUnit.SECONDS)
                .permitKeepAliveWithoutCalls(true);
        List<EventLoopGroup> groups = eventLoops(builder, config.eventLoops());
        KvServiceServer server = KvServiceServer.create(config, builder).start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.stop();
            groups.forEach(EventLoopGroup::shutdownGracefully);
        }, "kv-service-shutdown"));
        server.blockUntilShutdown();
    }

    /**
     * With {@code threads} > 0, the server's own event loops (epoll where Netty has it, else NIO): one thread accepts,
     * {@code threads} serve every connection. Returns them, to be shut down after the server; none with 0 (grpc-java's
     * shared loops, twice the processors).
     */
    static List<EventLoopGroup> eventLoops(NettyServerBuilder builder, int threads) {
        if (threads <= 0) {
            return List.of();
        }
        boolean epoll = Epoll.isAvailable();
        EventLoopGroup boss = new MultiThreadIoEventLoopGroup(1, new DefaultThreadFactory("kv-grpc-accept", true),
                epoll ? EpollIoHandler.newFactory() : NioIoHandler.newFactory());
        EventLoopGroup workers = new MultiThreadIoEventLoopGroup(threads, new DefaultThreadFactory("kv-grpc-io", true),
                epoll ? EpollIoHandler.newFactory() : NioIoHandler.newFactory());
        builder.bossEventLoopGroup(boss).workerEventLoopGroup(workers)
                .channelType(epoll ? EpollServerSocketChannel.class : NioServerSocketChannel.class);
        return List.of(workers, boss);
    }
}
