package io.kvmesh.auth;

import com.nimbusds.jose.JOSEObjectType;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSHeader;
import com.nimbusds.jose.crypto.ECDSASigner;
import com.nimbusds.jose.crypto.MACSigner;
import com.nimbusds.jose.jwk.ECKey;
import com.nimbusds.jose.jwk.JWKSet;
import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.PlainJWT;
import com.nimbusds.jwt.SignedJWT;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.Date;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class TokensTest {
    private static final Instant T0 = Instant.parse("2026-11-25T12:00:00Z");
    private final Clock clock = Clock.fixed(T0, ZoneOffset.UTC);

    @TempDir
    Path dir;

    private ECKey keys() throws Exception {
        Tokens.generateKeys(dir);
        return Tokens.readSigningKey(dir.resolve(Tokens.SIGNING_KEY_FILE));
    }

    private TokenVerifier verifier(Clock at) throws Exception {
        return new TokenVerifier(Tokens.readPublicKeys(dir.resolve(Tokens.PUBLIC_KEYS_FILE)), at);
    }

    @Test
    void generateKeys_writesAPrivateKeyOnlyItsOwnerReads_andAPublicSetWithoutThePrivatePart() throws Exception {
        keys();
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve(Tokens.SIGNING_KEY_FILE))))
                .isEqualTo("rw-------");
        String publicSet = Files.readString(dir.resolve(Tokens.PUBLIC_KEYS_FILE));
        assertThat(publicSet).containsPattern("\"kty\"\\s*:\\s*\"EC\"").doesNotContainPattern("\"d\"\\s*:");
        assertThatThrownBy(() -> Tokens.generateKeys(dir)).hasMessageContaining("exists already");
    }

    @Test
    void aMintedTokenVerifies_withItsSubjectGrantsAndExpiry() throws Exception {
        ECKey key = keys();
        String token = Tokens.mint(key, "alice", List.of(new Grant("app1/", EnumSet.of(Permission.READ,
                Permission.WRITE)), new Grant("shared/", Set.of(Permission.WATCH))), Duration.ofHours(1), clock);
        Principal p = verifier(clock).verify(token);
        assertThat(p.subject()).isEqualTo("alice");
        assertThat(p.expiresAt()).isEqualTo(T0.plus(Duration.ofHours(1)));
        assertThat(p.allowsKey(Permission.WRITE, "app1/x")).isTrue();
        assertThat(p.allowsKey(Permission.WRITE, "app2/x")).isFalse();
        assertThat(p.allowsKey(Permission.WATCH, "app1/x")).isFalse();
        assertThat(p.allowsPrefix(Permission.WATCH, "shared/")).isTrue();
    }

    @Test
    void anExpiredToken_isRefused_evenWhenItWasVerifiedBefore() throws Exception {
        ECKey key = keys();
        String token = Tokens.mint(key, "bob", List.of(new Grant("", Set.of(Permission.READ))),
                Duration.ofMinutes(5), clock);
        TokenVerifier movingClock = verifier(clock);
        assertThat(movingClock.verify(token).subject()).isEqualTo("bob");
        TokenVerifier later = verifier(Clock.fixed(T0.plus(Duration.ofMinutes(10)), ZoneOffset.UTC));
        assertThatThrownBy(() -> later.verify(token)).isInstanceOf(AuthFailure.class).hasMessageContaining("xpired");
    }

    @Test
    void aTokenSignedWithAnotherKey_isRefused() throws Exception {
        keys();
        Path other = dir.resolve("other");
        Tokens.generateKeys(other);
        String forged = Tokens.mint(Tokens.readSigningKey(other.resolve(Tokens.SIGNING_KEY_FILE)), "mallory",
                List.of(new Grant("", EnumSet.allOf(Permission.class))), Duration.ofHours(1), clock);
        assertThatThrownBy(() -> verifier(clock).verify(forged)).isInstanceOf(AuthFailure.class);
    }

    @Test
    void unsignedHmacMalformedOrWronglyAddressedTokens_areRefused() throws Exception {
        ECKey key = keys();
        JWTClaimsSet good = claims("kvmesh", "kvmesh");
        String unsigned = new PlainJWT(good).serialize();
        SignedJWT hmac = new SignedJWT(new JWSHeader(JWSAlgorithm.HS256), good);
        hmac.sign(new MACSigner(new byte[32]));
        TokenVerifier v = verifier(clock);
        for (String bad : List.of(unsigned, hmac.serialize(), "not-a-token", "a.b.c",
                sign(key, claims("someone-else", "kvmesh")), sign(key, claims("kvmesh", "another-service")))) {
            assertThatThrownBy(() -> v.verify(bad)).as(bad).isInstanceOf(AuthFailure.class);
        }
        assertThatThrownBy(() -> v.verify("")).hasMessageContaining("Authorization: Bearer");
        assertThat(v.verify(sign(key, good)).subject()).isEqualTo("carol");
    }

    @Test
    void aTokenWithoutUsableGrants_isRefused() throws Exception {
        ECKey key = keys();
        TokenVerifier v = verifier(clock);
        for (Object grants : List.of(List.of(), List.of(Map.of("prefix", "a/")), "everything",
                List.of(Map.of("prefix", "a/", "permissions", List.of("admin"))))) {
            JWTClaimsSet c = new JWTClaimsSet.Builder(claims("kvmesh", "kvmesh")).claim(Tokens.GRANTS_CLAIM, grants)
                    .build();
            assertThatThrownBy(() -> v.verify(sign(key, c))).as(String.valueOf(grants)).isInstanceOf(AuthFailure.class);
        }
    }

    @ParameterizedTest(name = "grant {0} [{1}]: {2} on ''{3}'' as key -> {4}, as prefix -> {5}")
    @CsvSource(delimiter = '|', value = {
            "app1/ | read,write | write | app1/x     | true  | true",
            "app1/ | read,write | write | app2/x     | false | false",
            "app1/ | read       | write | app1/x     | false | false",
            "app1/ | read       | read  | app1/      | true  | true",
            "app1/ | read       | read  | app1       | false | false",
            "app1/ | read       | read  | ''         | false | false",
            "app1/ | watch      | watch | app1/sub/  | true  | true",
            "''    | all        | watch | ''         | true  | true",
            "''    | rw         | watch | x          | false | false",
    })
    void grantsCoverKeysAndPrefixesInsideThem(String prefix, String perms, String asked, String key, boolean asKey,
                                              boolean asPrefix) {
        Principal p = new Principal("t", List.of(new Grant(prefix, Permission.parseList(perms))), T0);
        Permission permission = Permission.valueOf(asked.toUpperCase());
        assertThat(p.allowsKey(permission, key)).isEqualTo(asKey);
        assertThat(p.allowsPrefix(permission, key)).isEqualTo(asPrefix);
    }

    @Test
    void permissionLists_parseNamesAndShorthands_andRefuseUnknownOnes() {
        assertThat(Permission.parseList("read, watch")).containsExactlyInAnyOrder(Permission.READ, Permission.WATCH);
        assertThat(Permission.parseList("rw")).containsExactlyInAnyOrder(Permission.READ, Permission.WRITE);
        assertThat(Permission.parseList("all")).containsExactlyInAnyOrder(Permission.values());
        assertThatThrownBy(() -> Permission.parseList("admin")).hasMessageContaining("unknown permission 'admin'");
    }

    private static JWTClaimsSet claims(String issuer, String audience) {
        return new JWTClaimsSet.Builder().issuer(issuer).audience(audience).subject("carol")
                .issueTime(Date.from(T0)).expirationTime(Date.from(T0.plusSeconds(3600)))
                .claim(Tokens.GRANTS_CLAIM, List.of(Map.of("prefix", "", "permissions", List.of("read"))))
                .build();
    }

    private static String sign(ECKey key, JWTClaimsSet claims) throws Exception {
        SignedJWT jwt = new SignedJWT(new JWSHeader.Builder(JWSAlgorithm.ES256).type(JOSEObjectType.JWT)
                .keyID(key.getKeyID()).build(), claims);
        jwt.sign(new ECDSASigner(key));
        return jwt.serialize();
    }
}
