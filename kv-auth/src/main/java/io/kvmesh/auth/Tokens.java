package io.kvmesh.auth;

import com.nimbusds.jose.JOSEException;
import com.nimbusds.jose.JOSEObjectType;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.JWSHeader;
import com.nimbusds.jose.crypto.ECDSASigner;
import com.nimbusds.jose.jwk.Curve;
import com.nimbusds.jose.jwk.ECKey;
import com.nimbusds.jose.jwk.JWKSet;
import com.nimbusds.jose.jwk.KeyUse;
import com.nimbusds.jose.jwk.gen.ECKeyGenerator;
import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.SignedJWT;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.text.ParseException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * kvmesh's API tokens: JWTs signed with ES256 (ECDSA P-256). The stack keeps one signing key (a JWK with its
 * private part, readable only by its owner) and gives the replicas only the public JWK set, so a replica can check
 * tokens but never make one. Claims: {@code iss} and {@code aud} "kvmesh", {@code sub}, {@code iat}, {@code exp},
 * {@code jti}, and {@code grants}: {@code [{"prefix":"app1/","permissions":["read","write"]}, …]}.
 */
public final class Tokens {
    public static final String ISSUER = "kvmesh";
    public static final String AUDIENCE = "kvmesh";
    public static final String GRANTS_CLAIM = "grants";
    /** The signing key file (private; mode 0600) and the public key set file the replicas read. */
    public static final String SIGNING_KEY_FILE = "auth-signing-key.jwk";
    public static final String PUBLIC_KEYS_FILE = "auth-jwks.json";

    private Tokens() {
    }

    /**
     * Makes a new signing key in {@code dir}: {@value #SIGNING_KEY_FILE} (private, 0600) and {@value
     * #PUBLIC_KEYS_FILE} (public). Refuses to overwrite an existing key (tokens made with it would stop working).
     */
    public static void generateKeys(Path dir) throws IOException {
        Path privateFile = dir.resolve(SIGNING_KEY_FILE);
        if (Files.exists(privateFile)) {
            throw new IOException(privateFile + " exists already; delete it first to replace the key"
                    + " (every token signed with it stops working)");
        }
        ECKey key;
        try {
            key = new ECKeyGenerator(Curve.P_256).keyUse(KeyUse.SIGNATURE).algorithm(JWSAlgorithm.ES256)
                    .keyIDFromThumbprint(true).generate();
        } catch (JOSEException e) {
            throw new IOException("cannot generate a P-256 key: " + e.getMessage(), e);
        }
        Files.createDirectories(dir);
        Files.deleteIfExists(dir.resolve(SIGNING_KEY_FILE + ".tmp"));
        Path tmp = Files.createFile(dir.resolve(SIGNING_KEY_FILE + ".tmp"),
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        Files.writeString(tmp, key.toJSONString() + "\n", StandardCharsets.UTF_8);
        Files.writeString(dir.resolve(PUBLIC_KEYS_FILE),
                new JWKSet(key.toPublicJWK()).toString(true) + "\n", StandardCharsets.UTF_8);
        Files.move(tmp, privateFile);
    }

    /** Reads a signing key written by {@link #generateKeys}. */
    public static ECKey readSigningKey(Path file) throws IOException {
        try {
            ECKey key = ECKey.parse(Files.readString(file, StandardCharsets.UTF_8));
            if (!key.isPrivate()) {
                throw new IOException(file + " holds a public key only; tokens are signed with the private key");
            }
            return key;
        } catch (ParseException e) {
            throw new IOException(file + " is not an EC JWK: " + e.getMessage(), e);
        }
    }

    /** Reads the public key set the replicas verify with. */
    public static JWKSet readPublicKeys(Path file) throws IOException {
        try {
            return JWKSet.load(file.toFile()).toPublicJWKSet();
        } catch (ParseException e) {
            throw new IOException(file + " is not a JWK set: " + e.getMessage(), e);
        }
    }

    /** A signed token for {@code subject} with {@code grants}, valid for {@code ttl} from now. */
    public static String mint(ECKey signingKey, String subject, List<Grant> grants, Duration ttl, Clock clock) {
        if (grants.isEmpty()) {
            throw new IllegalArgumentException("a token needs at least one grant");
        }
        if (ttl.isNegative() || ttl.isZero()) {
            throw new IllegalArgumentException("a token's lifetime must be positive");
        }
        Instant now = clock.instant();
        List<Object> grantClaims = new ArrayList<>();
        for (Grant g : grants) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("prefix", g.prefix());
            m.put("permissions", g.permissions().stream().sorted().map(Permission::claimName).toList());
            grantClaims.add(m);
        }
        JWTClaimsSet claims = new JWTClaimsSet.Builder()
                .issuer(ISSUER).audience(AUDIENCE).subject(subject)
                .issueTime(Date.from(now)).expirationTime(Date.from(now.plus(ttl)))
                .jwtID(UUID.randomUUID().toString())
                .claim(GRANTS_CLAIM, grantClaims)
                .build();
        SignedJWT jwt = new SignedJWT(new JWSHeader.Builder(JWSAlgorithm.ES256).type(JOSEObjectType.JWT)
                .keyID(signingKey.getKeyID()).build(), claims);
        try {
            jwt.sign(new ECDSASigner(signingKey));
        } catch (JOSEException e) {
            throw new IllegalStateException("cannot sign: " + e.getMessage(), e);
        }
        return jwt.serialize();
    }
}
