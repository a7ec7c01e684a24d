//! A Delta Sharing client over HTTP (native and wasm): listings, table
//! versions and `query` responses from a server named by a profile.

use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use url::Url;

use super::protocol::{
    HistoryItem, Page, SchemaItem, ShareItem, SharedFiles, SharedTableName, SharingProfile,
    parse_query_response,
};
use crate::storage::send::run_send;
use crate::{CommitEntry, Error, Result};

/// Reader features this engine asks a server for in the delta format.
const READER_FEATURES: &str =
    "deletionvectors,columnmapping,timestampntz,v2checkpoint,vacuumprotocolcheck,typewidening";

/// What a `query` asks for.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// The table at this version.
    pub version: Option<i64>,
    /// The table at this timestamp (RFC 3339).
    pub timestamp: Option<String>,
    /// Rows the caller means to read (the server may return fewer files).
    pub limit_hint: Option<i64>,
    /// A `jsonPredicateHints` tree on partition columns.
    pub json_predicate_hints: Option<String>,
    /// Ask for a refresh token, which later fetches fresh URLs for the
    /// same files.
    pub include_refresh_token: bool,
    /// A refresh token from an earlier response: the same files again, with
    /// fresh URLs.
    pub refresh_token: Option<String>,
}

/// A client of one Delta Sharing server.
#[derive(Debug, Clone)]
pub struct SharingClient {
    endpoint: Url,
    token: String,
    http: reqwest::Client,
}

impl SharingClient {
    /// A client for the server and token of `profile`.
    pub fn new(profile: &SharingProfile) -> Result<Self> {
        let mut text = profile.endpoint.clone();
        if !text.ends_with('/') {
            text.push('/');
        }
        let endpoint = Url::parse(&text).map_err(|e| {
            Error::InvalidArgument(format!("bad endpoint {:?}: {e}", profile.endpoint))
        })?;
        Ok(Self {
            endpoint,
            token: profile.bearer_token.clone(),
            http: reqwest::Client::new(),
        })
    }

    /// The server's endpoint.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Every share the recipient can read.
    pub async fn shares(&self) -> Result<Vec<String>> {
        let items: Vec<ShareItem> = self.pages(&["shares"]).await?;
        Ok(items.into_iter().map(|s| s.name).collect())
    }

    /// The schemas of a share.
    pub async fn schemas(&self, share: &str) -> Result<Vec<String>> {
        let items: Vec<SchemaItem> = self.pages(&["shares", share, "schemas"]).await?;
        Ok(items.into_iter().map(|s| s.name).collect())
    }

    /// Every table of a share.
    pub async fn tables(&self, share: &str) -> Result<Vec<SharedTableName>> {
        self.pages(&["shares", share, "all-tables"]).await
    }

    /// Every table of every share.
    pub async fn all_tables(&self) -> Result<Vec<SharedTableName>> {
        let mut tables = Vec::new();
        for share in self.shares().await? {
            tables.extend(self.tables(&share).await?);
        }
        Ok(tables)
    }

    /// The table's version, latest or at `timestamp` (RFC 3339).
    pub async fn table_version(
        &self,
        table: &SharedTableName,
        timestamp: Option<&str>,
    ) -> Result<i64> {
        let mut url = self.table_url(table, "version")?;
        if let Some(timestamp) = timestamp {
            url.query_pairs_mut()
                .append_pair("startingTimestamp", timestamp);
        }
        let request = self.http.get(url);
        let (version, _) = self.send(request, &table.qualified()).await?;
        version.ok_or_else(|| missing_version(table))
    }

