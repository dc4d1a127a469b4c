package io.kvmesh.it;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.kvmesh.api.v1.GetRequest;
import io.kvmesh.api.v1.GetResponse;
import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.PutResponse;
import io.kvmesh.api.v1.WriteMode;
import io.kvmesh.core.model.Entry;
import io.kvmesh.core.testing.TestServers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** Redis and PostgreSQL really stopped and started again (same port, same data) while the stack runs. */
class OutageIT {
    private static Stack stack;

    @BeforeAll
    static void setUp() throws Exception {
        stack = Stack.start("outage", 1, 1);
    }

    @AfterAll
    static void tearDown() throws Exception {
        stack.close();
    }

    @AfterEach
    void serversBackUp() {
        // whatever a failed assertion left behind, the next test class needs every server running
        TestServers.ctl("redis", "thaw");
        TestServers.ctl("redis", "start");
        TestServers.ctl("postgres", "start");
        TestServers.ctl("rabbitmq", "start");
    }

    private static GetResponse get(String key) {
        return stack.client(0).get(GetRequest.newBuilder().setKey(key).build());
    }

    private static void put(String key, String value) {
        assertThat(stack.client(0).put(PutRequest.newBuilder().setKey(key).setValue(value).build()).getStatus())
                .isEqualTo("queued");
    }

    @Test
    void redisDown_readsFromPostgresAndWritesApply_thenNoReadIsOlderThanApplied() {
        put("cached", "before");
        await().atMost(Duration.ofSeconds(10)).until(() -> ReadWriteIT.codeOf(() -> get("cached")) == Status.Code.OK
                && get("cached").getSource().equals("redis"));

        TestServers.ctl("redis", "stop"); // saves its data: "before" comes back with it

        GetResponse during = get("cached");
        assertThat(during.getSource()).isEqualTo("postgres");
        assertThat(during.getData().getValue()).isEqualTo("before");
        put("cached", "during");
        put("fresh", "written while Redis was down");
        await().atMost(Duration.ofSeconds(10)).until(() -> get("cached").getData().getValue().equals("during"));
        // "fresh" lives in another partition: it may apply a little later
        await().atMost(Duration.ofSeconds(10)).until(() -> ReadWriteIT.codeOf(() -> get("fresh")) == Status.Code.OK);
        assertThat(get("fresh").getSource()).isEqualTo("postgres");
        assertThat(stack.consumer(0).cachePermits()).isZero();

        TestServers.ctl("redis", "start"); // reloads the cache as it was, "before" included

        await().atMost(Duration.ofSeconds(20)).until(() -> stack.consumer(0).cachePermits() > 0);
        for (int i = 0; i < 20; i++) {
            GetResponse after = get("cached");
            assertThat(after.getData().getValue()).isEqualTo("during");
            assertThat(after.getData().getVersion()).isEqualTo(2);
        }
        await().atMost(Duration.ofSeconds(10)).until(() -> get("cached").getSource().equals("redis"));
    }

    private static long putSync(String key, String value) {
        PutResponse r = stack.client(0).put(PutRequest.newBuilder().setKey(key).setValue(value)
                .setMode(WriteMode.SYNC).build());
        assertThat(r.getStatus()).isEqualTo("applied");
        return r.getVersion();
    }

    /** Every read of {@code key}, from wherever it comes, shows {@code version} (never an older one). */
    private static void assertEveryReadShows(String key, String value, long version) {
        for (int i = 0; i < 20; i++) {
            GetResponse r = get(key);
            assertThat(r.getData().getVersion()).as("read %d (from %s)", i, r.getSource()).isEqualTo(version);
            assertThat(r.getData().getValue()).isEqualTo(value);
        }
    }

    @Test
    void redisCrash_restartedFromAnOldDump_neverServesTheOlderVersion() {
        putSync("stale/probe", "p");
        putSync("stale/k", "v1");
        await().atMost(Duration.ofSeconds(10)).until(() -> get("stale/k").getSource().equals("redis"));
        TestServers.ctl("redis", "stop"); // SHUTDOWN SAVE: the dump now holds v1
        TestServers.ctl("redis", "start");
        long v2 = putSync("stale/k", "v2"); // applied, and written to the cache under its partition's permit
        await().atMost(Duration.ofSeconds(10)).until(() -> get("stale/k").getSource().equals("redis")
                && get("stale/k").getData().getVersion() == v2);

        TestServers.ctl("redis", "kill"); // kill -9: the restart loads the dump with v1
        TestServers.ctl("redis", "start");
        // the replica is back on Redis once another key is served from it again (reading stale/k itself from
        // PostgreSQL first would refill the cache with v2 and hide what a reconnected reader would have found)
        await().atMost(Duration.ofSeconds(10)).until(() -> get("stale/probe").getSource().equals("redis"));

        assertEveryReadShows("stale/k", "v2", v2);
        await().atMost(Duration.ofSeconds(10)).until(() -> get("stale/k").getSource().equals("redis"));
        assertEveryReadShows("stale/k", "v2", v2);
    }

