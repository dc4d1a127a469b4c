package io.kvmesh.core.queue;

import com.rabbitmq.client.Address;
import com.rabbitmq.client.Connection;
import com.rabbitmq.client.ConnectionFactory;
import io.kvmesh.core.config.AmqpConfig;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeoutException;

/**
 * Opens broker connections from the configuration; recovery is done by the callers, who know what to redo.
 * With several node addresses (a cluster, {@code KVMESH_AMQP_ADDRESSES}) every open tries them in a fresh shuffled
 * order and connects to the first that answers, so a caller that reconnects after losing its node fails over to
 * another one, and the clients spread over the nodes.
 */
public final class AmqpConnections {
    private final ConnectionFactory factory;
    private final List<Address> addresses;

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
        addresses = new ArrayList<>();
        for (String a : config.addresses()) {
            addresses.add(Address.parseAddress(a));
        }
    }

    /** The node addresses this factory tries (empty: the URI's host only). */
    public List<Address> addresses() {
        return List.copyOf(addresses);
    }

    public Connection open(String name) throws IOException {
        try {
            if (addresses.isEmpty()) {
                return factory.newConnection(name);
            }
            List<Address> order = new ArrayList<>(addresses);
            Collections.shuffle(order);
            return factory.newConnection(order, name);
        } catch (TimeoutException e) {
            throw new IOException("timed out connecting to the broker", e);
        }
    }
}
