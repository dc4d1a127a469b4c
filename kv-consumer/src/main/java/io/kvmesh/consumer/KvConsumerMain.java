package io.kvmesh.consumer;

import io.kvmesh.consumer.apply.AfterCommit;
import io.kvmesh.consumer.config.ConsumerConfig;
import io.kvmesh.core.config.Env;

/** Entry point of a kv-consumer process: create, start, stop on SIGTERM. */
public final class KvConsumerMain {
    private KvConsumerMain() {
    }

    public static void main(String[] args) throws InterruptedException {
        KvConsumer consumer = KvConsumer.create(ConsumerConfig.from(Env.system()), AfterCommit.NONE);
        Runtime.getRuntime().addShutdownHook(new Thread(consumer::stop, "kv-consumer-shutdown"));
        consumer.start().blockUntilShutdown();
    }
}
