//! Table subscriptions, a Wavelake extension: the commit events the server
//! sends as Server-Sent Events (`…/tables/{t}/events`) and an incremental
//! decoder of the SSE stream they come in, for clients that read it from
//! bytes as they arrive (`fetch` in the browser has no `EventSource` with
//! headers).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The SSE event name of a commit.
pub const COMMIT_EVENT: &str = "commit";
/// The SSE event name of the error that ends a subscription.
pub const ERROR_EVENT: &str = "error";
/// Bytes one event may hold at most while it is decoded; a stream that
/// sends a longer one is refused rather than buffered without bound.
pub const MAX_EVENT_BYTES: usize = 64 << 20;

/// One commit of a subscribed table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitEvent {
    /// The version the commit made (also the SSE `id`).
    pub version: i64,
    /// When, in milliseconds since the epoch.
    pub timestamp: Option<i64>,
    /// The operation (`WRITE`, `DELETE`, `MERGE`, …).
    pub operation: Option<String>,
    /// The operation's parameters.
    pub parameters: Option<Value>,
    /// The operation's metrics.
    pub metrics: Option<Value>,
    /// The commit's rows from the change data feed, when asked for: each
    /// row an object of the table's columns with `_change_type`,
    /// `_commit_version` and `_commit_timestamp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<Value>>,
    /// Whether the commit changed more rows than `changes` holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes_truncated: Option<bool>,
    /// Why `changes` could not be read for this commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes_error: Option<EventError>,
}

/// An error event's data, or why a commit's changes are missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventError {
    /// The stable error code (`VERSION_NOT_FOUND`, …).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

/// One event of a Server-Sent Events stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseMessage {
    /// The last event id the stream set (what a reconnecting client sends
    /// as `Last-Event-ID`).
    pub id: Option<String>,
    /// The event's name (`message` when the stream names none).
    pub event: String,
    /// Its data lines, joined by newlines.
    pub data: String,
}

/// Why an event stream cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// An event grew past [`MAX_EVENT_BYTES`].
    TooLarge,
    /// An event was not UTF-8.
    NotText,
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge => write!(f, "an event is larger than {MAX_EVENT_BYTES} bytes"),
            Self::NotText => f.write_str("an event is not UTF-8 text"),
        }
    }
}

impl std::error::Error for SseError {}

/// Decodes an SSE stream fed in chunks split anywhere (inside a line, a
/// UTF-8 character or a `\r\n`), as the HTML standard says: `\n`, `\r\n`
/// and `\r` end lines, `:` starts a comment, a blank line ends an event.
#[derive(Debug, Default)]
pub struct SseDecoder {
    line: Vec<u8>,
    /// The previous chunk ended with `\r`: a `\n` next is part of it.
    after_cr: bool,
    last_id: Option<String>,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// The last event id seen, even on events not yet complete.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    /// Feeds the next bytes; the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseMessage>, SseError> {
        let mut messages = Vec::new();
        for &byte in bytes {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(message) = self.line_ended(&line)? {
                        messages.push(message);
                    }
                }
                _ => {
                    if self.line.len() + self.data.len() >= MAX_EVENT_BYTES {
                        return Err(SseError::TooLarge);
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(messages)
    }

    fn line_ended(&mut self, line: &[u8]) -> Result<Option<SseMessage>, SseError> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        let text = std::str::from_utf8(line).map_err(|_| SseError::NotText)?;
        if text.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text, ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_owned()),
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<SseMessage> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        Some(SseMessage {
            id: self.last_id.clone(),
            event: event
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "message".into()),
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(chunks: &[&[u8]]) -> Vec<SseMessage> {
        let mut decoder = SseDecoder::new();
        chunks
            .iter()
            .flat_map(|chunk| decoder.push(chunk).unwrap())
            .collect()
    }

    #[test]
    fn events_ids_comments_and_line_endings() {
        let stream = b": keep-alive\n\nid: 3\nevent: commit\ndata: {\"version\":3}\n\n\
                       data: a\r\ndata: b\r\rid: 4\revent:error\rdata:x\r\n\r\n";
        let messages = decode_all(&[stream]);
        assert_eq!(
            messages,
            [
                SseMessage {
                    id: Some("3".into()),
                    event: "commit".into(),
                    data: "{\"version\":3}".into()
                },
                SseMessage {
                    id: Some("3".into()),
                    event: "message".into(),
                    data: "a\nb".into()
                },
                SseMessage {
                    id: Some("4".into()),
                    event: "error".into(),
                    data: "x".into()
                },
            ]
        );
    }

    #[test]
    fn any_split_of_a_stream_decodes_the_same() {
        let stream: &[u8] =
            "id: 7\r\nevent: commit\r\ndata: {\"name\":\"é\"}\r\n\r\n: c\n\nid: 8\ndata: z\n\n"
                .as_bytes();
        let whole = decode_all(&[stream]);
        assert_eq!(whole.len(), 2);
        for cut in 0..=stream.len() {
            for second in cut..=stream.len() {
                let parts = [&stream[..cut], &stream[cut..second], &stream[second..]];
                assert_eq!(decode_all(&parts), whole, "cut at {cut} and {second}");
            }
        }
    }

    #[test]
    fn bad_streams_are_errors_not_panics() {
        let mut decoder = SseDecoder::new();
        assert_eq!(decoder.push(b"data: \xff\xfe\n"), Err(SseError::NotText));
        let mut decoder = SseDecoder::new();
        let mut refused = false;
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..70 {
            if decoder.push(&chunk).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused, "an endless line is refused");
        // Arbitrary bytes never panic.
        let mut decoder = SseDecoder::new();
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for chunk in noise.chunks(7) {
            let _ = decoder.push(chunk);
        }
    }

    #[test]
    fn commit_events_round_trip() {
        let event = CommitEvent {
            version: 5,
            timestamp: Some(1_700_000_000_000),
            operation: Some("DELETE".into()),
            parameters: Some(serde_json::json!({"predicate": "id = 2"})),
            metrics: Some(serde_json::json!({"numDeletedRows": "1"})),
            changes: Some(vec![serde_json::json!({"id": 2, "_change_type": "delete"})]),
            changes_truncated: Some(false),
            changes_error: None,
        };
        let text = serde_json::to_string(&event).unwrap();
        assert!(!text.contains("changes_error"));
        assert_eq!(serde_json::from_str::<CommitEvent>(&text).unwrap(), event);
    }
}
