package io.kvmesh.it;

import io.kvmesh.consumer.apply.CacheUpdater;
import io.kvmesh.consumer.apply.PartitionChannel;
import io.kvmesh.core.cache.KvCache;
import io.kvmesh.core.config.RedisConfig;
import io.kvmesh.core.model.Entry;
import io.kvmesh.core.queue.Partitioner;
import io.kvmesh.core.testing.TestServers;
import io.kvmesh.queue.v1.ChangeEvent;
import io.lettuce.core.RedisURI;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * The applier's side of the cache permits, against the run's real Redis frozen with SIGSTOP: the cache update of a
 * committed write cannot reach Redis, while a reader's fill with the state it read from PostgreSQL before the commit
 * waits in Redis's socket. Whatever order Redis runs them in when it thaws, that older state is never served once the
 * applier let the write be acknowledged.
 */
class CachePermitIT {
    private static final Partitioner PARTITIONS = new Partitioner(2);
    private static final Duration PERMIT = Duration.ofMillis(1_500);
    private static TestServers.Isolation iso;
    private static KvCache applierCache;
    private static KvCache readerCache;
    private static CacheUpdater updater;

    @BeforeAll
    static void setUp() {
        iso = TestServers.isolate("permit");
        applierCache = new KvCache(iso.redis(), PARTITIONS);
        readerCache = new KvCache(iso.redis(), PARTITIONS);
        updater = new CacheUpdater(applierCache, PARTITIONS, Clock.systemUTC(), Duration.ofMillis(300), PERMIT);
        updater.start();
    }

    @AfterAll
    static void tearDown() {
        updater.close();
        applierCache.close();
        readerCache.close();
        iso.close();
    }

    @AfterEach
    void thaw() {
        TestServers.ctl("redis", "thaw");
    }

    private static Entry live(String key, String value, long version) {
        Instant t = Instant.ofEpochMilli(1_700_000_000_000L + version);
        return new Entry(key, value, version, t, t, null);
    }

    @Test
    void frozenRedis_theWriteIsAcknowledgedOnlyAfterThePermitItCouldBeReadUnderLapsed() throws Exception {
        String key = "frozen/k";
        int p = PARTITIONS.partitionOf(key);
        updater.applying(new OpenChannel(p));
        await().atMost(Duration.ofSeconds(5)).until(() -> readerCache.get(key).join().trusted());

        // a reader misses and reads v1 from PostgreSQL ...
        KvCache.Lookup miss = readerCache.get(key).join();
        assertThat(miss.entry()).isEmpty();
        TestServers.ctl("redis", "freeze");
        // ... and fills it while the applier commits v2, whose cache update cannot reach Redis
        CompletableFuture<Boolean> staleFill = readerCache.fill(live(key, "v1", 1), miss, Instant.now());
        updater.update(List.of(live(key, "v2", 2)));
        assertThat(updater.partitionsTainted()).isEqualTo(1);

        TestServers.ctl("redis", "thaw");
        assertThat(staleFill.handle((written, error) -> error == null && written).join()).isFalse();
        await().atMost(Duration.ofSeconds(5)).until(() -> updater.partitionsTainted() == 0);
        for (int i = 0; i < 20; i++) {
            KvCache.Lookup after = readerCache.get(key).join();
            assertThat(after.entry()).as("read %d after the acknowledgement", i).isEmpty();
        }
        // the partition is read from the cache again, under a new epoch that starts empty
        KvCache.Lookup again = readerCache.get(key).join();
        assertThat(again.trusted()).isTrue();
        assertThat(again.epoch()).isNotEqualTo(miss.epoch());
        assertThat(readerCache.fill(live(key, "v2", 2), again, Instant.now()).join()).isTrue();
        assertThat(readerCache.get(key).join().entry()).map(Entry::value).contains("v2");
    }

    /**
     * The applier cut off from Redis while readers still reach it: no new epoch can be granted, so the write may be
     * acknowledged only once the permit lapsed, and from then on the older state is not read from the cache.
     */
    @Test
    void applierCutOffFromRedis_theWriteIsAcknowledgedOnlyOnceThePermitLapsed() throws Exception {
        // a namespace of its own: the class's applier holds the permits of its partitions in the shared one
        RedisConfig own = iso.redis().withKeyPrefix(iso.redis().keyPrefix() + "cut:");
        try (Blackhole path = new Blackhole(iso.redis().uri());
             KvCache readerCache = new KvCache(own, PARTITIONS);
             KvCache cutOff = new KvCache(own.withUri(path.uri()), PARTITIONS);
             CacheUpdater applier = new CacheUpdater(cutOff, PARTITIONS, Clock.systemUTC(), Duration.ofMillis(300),
                     PERMIT)) {
            applier.start();
            String key = "cut/k";
            applier.applying(new OpenChannel(PARTITIONS.partitionOf(key)));
            await().atMost(Duration.ofSeconds(5)).until(() -> readerCache.get(key).join().trusted());

            KvCache.Lookup miss = readerCache.get(key).join();
            path.cut();
            // the reader's fill of what it read before the commit lands: nothing newer is acknowledged yet
            assertThat(readerCache.fill(live(key, "v1", 1), miss, Instant.now()).join()).isTrue();
            applier.update(List.of(live(key, "v2", 2))); // cannot reach Redis; returns when v2 may be acknowledged
            assertThat(readerCache.get(key).join().trusted()).as("the permit v1 was cached under has lapsed").isFalse();

            path.heal();
            await().atMost(Duration.ofSeconds(5)).until(() -> applier.partitionsTainted() == 0);
            KvCache.Lookup again = readerCache.get(key).join();
            assertThat(again.trusted()).isTrue();
            assertThat(again.epoch()).isNotEqualTo(miss.epoch());
            assertThat(again.entry()).isEmpty();
        }
    }

