//! Retrying HTTP reads: network errors, 5xx and 429 answers are tried again
//! with exponential backoff, on every target (a timer from the runtime
//! natively, `setTimeout` in JavaScript hosts).

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

/// Waits `duration`.
#[cfg(not(target_arch = "wasm32"))]
pub async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// Waits `duration` with the host's `setTimeout` (pages, workers, Node).
#[cfg(target_arch = "wasm32")]
pub async fn sleep(duration: Duration) {
    use wasm_bindgen::{JsCast, JsValue};
    let millis = duration.as_millis() as f64;
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let set_timeout = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("setTimeout"))
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        match set_timeout {
            Some(set_timeout) => {
                let _ = set_timeout.call2(&JsValue::NULL, &resolve, &JsValue::from_f64(millis));
            }
            None => {
                let _ = resolve.call0(&JsValue::NULL);
            }
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
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
