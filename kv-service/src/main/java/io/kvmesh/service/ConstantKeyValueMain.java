package io.kvmesh.service;

import com.google.protobuf.Timestamp;
import io.grpc.Server;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.protobuf.services.HealthStatusManager;
import io.grpc.stub.StreamObserver;
import io.kvmesh.api.v1.Entry;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.GetResponse;
import io.kvmesh.api.v1.KeyValueGrpc;

import java.net.InetSocketAddress;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The edge's own ceiling, for ghz-bench (not part of a stack): a KeyValue server that does no work. Get answers every
 * key with the same entry, shaped as a real one (a 256-byte value, version 1, create and update times, source
 * {@code "constant"}); every other method is UNIMPLEMENTED. Served with the replicas' transport settings (Netty,
 * handlers on the event loops), so the same nginx and Envoy in front of it measure what the edge alone can carry.
 *
 * <pre>java -cp kv-service.jar:lib/* io.kvmesh.service.ConstantKeyValueMain PORT [EVENT_LOOP_THREADS]</pre>
 */
public final class ConstantKeyValueMain {
    static final String VALUE = "v".repeat(256);
    private static final Timestamp TIME = Timestamp.newBuilder().setSeconds(1_800_000_000L).build();

    private ConstantKeyValueMain() {
    }

    /** Get: the constant entry under the key asked for. */
    static final class ConstantKeyValue extends KeyValueGrpc.KeyValueImplBase {
        @Override
        public void get(GetRequest request, StreamObserver<GetResponse> responses) {
            responses.onNext(GetResponse.newBuilder()
                    .setData(Entry.newBuilder().setKey(request.getKey()).setValue(VALUE).setVersion(1)
                            .setCreateTime(TIME).setUpdateTime(TIME))
                    .setSource("constant")
                    .build());
            responses.onCompleted();
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 1 || args.length > 2) {
            System.err.println("usage: ConstantKeyValueMain PORT [EVENT_LOOP_THREADS]");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        int loops = args.length > 1 ? Integer.parseInt(args[1]) : 0;
        HealthStatusManager health = new HealthStatusManager();
        NettyServerBuilder builder = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", port))
                .permitKeepAliveTime(KvServiceMain.KEEPALIVE_PERMIT_SECONDS, TimeUnit.SECONDS)
                .permitKeepAliveWithoutCalls(true)
                .directExecutor();
        List<EventLoopGroup> groups = KvServiceMain.eventLoops(builder, loops);
        Server server = builder.addService(new ConstantKeyValue()).addService(health.getHealthService()).build().start();
        health.setStatus("", io.grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdown();
            groups.forEach(EventLoopGroup::shutdownGracefully);
        }, "constant-shutdown"));
        System.out.println("constant KeyValue backend on 127.0.0.1:" + port);
        server.awaitTermination();
    }
}
