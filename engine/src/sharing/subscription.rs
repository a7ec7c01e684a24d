//! Following a shared table's commits (`…/tables/{t}/events`, a Wavelake
//! extension): the server's Server-Sent Events read from the response body
//! as it arrives, natively and with `fetch` in JavaScript hosts. A dropped
//! connection is opened again with `Last-Event-ID`, so no commit is missed
//! or seen twice.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::StatusCode;
use url::Url;
use wavelake_sharing::events::{
    COMMIT_EVENT, CommitEvent, ERROR_EVENT, EventError, SseDecoder, SseMessage,
};

use crate::{Error, Result};

/// Times in a row a dropped subscription is opened again before it fails.
const RECONNECTS: u32 = 5;

/// What to follow of a table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Include each commit's rows from the change data feed.
    pub changes: bool,
    /// The first version to receive (default: the next one committed).
    pub from_version: Option<i64>,
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>>>>;

/// An open subscription: [`Subscription::next`] yields commits in order.
pub struct Subscription {
    http: reqwest::Client,
    url: Url,
    token: String,
    body: Option<Body>,
    decoder: SseDecoder,
    pending: VecDeque<SseMessage>,
    /// The version of the last commit handed out.
    last_id: Option<String>,
    failures: u32,
    ended: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("url", &self.url.as_str())
            .field("last_id", &self.last_id)
            .field("ended", &self.ended)
            .finish()
    }
}

impl Subscription {
    /// Opens the event stream at `url` (with its query) for `token`.
    pub(crate) async fn open(http: reqwest::Client, url: Url, token: String) -> Result<Self> {
        let mut subscription = Self {
            http,
            url,
            token,
            body: None,
            decoder: SseDecoder::new(),
            pending: VecDeque::new(),
            last_id: None,
            failures: 0,
            ended: false,
        };
        subscription.connect().await?;
        Ok(subscription)
    }

    /// The next commit, waiting for it; `None` once the subscription is
    /// closed. A refusal or an `error` event is an error.
    pub async fn next(&mut self) -> Result<Option<CommitEvent>> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                match message.event.as_str() {
                    COMMIT_EVENT => {
                        let event: CommitEvent =
                            serde_json::from_str(&message.data).map_err(|e| Error::Corrupt {
                                path: self.url.to_string(),
                                reason: format!("a commit event that is not one: {e}"),
                            })?;
                        self.last_id = message.id.or(Some(event.version.to_string()));
                        self.failures = 0;
                        return Ok(Some(event));
                    }
                    ERROR_EVENT => {
                        self.close();
                        let error: EventError =
                            serde_json::from_str(&message.data).unwrap_or(EventError {
                                code: "UNKNOWN".into(),
                                message: message.data,
                            });
                        return Err(match error.code.as_str() {
                            "VERSION_NOT_FOUND" => Error::VersionNotFound {
                                version: self
                                    .last_id
                                    .as_deref()
                                    .and_then(|v| v.parse().ok())
                                    .map_or(0, |v: i64| v + 1),
                                reason: error.message,
                            },
                            _ => crate::storage::storage_error(
                                self.url.as_str(),
                                format!("[{}] {}", error.code, error.message),
                            ),
                        });
                    }
                    _ => continue,
                }
            }
            if self.ended {
                return Ok(None);
            }
            let chunk = match self.body.as_mut() {
                Some(body) => body.next().await,
                None => None,
            };
            match chunk {
                Some(Ok(bytes)) => {
                    let messages = self.decoder.push(&bytes).map_err(|e| Error::Corrupt {
                        path: self.url.to_string(),
                        reason: e.to_string(),
                    })?;
                    self.pending.extend(messages);
                }
                Some(Err(_)) | None => self.reconnect().await?,
            }
        }
    }

    /// Stops following: [`Self::next`] then returns `None`.
    pub fn close(&mut self) {
        self.ended = true;
        self.body = None;
        self.pending.clear();
    }

    /// Opens the stream again after the last commit handed out, waiting a
    /// little longer each time; fails after [`RECONNECTS`] tries in a row.
    async fn reconnect(&mut self) -> Result<()> {
        self.body = None;
        loop {
            self.failures += 1;
            if self.failures > RECONNECTS {
                self.ended = true;
                return Err(crate::storage::storage_error(
                    self.url.as_str(),
                    format!("the subscription dropped and {RECONNECTS} reconnections failed"),
                ));
            }
            crate::timer::sleep(Duration::from_millis(200 * u64::from(self.failures))).await;
            match self.connect().await {
                Ok(()) => return Ok(()),
                Err(e @ (Error::AccessDenied { .. } | Error::TableNotFound { .. })) => {
                    self.ended = true;
                    return Err(e);
                }
                Err(_) => continue,
            }
        }
    }

    async fn connect(&mut self) -> Result<()> {
        let mut request = self
            .http
            .get(self.url.clone())
            .bearer_auth(&self.token)
            .header("accept", "text/event-stream");
        if let Some(id) = &self.last_id {
            request = request.header("last-event-id", id);
        }
        let what = self.url.to_string();
        let response = request
            .send()
            .await
            .map_err(|e| crate::storage::storage_error(&what, e))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    v.get("message")
                        .or_else(|| v.get("error").and_then(|e| e.get("message")))
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| format!("HTTP status {status}"));
            return Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::AccessDenied {
                    reason: format!("{what}: {message}"),
                },
                StatusCode::NOT_FOUND => Error::TableNotFound {
                    location: what,
                    reason: message,
                },
                StatusCode::BAD_REQUEST => Error::InvalidArgument(format!("{what}: {message}")),
                _ => crate::storage::storage_error(&what, message),
            });
        }
        self.decoder = SseDecoder::new();
        self.body = Some(Box::pin(response.bytes_stream()));
        Ok(())
    }
}
