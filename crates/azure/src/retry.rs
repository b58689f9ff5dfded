//! The pure parts of retrying: which answers are worth another attempt, how
//! long the server asks us to wait, capped exponential backoff with jitter,
//! and a tiny seedable random source for that jitter.

use crate::config::RetryPolicy;

/// Whether an HTTP status is transient: 408, 429, 500, 502, 503, 504.
///
/// Azure documents 429 (quota) and 500/503 (transient); 408/502/504 come
/// from gateways and proxies in front of it.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The wait the server asks for, in ms: `retry-after-ms` first (Azure sends
/// it with 429s), else `Retry-After` in (possibly fractional) seconds.
/// An HTTP-date `Retry-After`, or garbage, counts as no hint.
pub fn server_delay_ms(headers: &[(String, String)]) -> Option<u64> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| parse_non_negative(v, 1.0)) {
        return Some(ms);
    }
    header("retry-after").and_then(|v| parse_non_negative(v, 1000.0))
}

fn parse_non_negative(value: &str, scale: f64) -> Option<u64> {
    let number: f64 = value.parse().ok()?;
    if !number.is_finite() || number < 0.0 {
        return None;
    }
    let ms = (number * scale).ceil();
    // Saturate absurd values; the retry budget rejects them anyway.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some(if ms >= u64::MAX as f64 {
        u64::MAX
    } else {
        ms as u64
    })
}

/// The backoff before retry number `retry` (0 for the wait after the first
/// failed attempt) when the server gave no hint: the step
/// `min(max_delay, base · 2^retry)`, jittered uniformly into its upper half
/// (`[step/2, step]`) so that clients failing together do not retry together.
pub fn backoff_delay_ms(policy: &RetryPolicy, retry: u32, random: u64) -> u64 {
    let factor = 1u64.checked_shl(retry.min(63)).unwrap_or(u64::MAX);
    let step = policy
        .base_delay_ms
        .saturating_mul(factor)
        .min(policy.max_delay_ms);
    let floor = step / 2;
    floor + random % (step - floor + 1)
}

/// A xorshift64* generator: enough randomness for jitter, no OS entropy
/// needed, reproducible from its seed.
#[derive(Debug, Clone)]
pub struct Jitter {
    state: u64,
}

impl Jitter {
    /// A generator seeded with `seed` (any value, 0 included).
    pub fn new(seed: u64) -> Self {
        let state = seed ^ 0x9E37_79B9_7F4A_7C15;
        Self {
            state: if state == 0 {
                0x2545_F491_4F6C_DD1D
            } else {
                state
            },
        }
    }

    /// The next pseudo-random number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn retries_only_transient_statuses() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(status), "{status}");
        }
        for status in [200, 400, 401, 403, 404, 409, 413, 422, 501] {
            assert!(!is_retryable_status(status), "{status}");
        }
    }

    #[test]
    fn prefers_retry_after_ms_over_retry_after() {
        let h = headers(&[("Retry-After", "7"), ("retry-after-ms", "1250")]);
        assert_eq!(server_delay_ms(&h), Some(1250));
    }

    #[test]
    fn reads_retry_after_as_seconds_including_fractions() {
        assert_eq!(
            server_delay_ms(&headers(&[("retry-after", "3")])),
            Some(3000)
        );
        assert_eq!(
            server_delay_ms(&headers(&[("retry-after", "0.25")])),
            Some(250)
        );
    }

    #[test]
    fn ignores_unparseable_or_negative_hints() {
        let date = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(server_delay_ms(&date), None);
        assert_eq!(server_delay_ms(&headers(&[("retry-after-ms", "-5")])), None);
        let fallback = headers(&[("retry-after-ms", "soon"), ("retry-after", "2")]);
        assert_eq!(server_delay_ms(&fallback), Some(2000));
        assert_eq!(server_delay_ms(&[]), None);
    }

    #[test]
    fn backoff_doubles_within_jitter_bounds_until_the_cap() {
        let policy = RetryPolicy {
            base_delay_ms: 100,
            max_delay_ms: 1000,
            ..RetryPolicy::default()
        };
        let mut jitter = Jitter::new(7);
        for (retry, step) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1000),
            (40, 1000),
        ] {
            for _ in 0..50 {
                let d = backoff_delay_ms(&policy, retry, jitter.next_u64());
                assert!(
                    d >= step / 2 && d <= step,
                    "retry {retry}: {d} not in [{}, {step}]",
                    step / 2
                );
            }
        }
        assert_eq!(backoff_delay_ms(&policy, 99, 0), 500);
        assert_eq!(backoff_delay_ms(&policy, 99, 500), 1000);
    }

    #[test]
    fn backoff_jitter_spreads_delays() {
        let policy = RetryPolicy::default();
        let mut jitter = Jitter::new(1);
        let mut delays: Vec<u64> = (0..20)
            .map(|_| backoff_delay_ms(&policy, 3, jitter.next_u64()))
            .collect();
        delays.sort_unstable();
        delays.dedup();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn jitter_is_reproducible_from_its_seed() {
        let a: Vec<u64> = {
            let mut j = Jitter::new(42);
            (0..5).map(|_| j.next_u64()).collect()
        };
        let mut j = Jitter::new(42);
        let b: Vec<u64> = (0..5).map(|_| j.next_u64()).collect();
        assert_eq!(a, b);
        let mut other = Jitter::new(43);
        assert_ne!(a[0], other.next_u64());
    }
}
