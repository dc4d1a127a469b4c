package io.kvmesh.consumer;

import io.kvmesh.consumer.apply.AfterCommit;
import io.kvmesh.consumer.config.ConsumerConfig;
import io.kvmesh.core.admin.AdminHttpServer;
import io.kvmesh.consumer.http.ConsumerHealth;
import io.kvmesh.core.config.Env;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.util.concurrent.CountDownLatch;

/** Entry point of a kv-consumer process: its HTTP endpoint (health), then the consumer. */
public final class KvConsumerMain {
    private static final Logger log = LoggerFactory.getLogger(KvConsumerMain.class);

    private KvConsumerMain() {
    }

    public static void main(String[] args) throws IOException, InterruptedException {
        ConsumerConfig config = ConsumerConfig.from(Env.system());
        ConsumerHealth health = new ConsumerHealth();
        // bound first, so a port already in use fails the process at once; it answers 503 "starting" meanwhile
        AdminHttpServer http = AdminHttpServer.start(config.httpBind(), config.httpPort(), health);
        log.info("health endpoint on http://{}:{}/healthz", http.address().getHostString(), http.address().getPort());
        KvConsumer consumer = KvConsumer.create(config, AfterCommit.NONE).start();
        health.watch(consumer);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            http.close();
            consumer.close();
            stopped.countDown();
        }, "kv-consumer-shutdown"));
        stopped.await();
    }
}
