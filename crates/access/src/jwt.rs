//! HS256 JSON Web Tokens, hand-rolled on `hmac` + `sha2`.
//!
//! Why not a JWT crate: the ones that build for wasm32-wasip2 bring
//! algorithm negotiation we must then switch off. Here the algorithm is
//! pinned: a token verifies only if its header says `"alg":"HS256"` *and*
//! its HMAC-SHA256 over `header.payload` matches (compared in constant
//! time). `alg: none`, `HS384`, `RS256`, a missing `alg`, a `crit` header,
//! padded or non-base64url parts, more or fewer than three parts, and tokens
//! longer than [`MAX_TOKEN_BYTES`] are all refused before the claims are
//! even parsed.
//!
//! Claims are checked after the signature: `exp`, `nbf`, `iat` with
//! [`CLOCK_SKEW_S`] of tolerance, `iss` and `aud` exactly.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use ragspin_core::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::roles::Role;

/// The only algorithm accepted.
pub const ALG: &str = "HS256";
/// Longest token accepted (bytes).
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Tolerated clock difference between issuer and verifier (seconds).
pub const CLOCK_SKEW_S: u64 = 30;

const HEADER_JSON: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// The claims of a ragspin access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer ([`crate::settings::ISSUER`]).
    pub iss: String,
    /// Audience ([`crate::settings::AUDIENCE`]).
    pub aud: String,
    /// Subject: the username.
    pub sub: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Not before (Unix seconds).
    pub nbf: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    /// Token id.
    pub jti: String,
    /// Session id: the KV session this token belongs to.
    pub sid: String,
    /// The subject's roles when the token was issued (informational: the
    /// session record in KV is authoritative).
    pub roles: Vec<Role>,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length")
}

/// Sign `claims` with `key` as an HS256 JWT.
pub fn sign(claims: &Claims, key: &[u8]) -> Result<String> {
    let payload = serde_json::to_vec(claims)
        .map_err(|e| Error::Internal(format!("serialize claims: {e}")))?;
    Ok(sign_raw(HEADER_JSON.as_bytes(), &payload, key))
}

/// Assemble `base64url(header).base64url(payload).base64url(HS256 MAC)`
/// from raw JSON bytes. For tests that need hostile tokens (other `alg`,
/// odd claims); [`sign`] is the normal way.
pub fn sign_raw(header: &[u8], payload: &[u8], key: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut m = mac(key);
    m.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// What a valid token must say besides its signature.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// Required `iss`.
    pub issuer: &'a str,
    /// Required `aud`.
    pub audience: &'a str,
    /// Now (Unix seconds).
    pub now_s: u64,
}

fn unauthorized(message: &str) -> Error {
    Error::Unauthorized(message.to_owned())
}

fn decode_part(part: &str) -> Result<Vec<u8>> {
    // The engine rejects padding and the non-URL alphabet.
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| unauthorized("malformed token"))
}

