package io.kvmesh.service.read;

import io.kvmesh.core.model.Entry;

import java.util.List;

/** One page of a listing; {@code nextPageToken} is empty on the last page. */
public record Page(List<Entry> entries, String nextPageToken) {
}
