//! Cancelling a query with an `AbortSignal`: the query future is raced
//! against the signal's `abort` event and dropped when it fires, which
//! stops its range reads.

use std::future::Future;

use futures::channel::oneshot;
use futures::future::{Either, select};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;

use crate::error::js_error;

/// Runs `work`, or rejects with an `ABORTED` error once `signal` aborts.
pub async fn abortable<T>(
    signal: Option<web_sys::AbortSignal>,
    work: impl Future<Output = Result<T, wasm_bindgen::JsValue>>,
) -> Result<T, wasm_bindgen::JsValue> {
    let aborted = || js_error("ABORTED", "the query was cancelled");
    let Some(signal) = signal else {
        return work.await;
    };
    if signal.aborted() {
        return Err(aborted());
    }
    let (sender, receiver) = oneshot::channel::<()>();
    let mut sender = Some(sender);
    let on_abort = Closure::<dyn FnMut()>::new(move || {
        if let Some(sender) = sender.take() {
            let _ = sender.send(());
        }
    });
    let _ = signal.add_event_listener_with_callback("abort", on_abort.as_ref().unchecked_ref());
    let outcome = select(Box::pin(work), receiver).await;
    let _ = signal.remove_event_listener_with_callback("abort", on_abort.as_ref().unchecked_ref());
    match outcome {
        Either::Left((result, _)) => result,
        Either::Right(_) => Err(aborted()),
    }
}
