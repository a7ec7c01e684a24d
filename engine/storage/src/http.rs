//! [`Storage`] over plain HTTP(S): a table published on a static host, read
//! with GETs and `Range` requests only (no listing, no HEAD).

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use url::Url;

use crate::retry;
use wavelake_kernel::storage::send::run_send;
use wavelake_kernel::storage::{COALESCE_GAP, FileMeta, Storage, storage_error};
use wavelake_kernel::{Error, Result};

/// A table rooted at an HTTP(S) base URL.
#[derive(Debug, Clone)]
pub struct HttpStorage {
    base: Url,
    client: reqwest::Client,
    headers: Vec<(String, String)>,
}

impl HttpStorage {
    /// Reads the table under `base_url` (a trailing `/` is added).
    pub fn new(base_url: &str) -> Result<Self> {
        let mut text = base_url.to_owned();
        if !text.ends_with('/') {
            text.push('/');
        }
        let base = Url::parse(&text)
            .map_err(|e| Error::InvalidArgument(format!("bad base URL {base_url}: {e}")))?;
        Ok(Self {
            base,
            client: reqwest::Client::new(),
            headers: Vec::new(),
        })
    }

    /// Sends `name: value` with every request (an `Authorization` header, say).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The URL of a table-relative (or absolute) path.
    pub fn url_of(&self, path: &str) -> Result<Url> {
        if path.starts_with("http://") || path.starts_with("https://") {
            return Url::parse(path)
                .map_err(|e| Error::InvalidArgument(format!("bad URL {path}: {e}")));
        }
        // Encode each segment so that names with `%`, `#`, `?` or spaces survive.
        let mut url = self.base.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| Error::InvalidArgument(format!("{} cannot be a base", self.base)))?;
            segments.pop_if_empty();
            for segment in path.split('/').filter(|s| !s.is_empty()) {
                segments.push(segment);
            }
        }
        Ok(url)
    }
}

/// GETs `url`, optionally a byte range, mapping 404 to `NotFound` and
/// 401/403 to `Forbidden`.
/// Network errors and transient statuses (5xx, 429) are retried with
/// backoff, up to [`retry::ATTEMPTS`] tries.
pub(crate) async fn fetch(
    client: reqwest::Client,
    url: Url,
    headers: Vec<(String, String)>,
    path: String,
    range: Option<Range<u64>>,
) -> Result<Bytes> {
    if range.as_ref().is_some_and(|r| r.is_empty()) {
        return Ok(Bytes::new());
    }
    let mut attempt = 1;
    loop {
        let mut request = client.get(url.clone());
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        if let Some(range) = &range {
            request = request.header("Range", format!("bytes={}-{}", range.start, range.end - 1));
        }
        let sent = request.send().await;
        let transient = match &sent {
            Ok(response) => retry::is_transient(response.status().as_u16()),
            Err(e) => !e.is_builder(),
        };
        if transient && attempt < retry::ATTEMPTS {
            wavelake_kernel::timer::sleep(retry::backoff(attempt)).await;
            attempt += 1;
            continue;
        }
        let response = sent.map_err(|e| storage_error(&path, e))?;
        return read_response(response, path, range).await;
    }
}

/// The body of a GET's response, cut to `range` when the server sent more.
async fn read_response(
    response: reqwest::Response,
    path: String,
    range: Option<Range<u64>>,
) -> Result<Bytes> {
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(Error::NotFound { path });
    }
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(Error::Forbidden {
            path,
            status: status.as_u16(),
        });
    }
    if !status.is_success() {
        let answer = response.text().await.unwrap_or_default();
        // Google Cloud Storage refuses an expired signed URL with 400 and
        // the code ExpiredToken, where S3 and Azure answer 403: refused
        // the same way, so that a fresh URL is asked for.
        if status == reqwest::StatusCode::BAD_REQUEST && answer.contains("ExpiredToken") {
            return Err(Error::Forbidden {
                path,
                status: status.as_u16(),
            });
        }
        return Err(storage_error(&path, failure(status, &answer)));
    }
    let partial = status == reqwest::StatusCode::PARTIAL_CONTENT;
    let body = response
        .bytes()
        .await
        .map_err(|e| storage_error(&path, e))?;
    match range {
        // A server that ignores `Range` sends the whole file: cut it here.
        Some(range) if !partial => {
            let end = (range.end as usize).min(body.len());
            let start = (range.start as usize).min(end);
            Ok(body.slice(start..end))
        }
        _ => Ok(body),
    }
}

/// What a failed answer says: its status and the start of its body.
fn failure(status: reqwest::StatusCode, answer: &str) -> String {
    const SHOWN: usize = 300;
    let answer = answer.trim();
    if answer.is_empty() {
        return format!("HTTP status {status}");
    }
    let mut end = answer.len().min(SHOWN);
    while !answer.is_char_boundary(end) {
        end -= 1;
    }
    let more = if end < answer.len() { "…" } else { "" };
    format!("HTTP status {status}: {}{more}", &answer[..end])
}

#[async_trait]
impl Storage for HttpStorage {
    fn location(&self) -> String {
        self.base.to_string()
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        let url = self.url_of(path)?;
        run_send(fetch(
            self.client.clone(),
            url,
            self.headers.clone(),
            path.to_owned(),
            None,
        ))
        .await
    }

    async fn get_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        let url = self.url_of(path)?;
        ::object_store::coalesce_ranges(
            ranges,
            |range| {
                run_send(fetch(
                    self.client.clone(),
                    url.clone(),
                    self.headers.clone(),
                    path.to_owned(),
                    Some(range),
                ))
            },
            COALESCE_GAP,
        )
        .await
    }

    async fn list(
        &self,
        _prefix: &str,
        _start_after: Option<&str>,
    ) -> Result<Option<Vec<FileMeta>>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_quote_the_start_of_the_answer() {
        let status = reqwest::StatusCode::BAD_REQUEST;
        assert_eq!(failure(status, " \n"), "HTTP status 400 Bad Request");
        assert_eq!(
            failure(status, "<Code>InvalidArgument</Code>"),
            "HTTP status 400 Bad Request: <Code>InvalidArgument</Code>"
        );
        let long = "é".repeat(400);
        let quoted = failure(status, &long);
        assert!(quoted.ends_with('…'));
        assert_eq!(quoted.chars().filter(|c| *c == 'é').count(), 150);
    }
}