    /// The table's commits, oldest first, from Wavelake's `history`
    /// extension of the protocol; servers without it answer
    /// [`Error::TableNotFound`].
    pub async fn history(&self, table: &SharedTableName) -> Result<Vec<CommitEntry>> {
        let url = self.table_url(table, "history")?;
        let what = format!("{} history", table.qualified());
        let (_, bytes) = self.send(self.http.get(url), &what).await?;
        let page: Page<HistoryItem> =
            serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                path: what,
                reason: format!("not a history listing: {e}"),
            })?;
        Ok(page.items.into_iter().map(CommitEntry::from).collect())
    }

    /// The table's files as presigned URLs, in the delta response format
    /// (deletion vectors and column mapping intact).
    pub async fn query(
        &self,
        table: &SharedTableName,
        options: &QueryOptions,
    ) -> Result<SharedFiles> {
        let url = self.table_url(table, "query")?;
        let mut body = serde_json::Map::new();
        if let Some(version) = options.version {
            body.insert("version".into(), version.into());
        }
        if let Some(timestamp) = &options.timestamp {
            body.insert("timestamp".into(), timestamp.clone().into());
        }
        if let Some(limit) = options.limit_hint {
            body.insert("limitHint".into(), limit.into());
        }
        if let Some(hints) = &options.json_predicate_hints {
            body.insert("jsonPredicateHints".into(), hints.clone().into());
        }
        if options.include_refresh_token {
            body.insert("includeRefreshToken".into(), true.into());
        }
        if let Some(token) = &options.refresh_token {
            body.insert("refreshToken".into(), token.clone().into());
        }
        let request = self
            .http
            .post(url)
            .header(
                "delta-sharing-capabilities",
                format!("responseformat=delta,parquet;readerfeatures={READER_FEATURES}"),
            )
            .header("content-type", "application/json")
            .body(serde_json::Value::Object(body).to_string());
        let (version, bytes) = self.send(request, &table.qualified()).await?;
        let version = version.ok_or_else(|| missing_version(table))?;
        parse_query_response(&bytes, version)
    }

    /// Follows `table`'s commits (`…/tables/{t}/events`, a Wavelake
    /// extension; other servers answer 404, a [`Error::TableNotFound`]).
    pub async fn subscribe(
        &self,
        table: &SharedTableName,
        options: &super::subscription::SubscribeOptions,
    ) -> Result<super::subscription::Subscription> {
        let mut url = self.table_url(table, "events")?;
        if options.changes {
            url.query_pairs_mut().append_pair("changes", "true");
        }
        if let Some(version) = options.from_version {
            if version < 0 {
                return Err(Error::InvalidArgument(format!(
                    "a subscription starts at a version, 0 or more, not {version}"
                )));
            }
            url.query_pairs_mut()
                .append_pair("from_version", &version.to_string());
        }
        super::subscription::Subscription::open(self.http.clone(), url, self.token.clone()).await
    }

    fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.endpoint.clone();
        url.path_segments_mut()
            .map_err(|()| Error::InvalidArgument(format!("{} cannot be a base", self.endpoint)))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// `…/shares/S/schemas/C/tables/T/ACTION` (with a trailing `/` when
    /// `action` is empty: the table's own URL).
    pub(crate) fn table_url(&self, table: &SharedTableName, action: &str) -> Result<Url> {
        self.url(&[
            "shares",
            &table.share,
            "schemas",
            &table.schema,
            "tables",
            &table.name,
            action,
        ])
    }

    /// Every page of a listing.
    async fn pages<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<Vec<T>> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = self.url(segments)?;
            if let Some(token) = &token {
                url.query_pairs_mut().append_pair("pageToken", token);
            }
            let (_, bytes) = self.send(self.http.get(url), &segments.join("/")).await?;
            let page: Page<T> = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
                path: segments.join("/"),
                reason: format!("not a Delta Sharing listing: {e}"),
            })?;
            items.extend(page.items);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) if token.as_ref() != Some(&next) => token = Some(next),
                _ => return Ok(items),
            }
        }
    }

    /// Sends an authorized request; the `Delta-Table-Version` header and
    /// the body, or an error that says what the server refused.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<(Option<i64>, bytes::Bytes)> {
        let request = request.bearer_auth(&self.token);
        let what = what.to_owned();
        run_send(async move {
            let response = request
                .send()
                .await
                .map_err(|e| crate::storage::storage_error(&what, e))?;
            let status = response.status();
            let version = response
                .headers()
                .get("delta-table-version")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let body = response
                .bytes()
                .await
                .map_err(|e| crate::storage::storage_error(&what, e))?;
            if status.is_success() {
                return Ok((version, body));
            }
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| format!("HTTP status {status}"));
            Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Error::AccessDenied {
                    reason: format!("{what}: {message}"),
                },
                StatusCode::NOT_FOUND => Error::TableNotFound {
                    location: what,
                    reason: message,
                },
                StatusCode::BAD_REQUEST => Error::InvalidArgument(format!("{what}: {message}")),
                _ => crate::storage::storage_error(&what, message),
            })
        })
        .await
    }
}

fn missing_version(table: &SharedTableName) -> Error {
    Error::Corrupt {
        path: table.qualified(),
        reason: "the server sent no Delta-Table-Version header".into(),
    }
}
