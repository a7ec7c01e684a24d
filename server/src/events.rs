//! Table subscriptions: a table's new commits as Server-Sent Events
//! (`GET /api/v1/tables/{ns}/{t}/events`, and for recipients
//! `GET /delta-sharing/shares/{s}/schemas/{sc}/tables/{t}/events`).
//!
//! One task per watched table polls its log for the next commit (every
//! `[events] poll_interval_ms`, so any writer's commit is seen, this
//! server's or another's) and publishes the latest version; each
//! subscriber reads the commits from the version it has up to that one,
//! itself, so it never skips one: a commit event has the version as its
//! SSE `id`, and a client that reconnects with `Last-Event-ID` resumes
//! right after it. With `?changes=true` each event also carries the
//! commit's rows from the change data feed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use wavelake_engine::sharing::protocol::events::{
    COMMIT_EVENT, CommitEvent, ERROR_EVENT, EventError,
};

use crate::admission::Admitted;
use crate::error::ApiError;
use wavelake_engine::Table;

/// Change rows one event carries at most; an event with more says
/// `changes_truncated` (read the rest with `table_changes`).
pub const MAX_CHANGE_ROWS: usize = 10_000;

/// `?changes=` and `?from_version=`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Include each commit's rows from the change data feed.
    #[serde(default)]
    pub changes: bool,
    /// The first version to send (default: the next one committed).
    pub from_version: Option<i64>,
}

/// The tables being watched, each by one polling task.
pub struct Watchers {
    tables: Mutex<HashMap<String, watch::Sender<i64>>>,
    poll: Duration,
}

impl Watchers {
    /// Watchers that poll every `poll`.
    pub fn new(poll: Duration) -> Arc<Self> {
        Arc::new(Self {
            tables: Mutex::default(),
            poll,
        })
    }

    /// The latest version of `table` as it changes (`known`: a version it
    /// has, when no task watches it yet); its task stops once nobody
    /// listens.
    pub fn watch(self: &Arc<Self>, table: Table, known: i64) -> watch::Receiver<i64> {
        let key = table.storage().location();
        let mut tables = self
            .tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sender) = tables.get(&key) {
            return sender.subscribe();
        }
        let (sender, receiver) = watch::channel(known);
        tables.insert(key.clone(), sender.clone());
        tokio::spawn(poll(self.clone(), key, table, sender));
        receiver
    }
}

/// Publishes `table`'s latest version until nobody listens.
async fn poll(watchers: Arc<Watchers>, key: String, table: Table, sender: watch::Sender<i64>) {
    let mut latest = *sender.borrow();
    loop {
        tokio::time::sleep(watchers.poll).await;
        {
            let mut tables = watchers
                .tables
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if sender.receiver_count() == 0 {
                tables.remove(&key);
                return;
            }
        }
        loop {
            let next = wavelake_engine::log::commit_path(latest + 1);
            match table.storage().size(&next).await {
                Ok(_) => latest += 1,
                Err(wavelake_engine::Error::NotFound { .. }) => break,
                Err(e) => {
                    tracing::warn!(table = %key, error = %e, "cannot poll the table's log");
                    break;
                }
            }
        }
        sender.send_if_modified(|published| {
            let newer = *published < latest;
            if newer {
                *published = latest;
            }
            newer
        });
    }
}

/// The response of a subscription to `table` by `caller`: its event
/// stream, or why there is none (`?changes=true` on a table without a
/// change data feed, a bad `Last-Event-ID`, too many subscriptions).
pub async fn open(
    watchers: &Arc<Watchers>,
    subscriptions: &Arc<crate::admission::Admission>,
    caller: &str,
    table: Table,
    query: &EventsQuery,
    headers: &HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let snapshot = table.snapshot().await?;
    if query.changes && !wavelake_engine::changes::records_changes(snapshot.metadata()) {
        return Err(wavelake_engine::Error::ChangeDataNotRecorded {
            version: snapshot.version(),
            reason: "the table does not record its change data feed \
                     (delta.enableChangeDataFeed is not true), so ?changes=true has no rows"
                .into(),
        }
        .into());
    }
    let next = first_version(headers, query, snapshot.version())?;
    let slot = subscriptions.admit(caller).map_err(ApiError::too_many)?;
    Ok(subscribe(
        watchers,
        table,
        snapshot.version(),
        next,
        query.changes,
        slot,
    )
    .into_response())
}

