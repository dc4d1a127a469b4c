package io.kvmesh.cli;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Where kvctl connects when no --endpoint is given: the local stack's Envoy, found the way ./start.sh finds its own
 * settings. In order: KVMESH_ENDPOINT; the Envoy port of the stack started from this clone (its run folder's
 * stack.env: KVMESH_RUN_DIR, else ./.run, else /var/tmp/kvmesh-run-HASH for a clone in a private folder, the newest
 * one written); KVMESH_ENVOY_PORT from the environment, else from ./.env; else 127.0.0.1:8080.
 */
final class DefaultEndpoint {
    static final String FALLBACK = "127.0.0.1:8080";

    private DefaultEndpoint() {
    }

    /** The endpoint for {@code env} (environment variables) and {@code home} (the clone's root; null if unknown). */
    static String resolve(Map<String, String> env, Path home) {
        String explicit = env.get("KVMESH_ENDPOINT");
        if (explicit != null && !explicit.isBlank()) {
            return explicit.trim();
        }
        Map<String, String> dotenv = home == null ? Map.of() : readSettings(home.resolve(".env"));
        Optional<String> stackPort = stackSettings(env, dotenv, home).map(s -> s.get("KVMESH_ENVOY_PORT"));
        if (stackPort.isPresent() && isPort(stackPort.get())) {
            return "127.0.0.1:" + stackPort.get();
        }
        for (String port : new String[] {env.get("KVMESH_ENVOY_PORT"), dotenv.get("KVMESH_ENVOY_PORT")}) {
            if (port != null && isPort(port.trim())) {
                return "127.0.0.1:" + port.trim();
            }
        }
        String fromDotenv = dotenv.get("KVMESH_ENDPOINT");
        return fromDotenv != null && !fromDotenv.isBlank() ? fromDotenv.trim() : FALLBACK;
    }

    /** How {@link #resolve} chose, for --help. */
    static String describe() {
        return "KVMESH_ENDPOINT, else the Envoy port of the stack started from this clone (./start.sh's stack.env),"
                + " else KVMESH_ENVOY_PORT (environment, then ./.env), else " + FALLBACK;
    }

    /** The newest stack.env of the run folders start.sh may have used for this clone. */
    private static Optional<Map<String, String>> stackSettings(Map<String, String> env, Map<String, String> dotenv, Path home) {
        List<Path> runDirs = new ArrayList<>();
        String runDir = env.getOrDefault("KVMESH_RUN_DIR", dotenv.get("KVMESH_RUN_DIR"));
        if (runDir != null && !runDir.isBlank()) {
            runDirs.add(home == null ? Path.of(runDir.trim()) : home.resolve(runDir.trim()));
        } else if (home != null) {
            runDirs.add(home.resolve(".run"));
            runDirs.add(Path.of("/var/tmp/kvmesh-run-" + md5(home.toString()).substring(0, 12)));
        }
        Path newest = null;
        for (Path dir : runDirs) {
            Path f = dir.resolve("stack.env");
            try {
                if (Files.isReadable(f) && (newest == null || Files.getLastModifiedTime(f).compareTo(Files.getLastModifiedTime(newest)) > 0)) {
                    newest = f;
                }
            } catch (IOException e) {
                // unreadable: not a candidate
            }
        }
        return newest == null ? Optional.empty() : Optional.of(readSettings(newest));
    }

    /** KEY=VALUE lines (comments, blank lines and `export ` allowed; quotes around the value dropped), as start.sh reads. */
    static Map<String, String> readSettings(Path file) {
        Map<String, String> out = new HashMap<>();
        List<String> lines;
        try {
            lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return out;
        }
        for (String raw : lines) {
            String line = raw.strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            if (line.startsWith("export ")) {
                line = line.substring(7).strip();
            }
            int eq = line.indexOf('=');
            if (eq <= 0) {
                continue;
            }
            String value = line.substring(eq + 1).strip();
            if (value.length() >= 2 && (value.charAt(0) == '"' || value.charAt(0) == '\'') && value.endsWith(value.substring(0, 1))) {
                value = value.substring(1, value.length() - 1);
            }
            out.put(line.substring(0, eq).strip(), value);
        }
        return out;
    }

    private static boolean isPort(String s) {
        return s.matches("\\d{1,5}") && Integer.parseInt(s) >= 1 && Integer.parseInt(s) <= 65535;
    }

    private static String md5(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("MD5").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
