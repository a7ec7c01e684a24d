//! Progress events: while a query runs, the `onProgress` callback is called
//! with the files and bytes it has read so far, every
//! [`PROGRESS_INTERVAL`] and once more at the end.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use futures::future::{Either, select};
use wasm_bindgen::JsValue;
use wavelake_engine::storage::retry;
use wavelake_engine::{PlannedQuery, QueryProgress};

/// How often a running query reports.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// `{ filesTotal, filesRead, bytesFetched, bytesFromCache, requests }`.
fn progress_object(progress: &QueryProgress) -> JsValue {
    let object = js_sys::Object::new();
    for (name, value) in [
        ("filesTotal", progress.files_total),
        ("filesRead", progress.files_read),
        ("bytesFetched", progress.bytes_fetched),
        ("bytesFromCache", progress.bytes_from_cache),
        ("requests", progress.fetch_requests),
    ] {
        // Setting a property on a fresh object cannot fail.
        let _ = js_sys::Reflect::set(&object, &name.into(), &JsValue::from_f64(value as f64));
    }
    object.into()
}

/// Runs `work` (the query `planned`), calling `callback` with its progress
/// whenever it changed since the last call.
pub async fn reporting<T>(
    planned: &PlannedQuery,
    callback: Option<js_sys::Function>,
    work: impl Future<Output = T>,
) -> T {
    let Some(callback) = callback else {
        return work.await;
    };
    let last: Cell<Option<QueryProgress>> = Cell::new(None);
    let report = || {
        let now = planned.progress();
        if last.get() != Some(now) {
            last.set(Some(now));
            // A throwing callback must not fail the query.
            let _ = callback.call1(&JsValue::NULL, &progress_object(&now));
        }
    };
    report();
    let ticker = async {
        loop {
            retry::sleep(PROGRESS_INTERVAL).await;
            report();
        }
    };
    let out = match select(Box::pin(work), Box::pin(ticker)).await {
        Either::Left((out, _)) => out,
        Either::Right(((), work)) => work.await,
    };
    report();
    out
}