/// Where a subscription starts: after `Last-Event-ID`, at `from_version`,
/// else after `latest`.
fn first_version(headers: &HeaderMap, query: &EventsQuery, latest: i64) -> Result<i64, ApiError> {
    if let Some(id) = headers.get("last-event-id") {
        let id = id
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|v| *v >= 0)
            .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be a version we sent"))?;
        return Ok(id + 1);
    }
    match query.from_version {
        Some(v) if v < 0 => Err(ApiError::bad_request("from_version must be 0 or more")),
        Some(v) => Ok(v),
        None => Ok(latest + 1),
    }
}

/// What a subscriber keeps between events.
struct Follow {
    table: Table,
    next: i64,
    latest: watch::Receiver<i64>,
    changes: bool,
    _slot: Admitted,
    done: bool,
}

/// The events of `table` from version `next` on, as an SSE response.
fn subscribe(
    watchers: &Arc<Watchers>,
    table: Table,
    latest: i64,
    next: i64,
    changes: bool,
    slot: Admitted,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + use<>> {
    let follow = Follow {
        latest: watchers.watch(table.clone(), latest),
        table,
        next,
        changes,
        _slot: slot,
        done: false,
    };
    let stream = futures::stream::unfold(follow, |mut follow| async move {
        if follow.done {
            return None;
        }
        let event = follow.next_event().await;
        Some((Ok(event), follow))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

impl Follow {
    /// The next commit's event, waiting for it; an `error` event (and the
    /// end) when it cannot be read.
    async fn next_event(&mut self) -> Event {
        loop {
            let latest = *self.latest.borrow_and_update();
            if self.next <= latest {
                let version = self.next;
                return match self.table.commit(version).await {
                    Ok(Some(commit)) => {
                        self.next += 1;
                        self.commit_event(commit).await
                    }
                    Ok(None) => self.error(
                        "VERSION_NOT_FOUND",
                        format!(
                            "version {version} is no longer in the log (log retention); \
                             subscribe again from a later version"
                        ),
                    ),
                    Err(e) => self.error(e.code(), e.to_string()),
                };
            }
            if self.latest.changed().await.is_err() {
                return self.error(
                    "UNAVAILABLE",
                    "the server stopped watching the table".into(),
                );
            }
        }
    }

    async fn commit_event(&self, commit: wavelake_engine::CommitEntry) -> Event {
        let mut event = CommitEvent {
            version: commit.version,
            timestamp: commit.timestamp,
            operation: commit.operation,
            parameters: commit.parameters,
            metrics: commit.metrics,
            changes: None,
            changes_truncated: None,
            changes_error: None,
        };
        if self.changes {
            match change_rows(&self.table, commit.version).await {
                Ok((rows, truncated)) => {
                    event.changes = Some(rows);
                    event.changes_truncated = Some(truncated);
                }
                Err(e) => {
                    event.changes_error = Some(EventError {
                        code: e.code().to_owned(),
                        message: e.to_string(),
                    });
                }
            }
        }
        let data = serde_json::to_string(&event).unwrap_or_else(|e| {
            json!({"version": event.version, "changes_error": {"code": "INTERNAL", "message": e.to_string()}}).to_string()
        });
        Event::default()
            .id(event.version.to_string())
            .event(COMMIT_EVENT)
            .data(data)
    }

    fn error(&mut self, code: &str, message: String) -> Event {
        self.done = true;
        let error = EventError {
            code: code.to_owned(),
            message,
        };
        Event::default()
            .event(ERROR_EVENT)
            .data(serde_json::to_string(&error).unwrap_or_default())
    }
}

/// The change data feed rows of one commit, as JSON objects (at most
/// [`MAX_CHANGE_ROWS`]; the flag says whether there were more).
async fn change_rows(table: &Table, version: i64) -> wavelake_engine::Result<(Vec<Value>, bool)> {
    let feed = table.changes(version, Some(version)).await?;
    let ctx = datafusion::prelude::SessionContext::new();
    let frame = wavelake_engine::change_feed::feed_frame(&ctx, table, feed).await?;
    let batches = frame.limit(0, Some(MAX_CHANGE_ROWS + 1))?.collect().await?;
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut kept = Vec::new();
    let mut room = MAX_CHANGE_ROWS;
    for batch in batches {
        let take = batch.num_rows().min(room);
        room -= take;
        kept.push(batch.slice(0, take));
    }
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    let refs: Vec<&RecordBatch> = kept.iter().collect();
    writer.write_batches(&refs)?;
    writer.finish()?;
    let bytes = writer.into_inner();
    let rows: Vec<Value> = if bytes.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            wavelake_engine::Error::InvalidArgument(format!("change rows as JSON: {e}"))
        })?
    };
    Ok((rows, total > MAX_CHANGE_ROWS))
}