/// Verify `token` against `key` and `expect`; returns its claims.
///
/// Every failure is a 401 with a short reason that never echoes the token.
pub fn verify(token: &str, key: &[u8], expect: Expect<'_>) -> Result<Claims> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(unauthorized("token too large"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(unauthorized("malformed token"));
    };
    let header: serde_json::Value =
        serde_json::from_slice(&decode_part(h)?).map_err(|_| unauthorized("malformed token"))?;
    let header = header
        .as_object()
        .ok_or_else(|| unauthorized("malformed token"))?;
    if header.get("alg").and_then(|a| a.as_str()) != Some(ALG) {
        return Err(unauthorized("unsupported token algorithm"));
    }
    if header.contains_key("crit")
        || header
            .get("typ")
            .is_some_and(|t| !t.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT")))
    {
        return Err(unauthorized("unsupported token header"));
    }
    let signature = decode_part(s)?;
    let mut m = mac(key);
    m.update(h.as_bytes());
    m.update(b".");
    m.update(p.as_bytes());
    // `verify_slice` compares in constant time.
    m.verify_slice(&signature)
        .map_err(|_| unauthorized("invalid token signature"))?;
    let claims: Claims = serde_json::from_slice(&decode_part(p)?)
        .map_err(|_| unauthorized("malformed token claims"))?;
    if claims.iss != expect.issuer || claims.aud != expect.audience {
        return Err(unauthorized("token issuer or audience mismatch"));
    }
    if claims.exp.saturating_add(CLOCK_SKEW_S) <= expect.now_s {
        return Err(unauthorized("token expired"));
    }
    if claims.nbf > expect.now_s.saturating_add(CLOCK_SKEW_S) {
        return Err(unauthorized("token not yet valid"));
    }
    if claims.iat > expect.now_s.saturating_add(CLOCK_SKEW_S) {
        return Err(unauthorized("token issued in the future"));
    }
    if claims.sub.is_empty() || claims.sid.is_empty() || claims.exp <= claims.iat {
        return Err(unauthorized("malformed token claims"));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_700_000_000;

    fn claims() -> Claims {
        Claims {
            iss: "ragspin".into(),
            aud: "ragspin-api".into(),
            sub: "alice".into(),
            iat: NOW,
            nbf: NOW,
            exp: NOW + 900,
            jti: "j1".into(),
            sid: "s1".into(),
            roles: vec![Role::Reader],
        }
    }

    fn expect(now_s: u64) -> Expect<'static> {
        Expect {
            issuer: "ragspin",
            audience: "ragspin-api",
            now_s,
        }
    }

    fn reason(token: &str, now: u64) -> String {
        match verify(token, KEY, expect(now)) {
            Err(Error::Unauthorized(m)) => m,
            other => panic!("expected 401, got {other:?}"),
        }
    }

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn accepts_a_token_it_signed() {
        let token = sign(&claims(), KEY).unwrap();
        assert_eq!(verify(&token, KEY, expect(NOW + 10)).unwrap(), claims());
    }

    #[test]
    fn matches_a_reference_hs256_signature() {
        // RFC 7515 style check: the MAC of a fixed input is stable.
        let token = sign_raw(br#"{"alg":"HS256","typ":"JWT"}"#, br#"{"sub":"x"}"#, KEY);
        assert!(token.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0."));
        let again = sign_raw(br#"{"alg":"HS256","typ":"JWT"}"#, br#"{"sub":"x"}"#, KEY);
        assert_eq!(token, again);
    }

    #[test]
    fn rejects_a_tampered_payload() {
        let token = sign(&claims(), KEY).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut evil = claims();
        evil.roles = vec![Role::Admin];
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&evil).unwrap());
        assert_eq!(reason(&parts.join("."), NOW), "invalid token signature");
    }

    #[test]
    fn rejects_alg_none_even_without_a_signature() {
        let payload = serde_json::to_string(&claims()).unwrap();
        for token in [
            format!(
                "{}.{}.",
                b64(r#"{"alg":"none","typ":"JWT"}"#),
                b64(&payload)
            ),
            format!("{}.{}.", b64(r#"{"alg":"None"}"#), b64(&payload)),
        ] {
            assert_eq!(reason(&token, NOW), "unsupported token algorithm");
        }
    }

    #[test]
    fn rejects_other_algorithms_even_with_a_valid_hmac() {
        let payload = serde_json::to_vec(&claims()).unwrap();
        for alg in ["HS384", "HS512", "RS256", "hs256"] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
            let token = sign_raw(header.as_bytes(), &payload, KEY);
            assert_eq!(reason(&token, NOW), "unsupported token algorithm", "{alg}");
        }
        let token = sign_raw(br#"{"typ":"JWT"}"#, &payload, KEY);
        assert_eq!(reason(&token, NOW), "unsupported token algorithm");
        let token = sign_raw(br#"{"alg":"HS256","crit":["exp"]}"#, &payload, KEY);
        assert_eq!(reason(&token, NOW), "unsupported token header");
    }

    #[test]
    fn rejects_a_token_signed_with_another_key() {
        let token = sign(&claims(), b"another-key-another-key-another-key!").unwrap();
        assert_eq!(reason(&token, NOW), "invalid token signature");
    }

    #[test]
    fn rejects_expired_tokens_beyond_the_clock_skew() {
        let token = sign(&claims(), KEY).unwrap();
        assert!(verify(&token, KEY, expect(NOW + 900 + CLOCK_SKEW_S - 1)).is_ok());
        assert_eq!(reason(&token, NOW + 900 + CLOCK_SKEW_S), "token expired");
    }

    #[test]
    fn rejects_tokens_not_yet_valid_or_issued_in_the_future() {
        let mut c = claims();
        c.nbf = NOW + 120;
        c.exp = NOW + 1000;
        let token = sign(&c, KEY).unwrap();
        assert_eq!(reason(&token, NOW), "token not yet valid");
        let mut c = claims();
        c.iat = NOW + 120;
        c.exp = NOW + 1000;
        let token = sign(&c, KEY).unwrap();
        assert_eq!(reason(&token, NOW), "token issued in the future");
        // Within the skew is fine.
        let mut c = claims();
        c.nbf = NOW + 20;
        c.iat = NOW + 20;
        assert!(verify(&sign(&c, KEY).unwrap(), KEY, expect(NOW)).is_ok());
    }

    #[test]
    fn rejects_wrong_issuer_or_audience() {
        let mut c = claims();
        c.aud = "someone-else".into();
        assert_eq!(
            reason(&sign(&c, KEY).unwrap(), NOW),
            "token issuer or audience mismatch"
        );
        let mut c = claims();
        c.iss = "evil".into();
        assert_eq!(
            reason(&sign(&c, KEY).unwrap(), NOW),
            "token issuer or audience mismatch"
        );
    }

    #[test]
    fn rejects_malformed_shapes() {
        let good = sign(&claims(), KEY).unwrap();
        let padded = {
            let mut parts: Vec<&str> = good.split('.').collect();
            let sig = format!("{}=", parts[2]);
            parts[2] = &sig;
            parts.join(".")
        };
        let cases = [
            String::new(),
            "abc".into(),
            "a.b".into(),
            format!("{good}.extra"),
            good.replace('.', ".."),
            padded,
            format!("{}.{}.{}", b64("not json"), b64("{}"), "AAAA"),
            format!("{}.{}.{}", b64("[1]"), b64("{}"), "AAAA"),
            "é.é.é".into(),
        ];
        for token in cases {
            let e = verify(&token, KEY, expect(NOW)).unwrap_err();
            assert_eq!(ragspin_core::status_for(&e), 401, "{token:?}");
        }
    }

    #[test]
    fn rejects_oversized_tokens_before_parsing() {
        let token = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(reason(&token, NOW), "token too large");
    }

    #[test]
    fn rejects_claims_with_missing_or_mistyped_fields() {
        let token = sign_raw(
            HEADER_JSON.as_bytes(),
            br#"{"iss":"ragspin","aud":"ragspin-api","sub":"a","iat":1,"nbf":1,"exp":"never","jti":"j","sid":"s","roles":[]}"#,
            KEY,
        );
        assert_eq!(reason(&token, NOW), "malformed token claims");
        let token = sign_raw(HEADER_JSON.as_bytes(), br#"{"sub":"a"}"#, KEY);
        assert_eq!(reason(&token, NOW), "malformed token claims");
    }
}
