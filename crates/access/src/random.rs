//! The `Random` port: where session ids, refresh tokens, API keys, token ids
//! and password salts come from.
//!
//! [`OsRandom`] asks the platform (`getrandom`: `wasi:random/random` inside a
//! Spin component, the OS natively); [`SeededRandom`] is deterministic, so
//! native tests can predict every token.

use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ragspin_core::{Error, Result};

/// A source of cryptographically secure random bytes.
pub trait Random {
    /// Fill `buf` entirely with random bytes.
    fn fill(&self, buf: &mut [u8]) -> Result<()>;
}

impl<T: Random + ?Sized> Random for &T {
    fn fill(&self, buf: &mut [u8]) -> Result<()> {
        (**self).fill(buf)
    }
}

/// The platform's CSPRNG (`getrandom`; `wasi:random/random` in wasm32-wasip2).
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<()> {
        getrandom::fill(buf).map_err(|e| Error::Internal(format!("no randomness available: {e}")))
    }
}

/// A deterministic generator (SplitMix64) for tests. Never use it to mint
/// real credentials.
#[derive(Debug)]
pub struct SeededRandom {
    state: Mutex<u64>,
}

impl SeededRandom {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            state: Mutex::new(seed),
        }
    }
}

impl Random for SeededRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<()> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for chunk in buf.chunks_mut(8) {
            *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = *state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

/// `n` random bytes.
pub fn bytes(random: &impl Random, n: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    random.fill(&mut buf)?;
    Ok(buf)
}

/// `n` random bytes as unpadded base64url (`[A-Za-z0-9_-]`).
pub fn token(random: &impl Random, n: usize) -> Result<String> {
    Ok(URL_SAFE_NO_PAD.encode(bytes(random, n)?))
}

/// `n` random bytes as lowercase hex.
pub fn hex_token(random: &impl Random, n: usize) -> Result<String> {
    Ok(hex(&bytes(random, n)?))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_random_is_deterministic_and_fills_odd_lengths() {
        let a = SeededRandom::new(7);
        let b = SeededRandom::new(7);
        assert_eq!(bytes(&a, 13).unwrap(), bytes(&b, 13).unwrap());
        assert_ne!(
            bytes(&a, 13).unwrap(),
            bytes(&SeededRandom::new(8), 13).unwrap()
        );
    }

    #[test]
    fn os_random_gives_different_tokens() {
        let a = token(&OsRandom, 32).unwrap();
        let b = token(&OsRandom, 32).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
