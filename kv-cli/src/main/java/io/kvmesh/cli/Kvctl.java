package io.kvmesh.cli;

import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.MetadataUtils;
import io.kvmesh.api.v1.KeyValueGrpc;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ScopeType;
import picocli.CommandLine.Spec;

import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/** kvctl, the command line of kvmesh: the root command, its global options and the gRPC channel its subcommands share. */
@Command(name = "kvctl",
        mixinStandardHelpOptions = true,
        versionProvider = Kvctl.Version.class,
        sortOptions = false,
        usageHelpAutoWidth = true,
        description = "Command line client of kvmesh: talks gRPC to the KeyValue service (Envoy's listener).",
        subcommands = {PutCommand.class, GetCommand.class, DelCommand.class, LsCommand.class, WatchCommand.class,
                OpCommand.class, LoadCommand.class, TokenCommand.class, CommandLine.HelpCommand.class},
        footerHeading = "%nExit codes:%n",
        footer = {
                "  0  ok",
                "  1  not found (key or operation)",
                "  2  usage error (bad arguments; INVALID_ARGUMENT)",
                "  6  not allowed (no valid token: UNAUTHENTICATED; token does not grant it: PERMISSION_DENIED)",
                "  3  unavailable (no connection; UNAVAILABLE, DEADLINE_EXCEEDED)",
                "  4  conflict (conditional write lost; ABORTED)",
                "  5  other error",
                "",
                "Tables by default; --json prints one JSON document a line",
                "(field names and int64-as-string as in the REST API)."})
public final class Kvctl implements Callable<Integer> {

    @Option(names = "--endpoint", scope = ScopeType.INHERIT, paramLabel = "HOST:PORT",
            description = "gRPC address of the service (Envoy's listener). Default: KVMESH_ENDPOINT, else the Envoy port of"
                    + " the stack started from this clone (./start.sh's settings), else KVMESH_ENVOY_PORT (environment,"
                    + " then ./.env), else 127.0.0.1:8080")
    String endpoint;

    @Option(names = "--timeout", scope = ScopeType.INHERIT, paramLabel = "DURATION", defaultValue = "10s",
            converter = Durations.class,
            description = "deadline of each call (30s, 500ms, 1m; watch has none). Default: ${DEFAULT-VALUE}")
    Duration timeout;

    @Option(names = "--token", scope = ScopeType.INHERIT, paramLabel = "TOKEN",
            description = "bearer token for a stack with auth on (mint one with 'kvctl token mint')."
                    + " Default: KVMESH_TOKEN, else the file KVMESH_TOKEN_FILE names")
    String token;

    @Option(names = "--json", scope = ScopeType.INHERIT,
            description = "machine-readable output: one JSON document a line")
    boolean json;

    @Spec
    CommandSpec spec;

    private final Function<String, ManagedChannel> channels;
    private InputStream in = System.in;
    private boolean stderrIsTerminal = System.console() != null;
    private ManagedChannel channel;
    private Map<String, String> environment = System.getenv();
    private Path home = Optional.ofNullable(System.getProperty("kvctl.home")).map(Path::of).orElse(null);

    /** kvctl with real plaintext gRPC channels. */
    public Kvctl() {
        this(Kvctl::plaintextChannel);
    }

    /** kvctl whose channel comes from {@code channels} (endpoint → channel), e.g. an in-process one in tests. */
    public Kvctl(Function<String, ManagedChannel> channels) {
        this.channels = channels;
    }

    public static void main(String[] args) {
        System.exit(new Kvctl().execute(args));
    }

    /** Parses and runs one command line, closes the channel, and returns the exit code. */
    public int execute(String... args) {
        CommandLine cl = commandLine();
        try {
            return cl.execute(args);
        } finally {
            close();
        }
    }

    /** The configured picocli command line (tests set its out and err writers). */
    public CommandLine commandLine() {
        CommandLine cl = new CommandLine(this);
        cl.setExecutionExceptionHandler(this::handle);
        cl.setCaseInsensitiveEnumValuesAllowed(true);
        return cl;
    }

    public Kvctl withInput(InputStream input) {
        this.in = input;
        return this;
    }

    /** The environment and the clone's root (the kvctl script passes -Dkvctl.home) the default endpoint is found from. */
    Kvctl withSettings(Map<String, String> env, Path clone) {
        this.environment = env;
        this.home = clone;
        return this;
    }

    /** The endpoint in use: --endpoint, else {@link DefaultEndpoint}. */
    synchronized String endpoint() {
        if (endpoint == null) {
            endpoint = DefaultEndpoint.resolve(environment, home);
        }
        return endpoint;
    }

    Kvctl withTerminal(boolean terminal) {
        this.stderrIsTerminal = terminal;
        return this;
    }

