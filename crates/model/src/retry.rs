use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Exponential backoff with jitter, computed from the attempt number alone so
/// that it survives worker restarts.
///
/// The delay before attempt `n + 1` (after `n` failed attempts) is
/// `min(cap, initial × factorⁿ⁻¹)`, reduced by up to `jitter` of itself at random
/// so that jobs failing together do not retry together.
///
/// ```
/// use std::time::Duration;
/// use tether_model::RetryPolicy;
/// let policy = RetryPolicy::default(); // 1 s, ×2, 5 min cap
/// assert_eq!(policy.delay(1, 0.0), Duration::from_secs(1));
/// assert_eq!(policy.delay(3, 0.0), Duration::from_secs(4));
/// assert_eq!(policy.delay(30, 0.0), Duration::from_secs(300));
/// assert!(policy.delay(3, 0.99) < Duration::from_secs(4));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt, in milliseconds.
    pub initial_ms: u64,
    /// Growth per attempt.
    pub factor: f64,
    /// Upper bound for one delay, in milliseconds.
    pub cap_ms: u64,
    /// Fraction of the delay (0–1) that may be taken off at random.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_ms: 1_000,
            factor: 2.0,
            cap_ms: 300_000,
            jitter: 0.25,
        }
    }
}

impl RetryPolicy {
    /// A policy with a fixed delay and no jitter.
    pub fn fixed(delay: Duration) -> Self {
        // (Saturating: past u64::MAX ms, `as` would wrap to a short delay.)
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        RetryPolicy {
            initial_ms: ms,
            factor: 1.0,
            cap_ms: ms,
            jitter: 0.0,
        }
    }

    /// The delay after `failed_attempts` failures; `random01` is a uniform sample in `[0, 1)`.
    pub fn delay(&self, failed_attempts: u32, random01: f64) -> Duration {
        let exponent = failed_attempts.saturating_sub(1).min(64) as i32;
        let raw = self.initial_ms as f64 * self.factor.max(1.0).powi(exponent);
        let capped = raw.min(self.cap_ms as f64);
        let jitter = self.jitter.clamp(0.0, 1.0) * random01.clamp(0.0, 1.0);
        Duration::from_millis((capped * (1.0 - jitter)).round() as u64)
    }
}
