package io.kvmesh.consumer;

import io.kvmesh.consumer.apply.AfterCommit;
import io.kvmesh.consumer.config.ConsumerConfig;
import io.kvmesh.core.config.Env;

import java.util.concurrent.CountDownLatch;

/** Entry point of a kv-consumer process. */
public final class KvConsumerMain {
    private KvConsumerMain() {
    }

    public static void main(String[] args) throws InterruptedException {
        KvConsumer consumer = KvConsumer.create(ConsumerConfig.from(Env.system()), AfterCommit.NONE).start();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            consumer.close();
            stopped.countDown();
        }, "kv-consumer-shutdown"));
        stopped.await();
    }
}