    @Override
    public Integer call() {
        spec.commandLine().usage(spec.commandLine().getErr());
        return ExitCodes.USAGE;
    }

    // ------------------------------------------------------------------ shared by the subcommands

    InputStream in() {
        return in;
    }

    boolean stderrIsTerminal() {
        return stderrIsTerminal;
    }

    boolean json() {
        return json;
    }

    Duration timeout() {
        return timeout;
    }

    /** The channel to the service; every call on it carries the bearer token, if there is one. */
    synchronized Channel channel() {
        if (channel == null) {
            channel = channels.apply(endpoint());
        }
        String bearer = bearerToken();
        if (bearer == null) {
            return channel;
        }
        Metadata headers = new Metadata();
        headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + bearer);
        return ClientInterceptors.intercept(channel, MetadataUtils.newAttachHeadersInterceptor(headers));
    }

    /** --token, else KVMESH_TOKEN, else the contents of the file KVMESH_TOKEN_FILE names, else none. */
    String bearerToken() {
        if (token != null && !token.isBlank()) {
            return token.trim();
        }
        String fromEnv = environment.get("KVMESH_TOKEN");
        if (fromEnv != null && !fromEnv.isBlank()) {
            return fromEnv.trim();
        }
        String file = environment.get("KVMESH_TOKEN_FILE");
        if (file != null && !file.isBlank()) {
            try {
                return java.nio.file.Files.readString(Path.of(file)).trim();
            } catch (java.io.IOException e) {
                throw new CommandLine.ParameterException(spec.commandLine(),
                        "cannot read KVMESH_TOKEN_FILE " + file + ": " + e.getMessage());
            }
        }
        return null;
    }

    /** A blocking stub whose next call has the --timeout deadline. */
    KeyValueGrpc.KeyValueBlockingStub blocking() {
        return KeyValueGrpc.newBlockingStub(channel()).withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    KeyValueGrpc.KeyValueStub async() {
        return KeyValueGrpc.newStub(channel());
    }

    /** Prints a failed call's status to stderr (as JSON with --json) and returns its exit code. */
    int fail(PrintWriter err, StatusRuntimeException e) {
        String code = e.getStatus().getCode().name();
        String message = e.getStatus().getDescription() == null ? code.toLowerCase(java.util.Locale.ROOT).replace('_', ' ')
                : e.getStatus().getDescription();
        if (e.getStatus().getCode() == io.grpc.Status.Code.UNAVAILABLE && e.getStatus().getCause() != null
                && e.getStatus().getDescription() != null && e.getStatus().getDescription().startsWith("io exception")) {
            message = "cannot reach " + endpoint() + ": " + e.getStatus().getCause().getMessage();
        }
        if (json) {
            err.println(Output.errorJson(code, message));
        } else {
            err.println("kvctl: " + code + ": " + message);
        }
        err.flush();
        return ExitCodes.of(e.getStatus().getCode());
    }

    private int handle(Exception e, CommandLine cl, CommandLine.ParseResult parsed) {
        PrintWriter err = cl.getErr();
        if (e instanceof StatusRuntimeException sre) {
            return fail(err, sre);
        }
        err.println("kvctl: " + e);
        err.flush();
        return ExitCodes.OTHER;
    }

    /** Closes the channel, if one was opened. */
    synchronized void close() {
        if (channel != null) {
            channel.shutdownNow();
            try {
                channel.awaitTermination(2, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            channel = null;
        }
    }

    private static ManagedChannel plaintextChannel(String endpoint) {
        String target = endpoint.replaceFirst("^(?i)(grpc|http)://", "");
        return ManagedChannelBuilder.forTarget(target)
                .usePlaintext()
                .maxInboundMessageSize(64 << 20)
                .userAgent("kvctl")
                .defaultServiceConfig(RETRY_UNAVAILABLE)
                .enableRetry()
                .build();
    }

    /**
     * gRPC's own retry policy: a call that fails UNAVAILABLE (no connection, a replica going away, the broker briefly
     * down) is tried again, up to 3 times with back-off. Safe for writes because every kvctl write carries a request
     * id: a retry of a write whose answer was lost is applied once and answers with the first outcome.
     */
    static final Map<String, ?> RETRY_UNAVAILABLE = Map.of("methodConfig", List.of(Map.of(
            "name", List.of(Map.of("service", KeyValueGrpc.SERVICE_NAME)),
            "retryPolicy", Map.of(
                    "maxAttempts", 3.0,
                    "initialBackoff", "0.2s",
                    "maxBackoff", "1s",
                    "backoffMultiplier", 2.0,
                    "retryableStatusCodes", List.of("UNAVAILABLE")))));

    /** Version from the jar manifest (the Maven project version). */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Kvctl.class.getPackage().getImplementationVersion();
            return new String[] {"kvctl " + (v == null ? "(development build)" : v)};
        }
    }
}
