package io.kvmesh.service;

import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.stub.StreamObserver;
import org.junit.jupiter.api.Test;

import java.net.InetSocketAddress;
import java.util.List;
import java.util.concurrent.CopyOnWriteArraySet;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/** KVMESH_GRPC_EVENT_LOOPS: the replica's gRPC transport on its own, sized event loops, handlers on them. */
class EventLoopsTest {

    @Test
    void zeroKeepsGrpcDefaults() {
        assertThat(KvServiceMain.eventLoops(NettyServerBuilder.forPort(0), 0)).isEmpty();
    }

    @Test
    void callsOfEveryConnectionRunOnTheConfiguredLoops() throws Exception {
        NettyServerBuilder builder = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", 0));
        List<EventLoopGroup> groups = KvServiceMain.eventLoops(builder, 1);
        assertThat(groups).hasSize(2);
        CopyOnWriteArraySet<String> threads = new CopyOnWriteArraySet<>();
        HealthGrpc.HealthImplBase recording = new HealthGrpc.HealthImplBase() {
            @Override
            public void check(HealthCheckRequest request, StreamObserver<HealthCheckResponse> out) {
                threads.add(Thread.currentThread().getName());
                out.onNext(HealthCheckResponse.newBuilder()
                        .setStatus(HealthCheckResponse.ServingStatus.SERVING).build());
                out.onCompleted();
            }
        };
        Server server = builder.directExecutor().addService(recording).build().start();
        List<ManagedChannel> channels = List.of(channel(server), channel(server), channel(server));
        try {
            for (ManagedChannel ch : channels) {
                assertThat(HealthGrpc.newBlockingStub(ch).check(HealthCheckRequest.getDefaultInstance()).getStatus())
                        .isEqualTo(HealthCheckResponse.ServingStatus.SERVING);
            }
            // three connections, one event-loop thread: every call ran on it
            assertThat(threads).hasSize(1);
            assertThat(threads.iterator().next()).startsWith("kv-grpc-io");
        } finally {
            channels.forEach(ManagedChannel::shutdownNow);
            server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            groups.forEach(g -> g.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly());
        }
    }

    private static ManagedChannel channel(Server server) {
        return NettyChannelBuilder.forAddress("127.0.0.1", server.getPort()).usePlaintext().build();
    }
}
