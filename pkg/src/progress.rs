//! Progress events: while a query runs, the `onProgress` callback is called
//! with the files and bytes it has read so far, every
//! [`PROGRESS_INTERVAL`] and once more at the end.

use std::time::Duration;

use arrow::array::RecordBatch;
use wasm_bindgen::JsValue;
use wavelake_engine::{PlannedQuery, QueryProgress};

/// How often a running query reports.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// `{ filesTotal, filesRead, bytesFetched, bytesFromCache, requests }`.
fn progress_object(progress: &QueryProgress) -> JsValue {
    crate::number_object(&[
        ("filesTotal", progress.files_total),
        ("filesRead", progress.files_read),
        ("bytesFetched", progress.bytes_fetched),
        ("bytesFromCache", progress.bytes_from_cache),
        ("requests", progress.fetch_requests),
    ])
}

/// Runs the query `planned`, calling `callback` (when given) with its
/// progress whenever it changed.
pub async fn collect(
    planned: &PlannedQuery,
    callback: Option<js_sys::Function>,
) -> wavelake_engine::Result<Vec<RecordBatch>> {
    let Some(callback) = callback else {
        return planned.collect().await;
    };
    planned
        .collect_reporting(PROGRESS_INTERVAL, |now| {
            // A throwing callback must not fail the query.
            let _ = callback.call1(&JsValue::NULL, &progress_object(&now));
        })
        .await
}
