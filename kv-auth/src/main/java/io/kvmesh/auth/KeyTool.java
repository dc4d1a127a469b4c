package io.kvmesh.auth;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The token tool of the container images (docker-compose.yml's {@code kv-auth-keys} service), where kvctl is not
 * installed. Natively, {@code kvctl token} and {@code ./start.sh token} do the same.
 * <pre>
 *   KeyTool init PRIVATE_DIR PUBLIC_DIR     make the signing key once (kept if present); copy the public key set
 *   KeyTool mint PRIVATE_DIR --prefix P [--prefix Q] [--permissions read,write,watch] [--ttl 24h] [--subject NAME]
 * </pre>
 */
public final class KeyTool {
    private static final Pattern DURATION = Pattern.compile("(\\d+)(s|m|h|d)");

    private KeyTool() {
    }

    public static void main(String[] args) throws IOException {
        try {
            System.exit(run(args));
        } catch (IllegalArgumentException e) {
            System.err.println("KeyTool: " + e.getMessage());
            System.exit(2);
        }
    }

    static int run(String[] args) throws IOException {
        if (args.length >= 3 && args[0].equals("init")) {
            Path privateDir = Path.of(args[1]);
            Path publicDir = Path.of(args[2]);
            if (!Files.exists(privateDir.resolve(Tokens.SIGNING_KEY_FILE))) {
                Tokens.generateKeys(privateDir);
                System.out.println("made a new signing key in " + privateDir);
            }
            Files.createDirectories(publicDir);
            Files.copy(privateDir.resolve(Tokens.PUBLIC_KEYS_FILE), publicDir.resolve(Tokens.PUBLIC_KEYS_FILE),
                    java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            return 0;
        }
        if (args.length >= 2 && args[0].equals("mint")) {
            List<String> prefixes = new ArrayList<>();
            Set<Permission> permissions = Permission.parseList("read");
            Duration ttl = Duration.ofHours(24);
            String subject = "keytool";
            for (int i = 2; i < args.length; i += 2) {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException(args[i] + " needs a value");
                }
                String v = args[i + 1];
                switch (args[i]) {
                    case "--prefix" -> prefixes.add(v);
                    case "--permissions" -> permissions = Permission.parseList(v);
                    case "--ttl" -> ttl = duration(v);
                    case "--subject" -> subject = v;
                    default -> throw new IllegalArgumentException("unknown option " + args[i]);
                }
            }
            if (prefixes.isEmpty()) {
                throw new IllegalArgumentException("mint needs at least one --prefix (\"\" for every key)");
            }
            List<Grant> grants = new ArrayList<>();
            for (String p : prefixes) {
                grants.add(new Grant(p, permissions));
            }
            System.out.println(Tokens.mint(Tokens.readSigningKey(Path.of(args[1]).resolve(Tokens.SIGNING_KEY_FILE)),
                    subject, grants, ttl, Clock.systemUTC()));
            return 0;
        }
        throw new IllegalArgumentException("usage: KeyTool init PRIVATE_DIR PUBLIC_DIR | KeyTool mint PRIVATE_DIR"
                + " --prefix P [--permissions read,write,watch] [--ttl 24h] [--subject NAME]");
    }

    static Duration duration(String text) {
        Matcher m = DURATION.matcher(text.trim().toLowerCase(Locale.ROOT));
        if (!m.matches()) {
            throw new IllegalArgumentException("a duration is a number and s, m, h or d (30d, 24h), not '" + text + "'");
        }
        long n = Long.parseLong(m.group(1));
        return switch (m.group(2)) {
            case "s" -> Duration.ofSeconds(n);
            case "m" -> Duration.ofMinutes(n);
            case "h" -> Duration.ofHours(n);
            default -> Duration.ofDays(n);
        };
    }
}
