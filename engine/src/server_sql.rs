//! A client of a Wavelake server's SQL API (`POST /api/v1/sql`), for a page
//! or package that sends the server a query too large to run itself: the
//! answer as an Arrow IPC stream, with where the server ran it (in its own
//! process or on its cluster), why, and what it read.

use arrow::array::RecordBatch;
use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use crate::sharing::SharedCatalog;
use crate::{Error, ReadEstimate, Result, SqlSession};

/// Response header naming where a statement ran: `server` or `cluster`.
pub const RAN_ON_HEADER: &str = "wavelake-ran-on";
/// Response header saying why it ran there.
pub const REASON_HEADER: &str = "wavelake-placement-reason";
/// Response header with the bytes of the data files the query read after
/// partition and statistics pruning, from the Delta log.
pub const READ_BYTES_HEADER: &str = "wavelake-read-bytes";
/// Response header with the number of those files.
pub const READ_FILES_HEADER: &str = "wavelake-read-files";

/// The Arrow IPC stream media type the client asks for.
const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// The SQL API of one Wavelake server, with a bearer token.
#[derive(Debug, Clone)]
pub struct ServerSql {
    url: Url,
    token: String,
    http: reqwest::Client,
}

/// A query's answer from the server.
#[derive(Debug, Clone)]
pub struct ServerAnswer {
    /// The result as an Arrow IPC stream.
    pub ipc: bytes::Bytes,
    /// Where it ran: `server` or `cluster`.
    pub ran_on: String,
    /// Why it ran there.
    pub reason: String,
    /// Bytes of the data files it read, after pruning (from the log).
    pub read_bytes: Option<u64>,
    /// Data files it read.
    pub read_files: Option<u64>,
}

impl ServerAnswer {
    /// The result's record batches.
    pub fn batches(&self) -> Result<Vec<RecordBatch>> {
        let reader = arrow::ipc::reader::StreamReader::try_new(
            std::io::Cursor::new(self.ipc.clone()),
            None,
        )?;
        Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
    }
}

/// The error shape of the API: `{"error": {"code", "message"}}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

impl ServerSql {
    /// The SQL API at `url` (`https://host/api/v1/sql`).
    pub fn new(url: &str, token: &str) -> Result<Self> {
        let url = Url::parse(url)
            .map_err(|e| Error::InvalidArgument(format!("bad SQL API URL {url:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::InvalidArgument(format!(
                "the SQL API URL {url} is not http(s)"
            )));
        }
        Ok(Self {
            url,
            token: token.to_owned(),
            http: reqwest::Client::new(),
        })
    }

    /// The SQL API of the Wavelake server whose Delta Sharing endpoint is
    /// `endpoint` (`https://host/delta-sharing/` → `https://host/api/v1/sql`);
    /// `None` when the endpoint is not at `/delta-sharing/`, where
    /// Wavelake serves it.
    pub fn beside_sharing_endpoint(endpoint: &str, token: &str) -> Option<Self> {
        let endpoint = Url::parse(endpoint).ok()?;
        let path = endpoint.path().trim_end_matches('/');
        let base = path.strip_suffix("/delta-sharing")?;
        let url = endpoint.join(&format!("{base}/api/v1/sql")).ok()?;
        Self::new(url.as_str(), token).ok()
    }

    /// The API's URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Runs one statement on the server; unqualified table names resolve
    /// in `namespace` (a token of several namespaces must name one).
    pub async fn run(&self, sql: &str, namespace: Option<&str>) -> Result<ServerAnswer> {
        let mut body = serde_json::json!({ "sql": sql });
        if let Some(namespace) = namespace {
            body["namespace"] = namespace.into();
        }
        let body = body.to_string();
        let response = self
            .http
            .post(self.url.clone())
            .bearer_auth(&self.token)
            .header("accept", ARROW_STREAM)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| crate::storage::storage_error(self.url.as_str(), e))?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (ran_on, reason) = (header(RAN_ON_HEADER), header(REASON_HEADER));
        let read_bytes = header(READ_BYTES_HEADER).and_then(|v| v.parse().ok());
        let read_files = header(READ_FILES_HEADER).and_then(|v| v.parse().ok());
        let is_arrow = header("content-type").is_some_and(|t| t.starts_with(ARROW_STREAM));
        let bytes = response
            .bytes()
            .await
            .map_err(|e| crate::storage::storage_error(self.url.as_str(), e))?;
        if !status.is_success() {
            return Err(self.refusal(status, &bytes));
        }
        match (ran_on, is_arrow) {
            (Some(ran_on), true) => Ok(ServerAnswer {
                ipc: bytes,
                ran_on,
                reason: reason.unwrap_or_default(),
                read_bytes,
                read_files,
            }),
            _ => Err(Error::NoSqlApi {
                url: self.url.to_string(),
                reason: format!("HTTP {status} without a Wavelake answer"),
            }),
        }
    }

    /// The error for a refused request, by the server's error code.
    fn refusal(&self, status: StatusCode, body: &[u8]) -> Error {
        let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) else {
            return Error::NoSqlApi {
                url: self.url.to_string(),
                reason: format!("HTTP {status} without a Wavelake error"),
            };
        };
        let ErrorDetail { code, message } = error;
        match code.as_str() {
            "UNAUTHORIZED" => Error::AccessDenied { reason: message },
            "NOT_ALLOWED" | "FORBIDDEN" => Error::NotAllowed(message),
            "TABLE_NOT_FOUND" | "NOT_FOUND" => Error::TableNotFound {
                location: self.url.to_string(),
                reason: message,
            },
            "SQL_ERROR" | "QUERY_ERROR" | "BAD_REQUEST" => Error::Sql(message),
            "INVALID_ARGUMENT" => Error::InvalidArgument(message),
            "CLUSTER_UNAVAILABLE" => Error::ClusterUnavailable {
                scheduler: "the server's cluster".into(),
                reason: message,
            },
            _ => Error::ServerRefused {
                status: status.as_u16(),
                code,
                message,
            },
        }
    }
}

