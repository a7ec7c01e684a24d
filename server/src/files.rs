//! `GET /files/…`: the files of tables on a local directory, behind the
//! URLs [`crate::signing`] signs, whole or by byte range, so that browsers
//! and Delta Sharing clients read data straight from storage.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::Stream;
use serde::Deserialize;

use crate::error::ApiError;
use crate::names::check_name;
use crate::signing::{Refusal, now_secs};
use crate::state::AppState;
use wavelake_engine::storage::StorageRef;

/// `?sp=r&se=&sig=`: read permission, expiry (unix seconds), signature.
#[derive(Debug, Deserialize)]
pub struct SignedQuery {
    sp: String,
    se: u64,
    sig: String,
}

/// `GET /files/{namespace}/{table}/{path…}`: a signed file, whole or a
/// byte range.
pub async fn serve_file(
    State(state): State<Arc<AppState>>,
    Path(resource): Path<String>,
    Query(query): Query<SignedQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if query.sp != "r" {
        return Err(ApiError::forbidden("file URLs only grant reading (sp=r)"));
    }
    match state
        .signer
        .verify(&resource, query.se, &query.sig, now_secs())
    {
        Ok(()) => {}
        Err(Refusal::Expired) => {
            return Err(ApiError::forbidden(
                "this file URL has expired; ask for a new one",
            ));
        }
        Err(Refusal::BadSignature) => {
            return Err(ApiError::forbidden(
                "this file URL's signature does not match",
            ));
        }
    }
    let mut parts = resource.splitn(3, '/');
    let (Some(namespace), Some(table), Some(path)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ApiError::not_found("no such file"));
    };
    check_name("namespace", namespace)?;
    check_name("table", table)?;
    if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(ApiError::bad_request("bad file path"));
    }
    let storage = (state.opener)(&format!("{}/{namespace}/{table}", state.config.root))?;
    let size = storage.size(path).await.map_err(|e| match e {
        wavelake_engine::Error::NotFound { .. } => ApiError::not_found("no such file"),
        other => ApiError::from(other),
    })?;
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, size));
    let (status, start, end) = match range {
        None | Some(RangeRequest::Ignored) => (StatusCode::OK, 0, size),
        Some(RangeRequest::Satisfiable(start, end)) => (StatusCode::PARTIAL_CONTENT, start, end),
        Some(RangeRequest::Unsatisfiable) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    let body = Body::from_stream(chunks(storage, path.to_owned(), start..end, DOWNLOAD_CHUNK));
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", end - 1))
    {
        headers.insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

/// A `Range` header, resolved against the file size.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// `[start, end)`.
    Satisfiable(u64, u64),
    /// Past the end of the file.
    Unsatisfiable,
    /// Not a single byte range we serve: the whole file is sent.
    Ignored,
}

/// Parses `bytes=a-b`, `bytes=a-` and `bytes=-n` (one range).
pub fn parse_range(value: &str, size: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Ignored;
    };
    if spec.contains(',') {
        return RangeRequest::Ignored;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Ignored;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        (true, false) => last
            .parse::<u64>()
            .ok()
            .map(|n| (size.saturating_sub(n), size, n > 0)),
        (false, _) => {
            let Ok(start) = first.parse::<u64>() else {
                return RangeRequest::Ignored;
            };
            let end = if last.is_empty() {
                Some(size)
            } else {
                last.parse::<u64>()
                    .ok()
                    .map(|l| l.saturating_add(1).min(size))
            };
            end.map(|end| (start, end, start < size && start < end))
        }
        (true, true) => None,
    };
    match parsed {
        None => RangeRequest::Ignored,
        Some((start, end, true)) => RangeRequest::Satisfiable(start, end),
        Some(_) => RangeRequest::Unsatisfiable,
    }
}

/// Bytes of a file sent per read: a download holds at most this much of
/// the file in memory, however large the file.
const DOWNLOAD_CHUNK: u64 = 8 << 20;

/// The bytes `range` of `path`, read `chunk` bytes at a time as the client
/// takes them. A failure after the first chunk ends the body early (the
/// client sees fewer bytes than `Content-Length` says).
fn chunks(
    storage: StorageRef,
    path: String,
    range: std::ops::Range<u64>,
    chunk: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> {
    futures::stream::try_unfold(range.start, move |offset| {
        let (storage, path) = (storage.clone(), path.clone());
        async move {
            if offset >= range.end {
                return Ok(None);
            }
            let next = offset.saturating_add(chunk.max(1)).min(range.end);
            let bytes = storage
                .get_range(&path, offset..next)
                .await
                .map_err(std::io::Error::other)?;
            metrics::counter!("wavelake_file_bytes_served_total").increment(bytes.len() as u64);
            Ok(Some((bytes, next)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn downloads_are_read_a_chunk_at_a_time() {
        use futures::TryStreamExt;
        let dir = tempfile::tempdir().unwrap();
        let storage: StorageRef = Arc::new(
            wavelake_engine::storage::ObjectStoreStorage::open(dir.path().to_str().unwrap())
                .unwrap(),
        );
        let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        storage
            .put("f.parquet", Bytes::from(body.clone()))
            .await
            .unwrap();
        let metered = Arc::new(wavelake_engine::storage::MeteredStorage::new(storage));
        let read: Vec<Bytes> = chunks(metered.clone(), "f.parquet".into(), 100..9_100, 1_000)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(read.len(), 9);
        assert!(read.iter().all(|c| c.len() == 1_000));
        assert_eq!(read.concat(), body[100..9_100]);
        assert_eq!(metered.meter().figures().requests, 9);
        let missing = chunks(metered, "gone.parquet".into(), 0..10, 4)
            .try_collect::<Vec<_>>()
            .await;
        assert!(missing.is_err());
    }

    #[test]
    fn byte_ranges_resolve_against_the_size() {
        assert_eq!(
            parse_range("bytes=0-99", 1000),
            RangeRequest::Satisfiable(0, 100)
        );
        assert_eq!(
            parse_range("bytes=900-", 1000),
            RangeRequest::Satisfiable(900, 1000)
        );
        assert_eq!(
            parse_range("bytes=-8", 1000),
            RangeRequest::Satisfiable(992, 1000)
        );
        assert_eq!(
            parse_range("bytes=990-2000", 1000),
            RangeRequest::Satisfiable(990, 1000)
        );
        assert_eq!(
            parse_range("bytes=1000-", 1000),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), RangeRequest::Ignored);
        assert_eq!(parse_range("items=0-1", 1000), RangeRequest::Ignored);
    }
}
