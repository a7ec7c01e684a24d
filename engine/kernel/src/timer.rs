//! Waiting on the host's timer: the Tokio runtime's natively, `setTimeout`
//! in JavaScript hosts (pages, workers, Node, workerd). Used for retry
//! backoff, commit backoff, progress ticks and turns for the host.

use std::time::Duration;

/// Waits `duration`.
#[cfg(not(target_arch = "wasm32"))]
pub async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await;
}

/// Waits `duration` with the host's `setTimeout`. The future is `Send`, like
/// every engine future, so that any caller (a commit, a scan) may hold it.
#[cfg(target_arch = "wasm32")]
pub async fn sleep(duration: Duration) {
    let wait = crate::storage::send::run_send(async move {
        set_timeout(duration).await;
        Ok::<(), crate::Error>(())
    });
    let _ = wait.await;
}

/// A promise resolved by `setTimeout` after `duration`, awaited; resolves
/// at once in a host without `setTimeout`.
#[cfg(target_arch = "wasm32")]
async fn set_timeout(duration: Duration) {
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