/// Bytes a query may read in a page by default: a browser tab reads a few
/// hundred megabytes of Parquet in seconds, not gigabytes.
pub const DEFAULT_MAX_PAGE_BYTES: u64 = 256 << 20;

/// Where a page's query goes, and why.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Whether it goes to the server.
    pub to_server: bool,
    /// Why, in words.
    pub reason: String,
    /// What it would read, when that was estimated.
    pub estimate: Option<ReadEstimate>,
}

/// The server a page's session can send queries to, and from how many
/// bytes it should.
#[derive(Debug, Clone)]
pub struct Offload {
    /// The server's SQL API, or why there is none.
    server: std::result::Result<ServerSql, String>,
    /// Bytes a query may read in the page.
    pub max_page_bytes: u64,
}

impl Offload {
    /// Queries may go to `server` when they read more than
    /// `max_page_bytes`.
    pub fn to(server: ServerSql, max_page_bytes: u64) -> Self {
        Self {
            server: Ok(server),
            max_page_bytes,
        }
    }

    /// No server: every query runs in the page, for `reason`.
    pub fn none(reason: impl Into<String>) -> Self {
        Self {
            server: Err(reason.into()),
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
        }
    }

    /// The server's SQL API, or why there is none.
    pub fn server(&self) -> std::result::Result<&ServerSql, &str> {
        self.server.as_ref().map_err(String::as_str)
    }

    /// Whether `query` should leave the page: when every table it names is
    /// one of `shared`'s (the server's) and it would read more than the
    /// page's limit, estimated from the Delta log of its tables (opened in
    /// `engine` already) before any data is fetched.
    pub async fn decide(
        &self,
        engine: &SqlSession,
        shared: Option<&SharedCatalog>,
        query: &str,
    ) -> Result<Decision> {
        let estimate = engine.estimate_reads(query).await?;
        let (bytes, files, limit) = (estimate.bytes, estimate.files, self.max_page_bytes);
        let local = || {
            engine
                .table_references(query)
                .into_iter()
                .find(|name| shared.is_none_or(|catalog| catalog.table(name).is_none()))
        };
        let reason = if let Err(why) = &self.server {
            format!("it runs in the page: {why}")
        } else if let Some(local) = local() {
            format!("{local} is not a table of the server, so only the page can read it")
        } else if let Some(source) = &estimate.other_source {
            format!("{source} is read in the page")
        } else if bytes > limit {
            return Ok(Decision {
                to_server: true,
                reason: format!(
                    "it reads {bytes} bytes in {files} files, more than the page's limit of \
                     {limit} bytes"
                ),
                estimate: Some(estimate),
            });
        } else {
            format!(
                "it reads {bytes} bytes in {files} files, within the page's limit of {limit} bytes"
            )
        };
        Ok(Decision {
            to_server: false,
            reason,
            estimate: Some(estimate),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sql_api_sits_beside_a_wavelake_sharing_endpoint() {
        let api = |endpoint| {
            ServerSql::beside_sharing_endpoint(endpoint, "t").map(|api| api.url().to_string())
        };
        assert_eq!(
            api("https://lake.example.com/delta-sharing/").as_deref(),
            Some("https://lake.example.com/api/v1/sql")
        );
        assert_eq!(
            api("http://127.0.0.1:8080/prefix/delta-sharing").as_deref(),
            Some("http://127.0.0.1:8080/prefix/api/v1/sql")
        );
        assert_eq!(api("https://sharing.example.com/api/2.0/"), None);
        assert_eq!(api("not a url"), None);
        assert!(ServerSql::new("ftp://host/api/v1/sql", "t").is_err());
    }

    #[test]
    fn refusals_keep_the_kind_the_server_named() {
        let api = ServerSql::new("http://host/api/v1/sql", "t").unwrap();
        let refusal = |status: u16, body: &str| {
            api.refusal(StatusCode::from_u16(status).unwrap(), body.as_bytes())
        };
        let body = |code: &str| format!(r#"{{"error":{{"code":"{code}","message":"m"}}}}"#);
        assert!(matches!(refusal(403, &body("NOT_ALLOWED")), Error::NotAllowed(m) if m == "m"));
        assert!(matches!(
            refusal(401, &body("UNAUTHORIZED")),
            Error::AccessDenied { .. }
        ));
        assert!(matches!(refusal(400, &body("SQL_ERROR")), Error::Sql(_)));
        assert!(matches!(
            refusal(503, &body("CLUSTER_UNAVAILABLE")),
            Error::ClusterUnavailable { .. }
        ));
        assert!(matches!(
            refusal(429, &body("TOO_MANY_REQUESTS")),
            Error::ServerRefused { status: 429, ref code, .. } if code == "TOO_MANY_REQUESTS"
        ));
        assert!(matches!(
            refusal(404, "<html>not here</html>"),
            Error::NoSqlApi { .. }
        ));
    }
}
