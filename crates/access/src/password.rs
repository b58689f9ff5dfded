//! Password hashing: Argon2id in PHC string format.
//!
//! Parameters ([`PARAMS`]): m = 19 MiB, t = 2, p = 1 — the OWASP minimum for
//! Argon2id. The cost in wasm is measured through the host (README,
//! "Measured"). Verification takes the parameters from the stored hash but
//! refuses ones far beyond ours ([`MAX_MEMORY_KIB`], [`MAX_ITERATIONS`]), so a
//! mistyped `admin_password_hash` cannot make every login allocate gigabytes.
//!
//! Unknown usernames are verified against [`DUMMY_HASH`] so a failed login
//! costs the same whether or not the user exists.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ragspin_core::{Error, Result};

use crate::random::{Random, bytes};

/// Memory cost (KiB).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Iterations.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;
/// Largest memory cost accepted when verifying (KiB).
pub const MAX_MEMORY_KIB: u32 = 64 * 1024;
/// Largest iteration count accepted when verifying.
pub const MAX_ITERATIONS: u32 = 10;
/// Shortest password accepted for new users.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted anywhere (bytes).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The parameters new hashes use.
pub const PARAMS: (u32, u32, u32) = (MEMORY_KIB, ITERATIONS, PARALLELISM);

/// A hash of a random password nobody knows, with [`PARAMS`]; verifying
/// against it always fails and costs what a real verification costs.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$AAECAwQFBgcICQoLDA0ODw$gnWBFfKjrfA7ZJm1j4fpY/8dk1m6Ecrb1LqUXoSpeUY";

fn argon2(m: u32, t: u32, p: u32) -> Result<Argon2<'static>> {
    let params = Params::new(m, t, p, None)
        .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hash `password` with a fresh 16-byte salt: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
pub fn hash_password(password: &str, random: &impl Random) -> Result<String> {
    let salt = SaltString::encode_b64(&bytes(random, 16)?)
        .map_err(|e| Error::Internal(format!("salt: {e}")))?;
    let (m, t, p) = PARAMS;
    let hash = argon2(m, t, p)?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::Internal(format!("hash password: {e}")))?;
    Ok(hash.to_string())
}

/// Whether `phc` is an Argon2id hash this module would verify.
pub fn is_supported_hash(phc: &str) -> bool {
    parse(phc).is_some()
}

fn parse(phc: &str) -> Option<(PasswordHash<'_>, u32, u32, u32)> {
    let hash = PasswordHash::new(phc).ok()?;
    if hash.algorithm.as_str() != "argon2id" {
        return None;
    }
    let params = Params::try_from(&hash).ok()?;
    let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
    (m <= MAX_MEMORY_KIB && t <= MAX_ITERATIONS && p <= 4 && hash.hash.is_some())
        .then_some((hash, m, t, p))
}

/// Whether `password` matches `phc`. A malformed or unsupported hash is
/// `false` (after a dummy verification, so it costs the same).
pub fn verify_password(password: &str, phc: &str) -> bool {
    match parse(phc) {
        Some((hash, m, t, p)) => match argon2(m, t, p) {
            Ok(a) => a.verify_password(password.as_bytes(), &hash).is_ok(),
            Err(_) => false,
        },
        None => {
            burn(password);
            false
        }
    }
}

/// Spend the cost of one verification and fail (unknown users).
pub fn burn(password: &str) {
    if let Some((hash, m, t, p)) = parse(DUMMY_HASH)
        && let Ok(a) = argon2(m, t, p)
    {
        let _ = a.verify_password(password.as_bytes(), &hash);
    }
}

/// Check a new user's password: 8 or more characters, at most 1024 bytes.
pub fn validate_new_password(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::validation(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::validation(
            "password",
            format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::SeededRandom;

    #[test]
    fn verifies_the_password_it_hashed_and_nothing_else() {
        let hash = hash_password("correct horse", &SeededRandom::new(1)).unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsE", &hash));
        assert!(!verify_password("", &hash));
    }

    #[test]
    fn salts_make_equal_passwords_hash_differently() {
        let random = SeededRandom::new(2);
        let a = hash_password("same password", &random).unwrap();
        let b = hash_password("same password", &random).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn the_dummy_hash_is_supported_and_matches_nothing_guessable() {
        assert!(is_supported_hash(DUMMY_HASH));
        for guess in ["", "password", "admin", "AAECAwQFBgcICQoLDA0ODw"] {
            assert!(!verify_password(guess, DUMMY_HASH));
        }
    }

    #[test]
    fn refuses_malformed_foreign_or_too_costly_hashes() {
        for bad in [
            "",
            "plaintext",
            "$argon2i$v=19$m=19456,t=2,p=1$AAECAwQFBgcICQoLDA0ODw$gnWBFfKjrfA7ZJm1j4fpY/8dk1m6Ecrb1LqUXoSpeUY",
            "$argon2id$v=19$m=4194304,t=2,p=1$AAECAwQFBgcICQoLDA0ODw$gnWBFfKjrfA7ZJm1j4fpY/8dk1m6Ecrb1LqUXoSpeUY",
            "$argon2id$v=19$m=19456,t=99,p=1$AAECAwQFBgcICQoLDA0ODw$gnWBFfKjrfA7ZJm1j4fpY/8dk1m6Ecrb1LqUXoSpeUY",
            "$pbkdf2-sha256$i=1000$abc$def",
        ] {
            assert!(!is_supported_hash(bad), "{bad}");
            assert!(!verify_password("x", bad));
        }
    }

    #[test]
    fn new_passwords_need_eight_characters() {
        assert!(validate_new_password("1234567").is_err());
        assert!(validate_new_password("12345678").is_ok());
        assert!(validate_new_password(&"x".repeat(1025)).is_err());
    }
}
