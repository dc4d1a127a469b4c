package io.kvmesh.auth;

/** A token that is missing, malformed, wrongly signed, expired or not meant for kvmesh. The message says which. */
public final class AuthFailure extends Exception {
    public AuthFailure(String message) {
        super(message, null, false, false);
    }
}
