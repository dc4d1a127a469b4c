package io.kvmesh.cli;

import io.kvmesh.auth.Grant;
import io.kvmesh.auth.Permission;
import io.kvmesh.auth.Tokens;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code kvctl token keygen|mint}: the stack's signing key, and tokens scoped to key prefixes. Works offline. */
@Command(name = "token", sortOptions = false, usageHelpAutoWidth = true,
        description = "Make the stack's signing key, or mint a token granting read / write / watch on key prefixes.",
        subcommands = {TokenCommand.Keygen.class, TokenCommand.Mint.class})
final class TokenCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getErr());
        return ExitCodes.USAGE;
    }

    @Command(name = "keygen", description = {"Writes a new ES256 signing key into DIR: " + Tokens.SIGNING_KEY_FILE
            + " (private, mode 0600: keep it where only token makers read it) and " + Tokens.PUBLIC_KEYS_FILE
            + " (public: the replicas' KVMESH_AUTH_JWKS_FILE). Refuses to replace an existing key."})
    static final class Keygen implements Callable<Integer> {
        @Option(names = "--dir", required = true, paramLabel = "DIR", description = "folder for the two key files")
        Path dir;
        @Spec
        CommandSpec spec;

        @Override
        public Integer call() throws IOException {
            Tokens.generateKeys(dir);
            PrintWriter out = spec.commandLine().getOut();
            out.println(dir.resolve(Tokens.SIGNING_KEY_FILE));
            out.println(dir.resolve(Tokens.PUBLIC_KEYS_FILE));
            out.flush();
            return ExitCodes.OK;
        }
    }

    @Command(name = "mint", sortOptions = false, description = {
            "Prints a token (a signed JWT) granting PERMISSIONS on every key under each --prefix.",
            "Example: kvctl token mint --key .run/secrets/" + Tokens.SIGNING_KEY_FILE
                    + " --prefix app1/ --permissions read,write --ttl 30d --subject app1-backend"})
    static final class Mint implements Callable<Integer> {
        @Option(names = "--key", required = true, paramLabel = "FILE",
                description = "the signing key (" + Tokens.SIGNING_KEY_FILE + " from keygen; ./start.sh keeps it in"
                        + " its run folder's secrets/)")
        Path key;
        @Option(names = "--prefix", required = true, paramLabel = "PREFIX",
                description = "key prefix granted (repeatable; \"\" is every key)")
        List<String> prefixes = new ArrayList<>();
        @Option(names = "--permissions", paramLabel = "LIST", defaultValue = "read",
                description = "read, write, watch, comma-separated; rw = read,write; all = all three."
                        + " Default: ${DEFAULT-VALUE}")
        String permissions;
        @Option(names = "--ttl", paramLabel = "DURATION", defaultValue = "24h", converter = Durations.class,
                description = "how long the token is valid (there is no revocation: keep it short). Default:"
                        + " ${DEFAULT-VALUE}")
        Duration ttl;
        @Option(names = "--subject", paramLabel = "NAME", defaultValue = "kvctl",
                description = "who the token is for (shown in refusals and logs). Default: ${DEFAULT-VALUE}")
        String subject;
        @ParentCommand
        TokenCommand parent;
        @Spec
        CommandSpec spec;

        @Override
        public Integer call() throws IOException {
            List<Grant> grants = new ArrayList<>();
            try {
                var perms = Permission.parseList(permissions);
                for (String p : prefixes) {
                    grants.add(new Grant(p, perms));
                }
            } catch (IllegalArgumentException e) {
                spec.commandLine().getErr().println("kvctl: " + e.getMessage());
                spec.commandLine().getErr().flush();
                return ExitCodes.USAGE;
            }
            PrintWriter out = spec.commandLine().getOut();
            out.println(Tokens.mint(Tokens.readSigningKey(key), subject, grants, ttl, Clock.systemUTC()));
            out.flush();
            return ExitCodes.OK;
        }
    }
}
