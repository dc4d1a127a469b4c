package io.kvmesh.auth;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;
import com.nimbusds.jose.JOSEException;
import com.nimbusds.jose.JOSEObjectType;
import com.nimbusds.jose.JWSAlgorithm;
import com.nimbusds.jose.jwk.JWKSet;
import com.nimbusds.jose.jwk.source.ImmutableJWKSet;
import com.nimbusds.jose.proc.BadJOSEException;
import com.nimbusds.jose.proc.DefaultJOSEObjectTypeVerifier;
import com.nimbusds.jose.proc.JWSVerificationKeySelector;
import com.nimbusds.jose.proc.SecurityContext;
import com.nimbusds.jwt.JWTClaimsSet;
import com.nimbusds.jwt.proc.BadJWTException;
import com.nimbusds.jwt.proc.DefaultJWTClaimsVerifier;
import com.nimbusds.jwt.proc.DefaultJWTProcessor;

import java.text.ParseException;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Checks a token against the stack's public keys (signature, ES256 only, issuer and audience "kvmesh", not
 * expired) and reads its grants. A token seen before is not verified again until it expires: signatures are checked
 * once per token, not once per request (a bounded cache of recent tokens).
 */
public final class TokenVerifier {
    /** Tokens whose result is remembered; a client normally uses one token for many requests. */
    private static final int CACHE_SIZE = 10_000;

    private final DefaultJWTProcessor<SecurityContext> processor;
    private final Clock clock;
    private final Cache<String, Principal> verified;

    public TokenVerifier(JWKSet publicKeys, Clock clock) {
        this.clock = clock;
        this.processor = new DefaultJWTProcessor<>();
        processor.setJWSTypeVerifier(new DefaultJOSEObjectTypeVerifier<>(JOSEObjectType.JWT, null));
        processor.setJWSKeySelector(new JWSVerificationKeySelector<>(JWSAlgorithm.ES256,
                new ImmutableJWKSet<>(publicKeys.toPublicJWKSet())));
        DefaultJWTClaimsVerifier<SecurityContext> claims = new DefaultJWTClaimsVerifier<>(Tokens.AUDIENCE,
                new JWTClaimsSet.Builder().issuer(Tokens.ISSUER).build(),
                Set.of("sub", "exp", "iat", Tokens.GRANTS_CLAIM)) {
            @Override
            protected java.util.Date currentTime() {
                return java.util.Date.from(TokenVerifier.this.clock.instant());
            }
        };
        claims.setMaxClockSkew(30);
        processor.setJWTClaimsSetVerifier(claims);
        this.verified = Caffeine.newBuilder().maximumSize(CACHE_SIZE).expireAfterWrite(Duration.ofMinutes(10)).build();
    }

    /** The principal a bearer token speaks for, or why it is refused. */
    public Principal verify(String token) throws AuthFailure {
        if (token == null || token.isBlank()) {
            throw new AuthFailure("no token: send 'Authorization: Bearer <token>' (mint one with 'kvctl token mint')");
        }
        Principal known = verified.getIfPresent(token);
        if (known != null) {
            if (known.expiresAt().isAfter(clock.instant())) {
                return known;
            }
            verified.invalidate(token);
            throw new AuthFailure("token expired at " + known.expiresAt());
        }
        JWTClaimsSet claims;
        try {
            claims = processor.process(token, null);
        } catch (ParseException e) {
            throw new AuthFailure("malformed token: " + e.getMessage());
        } catch (BadJWTException e) {
            throw new AuthFailure("token refused: " + e.getMessage());
        } catch (BadJOSEException e) {
            throw new AuthFailure("token refused: signature or algorithm not accepted (" + e.getMessage() + ")");
        } catch (JOSEException e) {
            throw new AuthFailure("token cannot be checked: " + e.getMessage());
        }
        Principal principal = new Principal(claims.getSubject(), grants(claims),
                claims.getExpirationTime().toInstant());
        verified.put(token, principal);
        return principal;
    }

    private static List<Grant> grants(JWTClaimsSet claims) throws AuthFailure {
        Object raw = claims.getClaim(Tokens.GRANTS_CLAIM);
        if (!(raw instanceof List<?> list) || list.isEmpty()) {
            throw new AuthFailure("token refused: 'grants' must be a non-empty list");
        }
        List<Grant> out = new ArrayList<>();
        for (Object o : list) {
            if (!(o instanceof Map<?, ?> m) || !(m.get("prefix") instanceof String prefix)
                    || !(m.get("permissions") instanceof List<?> perms) || perms.isEmpty()) {
                throw new AuthFailure("token refused: each grant needs 'prefix' and 'permissions'");
            }
            Set<Permission> set = EnumSet.noneOf(Permission.class);
            for (Object p : perms) {
                try {
                    set.addAll(Permission.parseList(String.valueOf(p)));
                } catch (IllegalArgumentException e) {
                    throw new AuthFailure("token refused: " + e.getMessage());
                }
            }
            out.add(new Grant(prefix, set));
        }
        return out;
    }
}
