//! Access tokens (JWT, HS256 only, PROTOCOL §4.3), opaque refresh tokens (stored only as
//! hashes), and the prelogin key behind the fake salts of unknown emails.

use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use sealpost_crypto::b64;

/// Seconds of clock skew tolerated on `exp`.
pub(crate) const LEEWAY_SECS: i64 = 5;

/// The claims of an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    /// When the token stops being accepted, in Unix seconds: `exp` and the leeway, saturating so
    /// that no `exp`, however large, overflows.
    pub fn valid_until(&self) -> i64 {
        self.exp.saturating_add(LEEWAY_SECS)
    }
}

/// The HMAC key that signs access tokens. Never printed.
pub struct JwtKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKey(<redacted>)")
    }
}

/// The server secret behind the fake `prelogin` salts of unknown emails.
pub struct PreloginKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for PreloginKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PreloginKey(<redacted>)")
    }
}

impl PreloginKey {
    pub fn new(secret: Vec<u8>) -> Self {
        PreloginKey(Zeroizing::new(secret))
    }

    /// A stable salt for an email: HMAC-SHA256(secret, email), first 16 bytes.
    pub fn fake_salt(&self, email: &str) -> Vec<u8> {
        let mut mac = hmac_sha256(&self.0);
        mac.update(b"sealpost/v1/prelogin-salt\0");
        mac.update(email.as_bytes());
        mac.finalize().into_bytes()[..16].to_vec()
    }
}

/// HMAC-SHA256 keyed with `key`.
fn hmac_sha256(key: &[u8]) -> Hmac<Sha256> {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of every length"),
    }
}

#[derive(Deserialize)]
struct Header<'a> {
    alg: &'a str,
}

impl JwtKey {
    pub fn new(secret: Vec<u8>) -> Self {
        JwtKey(Zeroizing::new(secret))
    }

    fn mac(&self) -> Hmac<Sha256> {
        hmac_sha256(&self.0)
    }

    /// Signs `claims` as a compact JWT.
    pub fn sign(&self, claims: &Claims) -> String {
        // The header is fixed, so its encoding is too.
        const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"; // {"alg":"HS256","typ":"JWT"}
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = format!("{HEADER}.{}", b64::encode(&payload));
        let mut mac = self.mac();
        mac.update(token.as_bytes());
        let sig = mac.finalize().into_bytes();
        token.push('.');
        token.push_str(&b64::encode(&sig));
        token
    }

    /// Verifies a compact JWT: HS256 only, a good signature, not expired. The session behind it
    /// is checked by the caller.
    pub fn verify(&self, token: &str, now: i64) -> Option<Claims> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header = b64::decode(h).ok()?;
        let header: Header<'_> = serde_json::from_slice(&header).ok()?;
        if header.alg != "HS256" {
            return None;
        }
        let sig = b64::decode(s).ok()?;
        let mut mac = self.mac();
        mac.update(&token.as_bytes()[..h.len() + 1 + p.len()]);
        mac.verify_slice(&sig).ok()?;
        let claims: Claims = serde_json::from_slice(&b64::decode(p).ok()?).ok()?;
        if claims.valid_until() <= now {
            return None;
        }
        Some(claims)
    }
}

/// A fresh opaque token (32 random bytes, base64url: a refresh or recovery token) and the hash
/// that is stored instead.
pub fn new_opaque_token() -> (String, Vec<u8>) {
    let mut raw = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(raw.as_mut());
    let token = b64::encode(raw.as_ref());
    let hash = hash_token(&token);
    (token, hash)
}

/// The stored form of an opaque token.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// 32 random bytes, e.g. for a server secret.
pub fn random_secret() -> Vec<u8> {
    let mut raw = vec![0u8; 32];
    OsRng.fill_bytes(&mut raw);
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: Uuid::new_v4(),
            sid: Uuid::new_v4(),
            iat: 0,
            exp,
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let key = JwtKey::new(vec![7; 32]);
        let c = claims(1000);
        let t = key.sign(&c);
        assert_eq!(key.verify(&t, 900), Some(c));
        assert_eq!(key.verify(&t, 1000 + LEEWAY_SECS), None);
        assert_eq!(JwtKey::new(vec![8; 32]).verify(&t, 900), None);
    }

    #[test]
    fn an_exp_near_the_end_of_time_does_not_overflow() {
        let key = JwtKey::new(vec![7; 32]);
        for exp in [i64::MAX, i64::MAX - LEEWAY_SECS + 1] {
            let c = claims(exp);
            assert_eq!(key.verify(&key.sign(&c), i64::MAX - 1), Some(c));
            assert_eq!(c.valid_until(), i64::MAX);
        }
        let c = claims(i64::MIN);
        assert_eq!(key.verify(&key.sign(&c), 0), None);
    }

    #[test]
    fn other_algorithms_and_tampering_are_refused() {
        let key = JwtKey::new(vec![7; 32]);
        let t = key.sign(&claims(1000));
        let (_, rest) = t.split_once('.').unwrap();
        let none = format!("{}.{}", b64::encode(br#"{"alg":"none","typ":"JWT"}"#), rest);
        assert_eq!(key.verify(&none, 900), None);
        let unsigned = format!("{}.", &t[..t.rfind('.').unwrap()]);
        assert_eq!(key.verify(&unsigned, 900), None);
        let mut flipped = t.clone().into_bytes();
        let i = t.find('.').unwrap() + 3;
        flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(key.verify(&String::from_utf8(flipped).unwrap(), 900), None);
    }
}
