package io.kvmesh.it;

import com.rabbitmq.client.Channel;
import com.rabbitmq.client.Connection;
import io.grpc.ManagedChannel;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.kvmesh.api.v1.KeyValueGrpc;
import io.kvmesh.consumer.KvConsumer;
import io.kvmesh.consumer.apply.AfterCommit;
import io.kvmesh.consumer.config.ConsumerConfig;
import io.kvmesh.core.config.Limits;
import io.kvmesh.core.queue.AmqpConnections;
import io.kvmesh.core.queue.PublishBatching;
import io.kvmesh.core.queue.QueueTopology;
import io.kvmesh.core.store.Database;
import io.kvmesh.core.store.KvStore;
import io.kvmesh.core.testing.TestServers;
import io.kvmesh.service.KvServiceServer;
import io.kvmesh.service.auth.AuthConfig;
import io.kvmesh.service.config.AdminSettings;
import io.kvmesh.service.config.ServiceConfig;
import io.kvmesh.service.watch.WatchLimits;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/**
 * kv-service replicas (in-process gRPC, production wiring) and kv-consumers, all against the run's real servers in a
 * database, cache prefix and queue names of their own.
 */
final class Stack implements AutoCloseable {
    final TestServers.Isolation iso;
    private final List<KvServiceServer> services = new ArrayList<>();
    private final List<ManagedChannel> channels = new ArrayList<>();
    private final List<KvConsumer> consumers = new ArrayList<>();
    private final Database database;
    final KvStore store;
    private Connection amqp;
    final QueueTopology topology;
    /** How replicas coalesce writes into broker messages. */
    PublishBatching publishing = new PublishBatching(2, 1, 256, 1 << 20);
    /** How long a replica stays subscribed to change events after its last SYNC write or Watch (0: always). */
    Duration eventsIdle = Duration.ofSeconds(30);
    /** What Watch streams may hold back; small in tests of slow watchers. */
    WatchLimits watchLimits = new WatchLimits(1000, 16 << 20, 128 << 20, Duration.ofSeconds(10));

    private Stack(String name) throws IOException {
        iso = TestServers.isolate(name);
        database = Database.open(iso.postgres(), iso.startupTimeout());
        store = new KvStore(database.jdbi());
        amqp = new AmqpConnections(iso.amqp()).open("test");
        topology = new QueueTopology(iso.amqp());
        try (Channel ch = amqp.createChannel()) {
            topology.declare(ch);
        } catch (java.util.concurrent.TimeoutException e) {
            throw new IOException(e);
        }
    }

    static Stack start(String name, int replicas, int consumerCount) throws IOException {
        Stack s = new Stack(name);
        for (int i = 0; i < replicas; i++) {
            s.addReplica();
        }
        for (int i = 0; i < consumerCount; i++) {
            s.addConsumer(AfterCommit.NONE);
        }
        return s;
    }

    ServiceConfig serviceConfig() {
        return new ServiceConfig("127.0.0.1", 0, 0, 0, publishing, Duration.ZERO, Duration.ofSeconds(2),
                iso.startupTimeout(),
                Duration.ofSeconds(5), watchLimits, Duration.ofHours(1), eventsIdle, iso.postgres(),
                iso.redis(), iso.amqp(), Limits.DEFAULTS, AuthConfig.OFF, AdminSettings.OFF);
    }

    ConsumerConfig consumerConfig() {
        return new ConsumerConfig(256, 2, 128, Duration.ofMillis(500), Duration.ofMillis(1000), iso.startupTimeout(),
                Duration.ofMillis(200), Duration.ofHours(1), iso.postgres(), iso.redis(), iso.amqp(), "127.0.0.1", 0,
                "kv-consumer-it");
    }

