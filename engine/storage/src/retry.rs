//! Retrying HTTP reads: network errors, 5xx and 429 answers are tried again
//! with exponential backoff, on every target (waiting on
//! [`wavelake_kernel::timer::sleep`]).

use std::time::Duration;

/// Tries per request: the first one and three retries.
pub const ATTEMPTS: u32 = 4;

/// The wait before retry `retry` (1-based): 100 ms, 200 ms, 400 ms.
pub fn backoff(retry: u32) -> Duration {
    Duration::from_millis(100u64 << retry.saturating_sub(1).min(6))
}

/// Whether an HTTP status is worth trying again.
pub fn is_transient(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_only_transient_statuses_retry() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(400));
        assert!(is_transient(503) && is_transient(429));
        assert!(!is_transient(404) && !is_transient(403) && !is_transient(200));
    }
}
