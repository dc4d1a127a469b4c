package io.kvmesh.it;

import io.kvmesh.api.v1.PutRequest;
import io.kvmesh.core.model.Entry;
import io.kvmesh.core.model.OperationOutcome;
import io.kvmesh.core.store.OplogRow;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** Two replicas publishing and two consumers applying, writing the same keys concurrently. */
class OrderingIT {
    private static final int KEYS = 5;
    private static final int WRITES_PER_KEY = 60;
    private static Stack stack;

    @BeforeAll
    static void setUp() throws Exception {
        stack = Stack.start("ordering", 2, 2);
    }

    @AfterAll
    static void tearDown() throws Exception {
        stack.close();
    }

    private record Write(int writer, int seq) {
    }

    @Test
    void concurrentWriters_lastConfirmedWriteWins_versionsHaveNoGaps_eachWritersOrderKept() throws Exception {
        Map<String, Write> byOperation = new ConcurrentHashMap<>();
        ExecutorService pool = Executors.newFixedThreadPool(2);
        List<Future<?>> done = new ArrayList<>();
        for (int w = 0; w < 2; w++) {
            int writer = w;
            done.add(pool.submit(() -> {
                for (int i = 0; i < WRITES_PER_KEY; i++) {
                    for (int k = 0; k < KEYS; k++) {
                        String id = stack.client(writer).put(PutRequest.newBuilder()
                                .setKey("order/" + k).setValue("w" + writer + "-" + i).build()).getOperationId();
                        byOperation.put(id, new Write(writer, i));
                    }
                }
            }));
        }
        for (Future<?> f : done) {
            f.get();
        }
        pool.shutdown();
        // both writers are confirmed; one more write per key is now, without doubt, the last confirmed one
        for (int k = 0; k < KEYS; k++) {
            stack.client(1).put(PutRequest.newBuilder().setKey("order/" + k).setValue("final").build());
        }
        long total = 2L * WRITES_PER_KEY + 1;
        for (int k = 0; k < KEYS; k++) {
            String key = "order/" + k;
            await().atMost(Duration.ofSeconds(30)).until(() ->
                    stack.store.find(key).map(Entry::version).orElse(0L) == total);
            Optional<Entry> row = stack.store.find(key);
            assertThat(row).map(Entry::value).contains("final");

            List<OplogRow> ops = stack.store.inTransaction(dao -> dao.operationsOfKey(key));
            assertThat(ops).hasSize((int) total);
            for (int v = 0; v < ops.size(); v++) {
                assertThat(ops.get(v).version()).as("version of operation %d of %s", v, key).isEqualTo(v + 1L);
                assertThat(ops.get(v).outcome()).isEqualTo(OperationOutcome.APPLIED);
            }
            int[] lastSeq = {-1, -1};
            for (OplogRow op : ops.subList(0, ops.size() - 1)) {
                Write write = byOperation.get(op.id());
                assertThat(write).as("operation %s was confirmed to a writer", op.id()).isNotNull();
                assertThat(write.seq()).as("writer %d's writes to %s apply in order", write.writer(), key)
                        .isGreaterThan(lastSeq[write.writer()]);
                lastSeq[write.writer()] = write.seq();
            }
            assertThat(lastSeq).containsExactly(WRITES_PER_KEY - 1, WRITES_PER_KEY - 1);
        }
    }
}