    void addReplica() throws IOException {
        String name = "kv-" + UUID.randomUUID();
        KvServiceServer server = KvServiceServer.create(serviceConfig(), InProcessServerBuilder.forName(name)).start();
        services.add(server);
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(20)).until(server::isSubscribed);
        channels.add(InProcessChannelBuilder.forName(name).build());
    }

    KvConsumer addConsumer(AfterCommit hook) {
        KvConsumer c = KvConsumer.create(consumerConfig(), hook).start();
        consumers.add(c);
        org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(20)).until(c::isConsuming);
        return c;
    }

    KeyValueGrpc.KeyValueStub asyncClient(int replica) {
        return KeyValueGrpc.newStub(channels.get(replica));
    }

    KvServiceServer replica(int i) {
        return services.get(i);
    }

    /** Stack with no replicas or consumers yet, to change settings before adding them. */
    static Stack empty(String name) throws IOException {
        return new Stack(name);
    }

    KeyValueGrpc.KeyValueBlockingStub client(int replica) {
        return KeyValueGrpc.newBlockingStub(channels.get(replica)).withDeadlineAfter(Duration.ofSeconds(15));
    }

    /** Stops every consumer (nothing applies, nothing sweeps) until new ones are added. */
    void stopConsumers() {
        consumers.forEach(KvConsumer::close);
        consumers.clear();
    }

    boolean hasConsumers() {
        return !consumers.isEmpty();
    }

    KvConsumer consumer(int i) {
        return consumers.get(i);
    }

    /** Messages ready in all partition queues (not yet delivered to a consumer). */
    long readyMessages() throws IOException {
        long n = 0;
        try (Channel ch = channel()) {
            for (int p = 0; p < topology.partitions(); p++) {
                n += ch.queueDeclarePassive(topology.partitionQueue(p)).getMessageCount();
            }
        } catch (java.util.concurrent.TimeoutException e) {
            throw new IOException(e);
        }
        return n;
    }

    /** Publishes a raw message to a partition queue, as a replica (of this or an older version) would. */
    void publishRaw(int partition, String contentType, byte[] body) throws IOException {
        try (Channel ch = channel()) {
            ch.confirmSelect();
            ch.basicPublish(topology.opsExchange(), QueueTopology.routingKey(partition), true,
                    com.rabbitmq.client.MessageProperties.PERSISTENT_BASIC.builder().contentType(contentType).build(),
                    body);
            ch.waitForConfirmsOrDie(5_000);
        } catch (InterruptedException | java.util.concurrent.TimeoutException e) {
            throw new IOException(e);
        }
    }

    /** Messages waiting in the dead-letter queue (each with its content type and body), taken out of it. */
    List<com.rabbitmq.client.GetResponse> takeDeadLetters() throws IOException {
        List<com.rabbitmq.client.GetResponse> taken = new ArrayList<>();
        try (Channel ch = channel()) {
            for (com.rabbitmq.client.GetResponse r; (r = ch.basicGet(topology.deadLetterQueue(), true)) != null; ) {
                taken.add(r);
            }
        } catch (java.util.concurrent.TimeoutException e) {
            throw new IOException(e);
        }
        return taken;
    }

    /** A channel of the test's own broker connection, reopened if a broker restart closed it. */
    private synchronized Channel channel() throws IOException {
        if (!amqp.isOpen()) {
            amqp = new AmqpConnections(iso.amqp()).open("test");
        }
        return amqp.createChannel();
    }

    @Override
    public void close() throws Exception {
        for (ManagedChannel c : channels) {
            c.shutdownNow();
        }
        for (KvServiceServer s : services) {
            s.stop();
        }
        for (KvConsumer c : consumers) {
            c.close();
        }
        try (Channel ch = channel()) {
            for (int p = 0; p < topology.partitions(); p++) {
                ch.queueDelete(topology.partitionQueue(p));
            }
            ch.queueDelete(topology.deadLetterQueue());
            ch.exchangeDelete(topology.opsExchange());
            ch.exchangeDelete(topology.deadLetterExchange());
        }
        if (amqp.isOpen()) {
            amqp.close();
        }
        database.close();
        iso.close();
    }

    /** A unary call's observer that completes {@code f} with its answer or its failure. */
    static <T> io.grpc.stub.StreamObserver<T> into(java.util.concurrent.CompletableFuture<T> f) {
        return new io.grpc.stub.StreamObserver<>() {
            @Override
            public void onNext(T value) {
                f.complete(value);
            }

            @Override
            public void onError(Throwable t) {
                f.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {
            }
        };
    }
}
