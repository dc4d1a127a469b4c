package io.kvmesh.core.queue;

import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import io.kvmesh.core.config.AmqpConfig;

import java.io.IOException;
import java.util.concurrent.TimeoutException;

/** Opens broker connections from the configuration; recovery is done by the callers, who know what to redo. */
public final class AmqpConnections {
    private final ConnectionFactory factory;

    public AmqpConnections(AmqpConfig config) {
        factory = new ConnectionFactory();
        try {
            factory.setUri(config.uri());
        } catch (Exception e) {
            throw new IllegalArgumentException("KVMESH_AMQP_URI is not a valid amqp:// URI", e);
        }
        factory.setAutomaticRecoveryEnabled(false);
        factory.setTopologyRecoveryEnabled(false);
        factory.setConnectionTimeout(2_000);
        factory.setHandshakeTimeout(5_000);
        factory.setRequestedHeartbeat(10);
    }

    public Connection open(String name) throws IOException {
        try {
            return factory.newConnection(name);
        } catch (TimeoutException e) {
            throw new IOException("timed out connecting to the broker", e);
        }
    }
}