    @Test
    void redisRestartedWithoutData_readsFillAgainFromPostgres() {
        long v = putSync("empty/k", "kept");
        await().atMost(Duration.ofSeconds(10)).until(() -> get("empty/k").getSource().equals("redis"));
        TestServers.ctl("redis", "kill");
        TestServers.ctl("redis", "start");
        assertEveryReadShows("empty/k", "kept", v);
        await().atMost(Duration.ofSeconds(10)).until(() -> get("empty/k").getSource().equals("redis"));
    }

    @Test
    void brokerDown_healthSaysNotServing_readsWork_writesUnavailable_thenAllRecovers() {
        putSync("broker/k", "before");
        assertThat(stack.replica(0).isServing()).isTrue();
        TestServers.ctl("rabbitmq", "stop");
        try {
            await().atMost(Duration.ofSeconds(15)).until(() -> !stack.replica(0).isServing());
            assertThat(get("broker/k").getData().getValue()).isEqualTo("before");
            assertThat(ReadWriteIT.codeOf(() -> stack.client(0).put(PutRequest.newBuilder().setKey("broker/k")
                    .setValue("during").build()))).isEqualTo(Status.Code.UNAVAILABLE);
        } finally {
            TestServers.ctl("rabbitmq", "start");
        }
        await().atMost(Duration.ofSeconds(30)).until(() -> stack.replica(0).isServing());
        await().atMost(Duration.ofSeconds(30)).until(() -> stack.consumer(0).isConsuming());
        assertThat(putSync("broker/k", "after")).isEqualTo(2);
    }

    @Test
    void brokerDiskAlarm_writesRefusedAtOnceNamingIt_readsWork_thenWritesGoThroughAgain() {
        putSync("alarm/k", "before");
        // a limit far above any disk's free space: the broker's disk alarm, which blocks every publishing connection
        TestServers.rabbitmqctl("set_disk_free_limit", "100000GB");
        try {
            // the first write may wait for its confirm until the replica hears connection.blocked; then at once
            await().atMost(Duration.ofSeconds(30)).until(() -> {
                StatusRuntimeException e = refusedPut("alarm/k", "during");
                return e != null && e.getStatus().getDescription() != null
                        && e.getStatus().getDescription().contains("refuses writes");
            });
            long t0 = System.nanoTime();
            StatusRuntimeException again = refusedPut("alarm/k", "during");
            assertThat(again).isNotNull();
            assertThat(again.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
            assertThat(again.getStatus().getDescription()).contains("nothing was written");
            assertThat(Duration.ofNanos(System.nanoTime() - t0)).isLessThan(Duration.ofSeconds(2));
            assertThat(get("alarm/k").getData().getValue()).isEqualTo("before");
        } finally {
            TestServers.rabbitmqctl("set_disk_free_limit", "1GB"); // what servers.sh configures
        }
        await().atMost(Duration.ofSeconds(30)).until(() -> refusedPut("alarm/k", "after") == null);
        await().atMost(Duration.ofSeconds(30)).until(() -> "after".equals(get("alarm/k").getData().getValue()));
    }

    /** The error a put ends with, or null once it is acknowledged. */
    private static StatusRuntimeException refusedPut(String key, String value) {
        try {
            stack.client(0).withDeadlineAfter(15, java.util.concurrent.TimeUnit.SECONDS)
                    .put(PutRequest.newBuilder().setKey(key).setValue(value).build());
            return null;
        } catch (StatusRuntimeException e) {
            return e;
        }
    }

    @Test
    void postgresDown_putsStillAcknowledged_appliedAfterItReturns() {
        TestServers.ctl("postgres", "stop");
        put("while-pg-down", "1");
        put("while-pg-down", "2");
        // a client request id must be recorded before its write is queued: refused, retryable, nothing queued
        StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, () -> stack.client(0).put(
                PutRequest.newBuilder().setKey("while-pg-down").setValue("3").setRequestId("pg-down-1").build()));
        assertThat(refused.getStatus().getCode()).isEqualTo(Status.Code.UNAVAILABLE);
        assertThat(refused.getStatus().getDescription()).contains("request id");
        long retriesBefore = stack.consumer(0).retryCount();
        // the consumer holds the batch and retries; nothing is acked or dead-lettered meanwhile
        await().atMost(Duration.ofSeconds(20)).until(() -> stack.consumer(0).retryCount() > retriesBefore + 1);
        TestServers.ctl("postgres", "start");
        await().atMost(Duration.ofSeconds(30)).until(() ->
                stack.store.find("while-pg-down").map(Entry::version).orElse(0L) == 2L);
        assertThat(stack.store.find("while-pg-down")).map(Entry::value).contains("2");
        await().atMost(Duration.ofSeconds(10)).until(() -> ReadWriteIT.codeOf(() -> get("while-pg-down")) == Status.Code.OK);
        assertThat(get("while-pg-down").getData().getValue()).isEqualTo("2");
    }
}
