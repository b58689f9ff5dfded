//! [`Timer`] implementations for tests: [`InstantTimer`] (no waiting) and,
//! natively, [`RealTimer`] (really waits).

use std::sync::{Mutex, PoisonError};

use ragspin_core::Timer;

/// A [`Timer`] whose `sleep` completes at once and records how long it was
/// asked to wait, so retry and backoff logic can be tested without waiting.
///
/// A sleep is recorded when it is first polled: a timeout that
/// [`ragspin_core::with_timeout`] never had to start (because the raced
/// future was ready at once) is not recorded.
#[derive(Debug, Default)]
pub struct InstantTimer {
    sleeps: Mutex<Vec<u64>>,
}

impl InstantTimer {
    /// No sleeps recorded.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every requested sleep, in milliseconds, in order.
    pub fn sleeps(&self) -> Vec<u64> {
        self.sleeps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The sum of the requested sleeps, in milliseconds.
    pub fn total_ms(&self) -> u64 {
        self.sleeps().iter().sum()
    }
}

impl Timer for InstantTimer {
    async fn sleep(&self, ms: u64) {
        self.sleeps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(ms);
    }
}

/// A [`Timer`] that blocks the calling thread for the requested time
/// (`std::thread::sleep`). Native only; meant for tests that talk to a real
/// server on loopback, where blocking the test's executor is harmless.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug, Clone, Copy, Default)]
pub struct RealTimer;

#[cfg(not(target_arch = "wasm32"))]
impl Timer for RealTimer {
    async fn sleep(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
