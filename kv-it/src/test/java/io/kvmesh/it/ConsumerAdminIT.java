package io.kvmesh.it;

import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.api.v1.WriteMode;
import io.kvmesh.consumer.KvConsumer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** The consumer's admin port on a real consumer: {@code /healthz} as start.sh and compose read it, and {@code /metrics}. */
class ConsumerAdminIT {
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private static Stack stack;

    @BeforeAll
    static void setUp() throws Exception {
        stack = Stack.start("admin", 1, 1);
    }

    @AfterAll
    static void tearDown() throws Exception {
        stack.close();
    }

    @Test
    void healthz_isOk_whileConsuming() throws Exception {
        HttpResponse<String> r = get(stack.consumer(0), "/healthz");

        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.body()).isEqualTo("{\"status\":\"ok\"}\n");
        assertThat(r.headers().firstValue("Content-Type")).contains("application/json");
    }

    @Test
    void metrics_countAppliedWrites_batchesLagAndBacklog() throws Exception {
        KvConsumer consumer = stack.consumer(0);
        for (int i = 0; i < 5; i++) {
            stack.client(0).put(PutRequest.newBuilder().setKey("metrics/" + i).setValue("v")
                    .setMode(WriteMode.SYNC).build());
        }
        // the backlog gauges are polled every 2 s: wait until every partition has a value
        await().atMost(Duration.ofSeconds(10)).until(() -> !get(consumer, "/metrics").body()
                .contains("kvmesh_consumer_queue_backlog_messages{application=\"kv-consumer\",instance=\"kv-consumer-it\","
                        + "partition=\"0\"} NaN"));

        HttpResponse<String> r = get(consumer, "/metrics");

        assertThat(r.statusCode()).isEqualTo(200);
        assertThat(r.headers().firstValue("Content-Type")).hasValueSatisfying(t -> assertThat(t).startsWith("text/plain"));
        String text = r.body();
        assertThat(value(text, "kvmesh_consumer_operations_total\\{[^}]*result=\"applied\"\\}")).isGreaterThanOrEqualTo(5);
        assertThat(value(text, "kvmesh_consumer_batch_size_operations_count\\{[^}]*\\}")).isGreaterThanOrEqualTo(1);
        assertThat(value(text, "kvmesh_consumer_apply_duration_seconds_count\\{[^}]*\\}")).isGreaterThanOrEqualTo(1);
        assertThat(value(text, "kvmesh_consumer_events_published_total\\{[^}]*\\}")).isGreaterThanOrEqualTo(5);
        assertThat(value(text, "kvmesh_consumer_deliveries_total\\{[^}]*redelivered=\"false\"\\}"))
                .isGreaterThanOrEqualTo(1);
        assertThat(value(text, "kvmesh_consumer_partitions_subscribed\\{[^}]*\\}"))
                .isEqualTo(stack.topology.partitions());
        assertThat(value(text, "kvmesh_consumer_queue_backlog_messages\\{[^}]*partition=\"0\"\\}")).isZero();
        assertThat(text).contains("kvmesh_consumer_apply_lag_seconds_bucket{", "kvmesh_consumer_retries_total{",
                "kvmesh_consumer_dead_lettered_total{", "kvmesh_consumer_cache_permits{",
                "kvmesh_consumer_inbox_deliveries{", "jvm_memory_used_bytes{");
        assertThat(consumer.appliedCount()).isGreaterThanOrEqualTo(5);
    }

    private static HttpResponse<String> get(KvConsumer consumer, String path) throws IOException, InterruptedException {
        URI uri = URI.create("http://127.0.0.1:" + consumer.adminAddress().getPort() + path);
        return HTTP.send(HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(5)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /** The sum of the samples of a series (the lines matching {@code series}) in a Prometheus text exposition. */
    private static double value(String text, String series) {
        Matcher m = Pattern.compile("(?m)^" + series + " (\\S+)$").matcher(text);
        double sum = 0;
        boolean found = false;
        while (m.find()) {
            sum += Double.parseDouble(m.group(1));
            found = true;
        }
        assertThat(found).as("series %s in\n%s", series, text).isTrue();
        return sum;
    }
}