    @Test
    void aWrittenUpdate_isAcknowledgedAtOnce_andReadersSeeIt() throws Exception {
        String key = "written/k";
        updater.applying(new OpenChannel(PARTITIONS.partitionOf(key)));
        await().atMost(Duration.ofSeconds(5)).until(() -> readerCache.get(key).join().trusted());
        updater.update(List.of(live(key, "v1", 1)));
        assertThat(updater.partitionsTainted()).isZero();
        assertThat(readerCache.get(key).join().entry()).map(Entry::value).contains("v1");
    }

    @Test
    void aClosedChannel_letsThePermitLapse_soTheNextApplierStartsANewEpoch() {
        String key = "handover/k";
        int p = PARTITIONS.partitionOf(key);
        OpenChannel first = new OpenChannel(p);
        updater.applying(first);
        await().atMost(Duration.ofSeconds(5)).until(() -> readerCache.get(key).join().trusted());
        String epoch = readerCache.get(key).join().epoch();
        first.open = false; // the broker gave the partition to another consumer
        await().atMost(Duration.ofSeconds(5)).until(() -> !readerCache.get(key).join().trusted());
        Optional<String> next = applierCache.grant(p, "another-consumer", Instant.now().plus(PERMIT), false).join();
        assertThat(next).isPresent().get().isNotEqualTo(epoch);
    }

    /** A TCP path to Redis that can be cut (bytes held, connections kept open) and healed. */
    private static final class Blackhole implements AutoCloseable {
        private final ServerSocket server;
        private final String target;
        private final String redisHost;
        private final int redisPort;
        private boolean cut;
        private final List<Socket> sockets = new CopyOnWriteArrayList<>();

        Blackhole(String redisUri) throws IOException {
            RedisURI uri = RedisURI.create(redisUri);
            this.redisHost = uri.getHost();
            this.redisPort = uri.getPort();
            this.target = redisUri;
            this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
            Thread.ofVirtual().start(this::accept);
        }

        String uri() {
            return target.replace("@" + redisHost + ":" + redisPort, "@" + redisHost + ":" + server.getLocalPort());
        }

        synchronized void cut() {
            cut = true;
        }

        synchronized void heal() {
            cut = false;
            notifyAll();
        }

        /** Holds the bytes read while the path is cut, as a partition does (nothing lost, nothing closed). */
        private synchronized void awaitHealed() throws InterruptedException {
            while (cut) {
                wait();
            }
        }

        private void accept() {
            try {
                while (true) {
                    Socket client = server.accept();
                    Socket redis = new Socket(redisHost, redisPort);
                    sockets.add(client);
                    sockets.add(redis);
                    Thread.ofVirtual().start(() -> pump(client, redis));
                    Thread.ofVirtual().start(() -> pump(redis, client));
                }
            } catch (IOException e) {
                // closed
            }
        }

        private void pump(Socket from, Socket to) {
            byte[] buf = new byte[8192];
            try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
                int n;
                while ((n = in.read(buf)) >= 0) {
                    awaitHealed();
                    out.write(buf, 0, n);
                    out.flush();
                }
            } catch (IOException | InterruptedException e) {
                // closed
            }
        }

        @Override
        public void close() throws IOException {
            server.close();
            for (Socket s : sockets) {
                s.close();
            }
        }
    }

    private static final class OpenChannel implements PartitionChannel {
        private final int partition;
        volatile boolean open = true;

        OpenChannel(int partition) {
            this.partition = partition;
        }

        @Override
        public int partition() {
            return partition;
        }

        @Override
        public boolean isOpen() {
            return open;
        }

        @Override
        public void ackUpTo(long tag) {
        }

        @Override
        public void reject(long tag) {
        }

        @Override
        public void abort() {
            open = false;
        }

        @Override
        public boolean publishEvents(List<ChangeEvent> events) {
            return true;
        }
    }
}
