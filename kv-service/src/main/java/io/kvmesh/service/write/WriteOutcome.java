package io.kvmesh.service.write;

/** How a write answered: "queued" (version 0) or "applied" (with the key's version after it). */
public record WriteOutcome(String status, String operationId, long version) {
    public static final String QUEUED = "queued";
    public static final String APPLIED = "applied";
}
