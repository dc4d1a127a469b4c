package io.kvmesh.core.queue;

import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32C;

/** The one partition function: a key always maps to the same partition queue, in every process and release. */
public final class Partitioner {
    private final int partitions;

    public Partitioner(int partitions) {
        if (partitions < 1) {
            throw new IllegalArgumentException("partitions must be at least 1");
        }
        this.partitions = partitions;
    }

    public int partitions() {
        return partitions;
    }

    public int partitionOf(String key) {
        CRC32C crc = new CRC32C();
        crc.update(key.getBytes(StandardCharsets.UTF_8));
        return (int) (crc.getValue() % partitions);
    }
}
