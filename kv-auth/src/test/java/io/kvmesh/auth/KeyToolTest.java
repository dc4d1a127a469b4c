package io.kvmesh.auth;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class KeyToolTest {
    @Test
    void init_makesTheKeyOnce_andPublishesOnlyThePublicSet_thenMintMakesAVerifiableToken(@TempDir Path dir)
            throws Exception {
        Path priv = dir.resolve("private");
        Path pub = dir.resolve("public");
        assertThat(KeyTool.run(new String[] {"init", priv.toString(), pub.toString()})).isZero();
        String key = Files.readString(priv.resolve(Tokens.SIGNING_KEY_FILE));
        assertThat(KeyTool.run(new String[] {"init", priv.toString(), pub.toString()})).isZero();
        assertThat(Files.readString(priv.resolve(Tokens.SIGNING_KEY_FILE))).as("kept, not replaced").isEqualTo(key);
        assertThat(Files.list(pub)).containsExactly(pub.resolve(Tokens.PUBLIC_KEYS_FILE));

        PrintStream stdout = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        try {
            KeyTool.run(new String[] {"mint", priv.toString(), "--prefix", "app1/", "--permissions", "rw", "--ttl",
                    "2h", "--subject", "svc"});
        } finally {
            System.setOut(stdout);
        }
        Principal p = new TokenVerifier(Tokens.readPublicKeys(pub.resolve(Tokens.PUBLIC_KEYS_FILE)), Clock.systemUTC())
                .verify(out.toString(StandardCharsets.UTF_8).trim());
        assertThat(p.subject()).isEqualTo("svc");
        assertThat(p.allowsKey(Permission.WRITE, "app1/a")).isTrue();
        assertThatThrownBy(() -> KeyTool.run(new String[] {"mint", priv.toString()}))
                .hasMessageContaining("--prefix");
        assertThat(KeyTool.duration("30d")).isEqualTo(Duration.ofDays(30));
        assertThatThrownBy(() -> KeyTool.duration("soon")).hasMessageContaining("not 'soon'");
    }
}
