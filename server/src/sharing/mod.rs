//! Delta Sharing: the open REST protocol under `/delta-sharing/` over the
//! shares of [`crate::shares`], managed in SQL by [`sql`]. Every file in a response
//! is a URL the client reads directly: presigned by S3, or signed by this
//! server (see [`crate::signing`]).

mod changes;
mod events;
mod file_lines;
mod history;
pub mod materialize;
mod predicate;
pub mod sql;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::error::ApiError;
use crate::shares::SharedTable;
use crate::signing::file_url;
use crate::state::AppState;
use std::borrow::Cow;

use wavelake_engine::protocol::{Add, DeletionVectorDescriptor, DvLocation};
use wavelake_engine::{Snapshot, Table};
use wavelake_sharing::lines::PartitionValues;
use wavelake_sharing::{
    DeltaFile, EndStream, ErrorResponse, FileLine, MetadataLine, Page, ParquetFile,
    ParquetMetadata, ProtocolLine, ResponseLine, SchemaItem, ShareItem, ShareResponse,
    SharedTableName, SingleAction,
};

/// The routes, to nest under `/delta-sharing`.
pub fn routes(state: &Arc<AppState>) -> axum::Router<Arc<AppState>> {
    let table = "/shares/{share}/schemas/{schema}/tables/{table}";
    let admitted = || axum::middleware::from_fn_with_state(state.clone(), admit);
    axum::Router::new()
        .route("/shares", get(list_shares))
        .route("/shares/{share}", get(get_share))
        .route("/shares/{share}/schemas", get(list_schemas))
        .route("/shares/{share}/schemas/{schema}/tables", get(list_tables))
        .route("/shares/{share}/all-tables", get(list_all_tables))
        .route(&format!("{table}/version"), get(table_version))
        .route(&format!("{table}/metadata"), get(table_metadata))
        .route(
            &format!("{table}/query"),
            post(query_table).layer(admitted()),
        )
        .route(
            &format!("{table}/changes"),
            get(changes::table_changes).layer(admitted()),
        )
        .route(&format!("{table}/history"), get(history::table_history))
        .route(&format!("{table}/events"), get(events::table_events))
        .layer(axum::middleware::from_fn(rejections_in_protocol_shape))
}

/// Extractor rejections (a body that is not JSON, a bad query parameter)
/// in the protocol's error shape.
async fn rejections_in_protocol_shape(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match crate::error::from_rejection(next.run(request).await).await {
        Ok(error) => SharingError(error).into_response(),
        Err(response) => response,
    }
}

/// Runs a query or changes request only when the server and its caller
/// have room for one more, answering in the protocol's error shape.
async fn admit(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match crate::admission::admission_for(&state.tokens, &state.admission, &mut request) {
        Ok(admitted) => crate::admission::hold_until_sent(next.run(request).await, admitted),
        Err(refusal) => SharingError(ApiError::too_many(refusal)).into_response(),
    }
}

/// Errors in the protocol's shape: `{"errorCode", "message"}`.
pub struct SharingError(ApiError);

impl From<ApiError> for SharingError {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl From<wavelake_engine::Error> for SharingError {
    fn from(err: wavelake_engine::Error) -> Self {
        Self(err.into())
    }
}

impl IntoResponse for SharingError {
    fn into_response(self) -> Response {
        let code = match self.0.status {
            StatusCode::NOT_FOUND => "RESOURCE_DOES_NOT_EXIST",
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => "PERMISSION_DENIED",
            StatusCode::BAD_REQUEST => "INVALID_PARAMETER_VALUE",
            StatusCode::TOO_MANY_REQUESTS => "RESOURCE_EXHAUSTED",
            _ => "INTERNAL_ERROR",
        };
        let mut response = (
            self.0.status,
            Json(ErrorResponse {
                error_code: code.to_owned(),
                message: self.0.message,
            }),
        )
            .into_response();
        if let Some(seconds) = self.0.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

type Answer<T> = Result<T, SharingError>;

/// Prefix of the share through which a namespace's own readers (namespace
/// tokens and admins) see its tables: `namespace-sales` holds schema
/// `sales` with every table of namespace `sales`. Configured share names
/// are identifiers, so they never collide with it.
pub const NAMESPACE_SHARE_PREFIX: &str = "namespace-";

/// The namespace a share name stands for, when it is a namespace share.
fn namespace_of_share(share: &str) -> Option<&str> {
    share.strip_prefix(NAMESPACE_SHARE_PREFIX)
}

/// The recipient a principal reads configured shares as: `Some(None)` for
/// admins (every share), `None` for tokens that are not a recipient's.
fn reader(principal: &Principal) -> Option<Option<String>> {
    if principal.admin {
        return Some(None);
    }
    principal.recipient.clone().map(Some)
}

/// Refuses tokens that can read neither shares nor namespaces.
fn check_reader(principal: &Principal) -> Answer<()> {
    if reader(principal).is_none() && principal.namespaces.is_empty() {
        return Err(ApiError::forbidden(
            "this token is neither a Delta Sharing recipient's nor a namespace's",
        )
        .into());
    }
    Ok(())
}

fn not_found(what: String) -> SharingError {
    ApiError::not_found(format!("{what} does not exist or is not shared with you")).into()
}

async fn list_shares(
    State(state): State<Arc<AppState>>,
    principal: Principal,
) -> Answer<Json<Page<ShareItem>>> {
    check_reader(&principal)?;
    let mut names = match reader(&principal) {
        Some(recipient) => state
            .shares
            .snapshot()
            .await
            .visible_shares(recipient.as_deref()),
        None => Vec::new(),
    };
    for namespace in state.readable_namespaces(&principal).await? {
        if !state.namespace_tables(&namespace).await?.is_empty() {
            names.push(format!("{NAMESPACE_SHARE_PREFIX}{namespace}"));
        }
    }
    let items = names.into_iter().map(|name| ShareItem { name }).collect();
    Ok(Json(Page::whole(items)))
}

/// A readable namespace's share: every table of the namespace.
async fn namespace_share(
    state: &AppState,
    principal: &Principal,
    namespace: &str,
) -> Answer<crate::shares::Share> {
    if crate::names::check_name("namespace", namespace).is_err() || !principal.can_read(namespace) {
        return Err(not_found(format!(
            "share {NAMESPACE_SHARE_PREFIX}{namespace}"
        )));
    }
    let tables = state
        .namespace_tables(namespace)
        .await?
        .into_iter()
        .map(|table| SharedTable {
            schema: namespace.to_owned(),
            name: table.clone(),
            namespace: namespace.to_owned(),
            table,
        })
        .collect();
    Ok(crate::shares::Share {
        tables,
        comment: Some(format!("the tables of namespace {namespace}")),
    })
}

async fn visible_share(
    state: &AppState,
    principal: &Principal,
    share: &str,
) -> Answer<crate::shares::Share> {
    check_reader(principal)?;
    if let Some(namespace) = namespace_of_share(share) {
        return namespace_share(state, principal, namespace).await;
    }
    let Some(recipient) = reader(principal) else {
        return Err(not_found(format!("share {share}")));
    };
    let catalog = state.shares.snapshot().await;
    if !catalog
        .visible_shares(recipient.as_deref())
        .iter()
        .any(|s| s == share)
    {
        return Err(not_found(format!("share {share}")));
    }
    catalog
        .shares
        .get(share)
        .cloned()
        .ok_or_else(|| not_found(format!("share {share}")))
}

async fn get_share(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(share): Path<String>,
) -> Answer<Json<ShareResponse>> {
    visible_share(&state, &principal, &share).await?;
    Ok(Json(ShareResponse {
        share: ShareItem { name: share },
    }))
}

async fn list_schemas(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(share): Path<String>,
) -> Answer<Json<Page<SchemaItem>>> {
    let found = visible_share(&state, &principal, &share).await?;
    let mut schemas: Vec<&str> = found.tables.iter().map(|t| t.schema.as_str()).collect();
    schemas.sort_unstable();
    schemas.dedup();
    let items = schemas
        .into_iter()
        .map(|name| SchemaItem {
            name: name.to_owned(),
            share: share.clone(),
        })
        .collect();
    Ok(Json(Page::whole(items)))
}

/// The listing of `tables` of `share`.
fn table_items(share: &str, tables: &[&SharedTable]) -> Page<SharedTableName> {
    let items = tables
        .iter()
        .map(|t| SharedTableName {
            share: share.to_owned(),
            schema: t.schema.clone(),
            name: t.name.clone(),
        })
        .collect();
    Page::whole(items)
}

async fn list_tables(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((share, schema)): Path<(String, String)>,
) -> Answer<Json<Page<SharedTableName>>> {
    let found = visible_share(&state, &principal, &share).await?;
    let tables: Vec<&SharedTable> = found.tables.iter().filter(|t| t.schema == schema).collect();
    if tables.is_empty() {
        return Err(not_found(format!("schema {share}.{schema}")));
    }
    Ok(Json(table_items(&share, &tables)))
}

async fn list_all_tables(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path(share): Path<String>,
) -> Answer<Json<Page<SharedTableName>>> {
    let found = visible_share(&state, &principal, &share).await?;
    let tables: Vec<&SharedTable> = found.tables.iter().collect();
    Ok(Json(table_items(&share, &tables)))
}

/// The shared table behind a request, opened.
async fn open_shared(
    state: &AppState,
    principal: &Principal,
    share: &str,
    schema: &str,
    name: &str,
) -> Answer<(SharedTable, Table)> {
    check_reader(principal)?;
    let missing = || not_found(format!("table {share}.{schema}.{name}"));
    let shared = match (namespace_of_share(share), reader(principal)) {
        (Some(namespace), _) => {
            let readable = crate::names::check_name("namespace", namespace).is_ok()
                && crate::names::check_name("table", name).is_ok()
                && principal.can_read(namespace)
                && schema == namespace;
            if !readable {
                return Err(missing());
            }
            SharedTable {
                schema: schema.to_owned(),
                name: name.to_owned(),
                namespace: namespace.to_owned(),
                table: name.to_owned(),
            }
        }
        (None, Some(recipient)) => state
            .shares
            .snapshot()
            .await
            .table(recipient.as_deref(), share, schema, name)
            .ok_or_else(missing)?,
        (None, None) => return Err(missing()),
    };
    let location = state.table_location(&shared.namespace, &shared.table);
    let table = state.table(&location)?;
    Ok((shared, table))
}

/// A version or a timestamp (RFC 3339) of the table.
async fn snapshot_at(
    table: &Table,
    version: Option<i64>,
    timestamp: Option<&str>,
) -> Answer<Snapshot> {
    Ok(match (version, timestamp) {
        (Some(version), _) => table.snapshot_at(Some(version)).await?,
        (None, Some(text)) => {
            let at = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
                ApiError::bad_request(format!("timestamp {text:?} is not RFC 3339: {e}"))
            })?;
            table.snapshot_at_timestamp(at.timestamp_millis()).await?
        }
        (None, None) => table.snapshot().await?,
    })
}

/// `?startingTimestamp=`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionQuery {
    starting_timestamp: Option<String>,
}

fn version_header(version: i64) -> [(&'static str, HeaderValue); 1] {
    [(
        "delta-table-version",
        HeaderValue::from_str(&version.to_string()).unwrap_or(HeaderValue::from_static("0")),
    )]
}

async fn table_version(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    Path((share, schema, name)): Path<(String, String, String)>,
    Query(query): Query<VersionQuery>,
) -> Answer<Response> {
    let (_, table) = open_shared(&state, &principal, &share, &schema, &name).await?;
    let snapshot = snapshot_at(&table, None, query.starting_timestamp.as_deref()).await?;
    Ok((version_header(snapshot.version()), "").into_response())
}

/// The response format a client asked for and the table allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Parquet,
    Delta,
}

fn needs_delta(snapshot: &Snapshot) -> Option<&'static str> {
    if snapshot.files().iter().any(|f| f.deletion_vector.is_some()) {
        return Some("deletion vectors");
    }
    if snapshot.column_mapping() != wavelake_engine::schema::ColumnMappingMode::None {
        return Some("column mapping");
    }
    None
}

/// The format to answer in: the client's choice, and where it accepts both,
/// delta when the files would need copies for the parquet format.
fn response_format(headers: &HeaderMap, prefer_delta: bool) -> Format {
    let capabilities = headers
        .get("delta-sharing-capabilities")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let formats: Vec<&str> = capabilities
        .split(';')
        .filter_map(|part| part.trim().strip_prefix("responseformat="))
        .flat_map(|list| list.split(','))
        .map(str::trim)
        .collect();
    let accepts_delta = formats.contains(&"delta");
    let accepts_parquet = formats.is_empty() || formats.contains(&"parquet");
    match (accepts_parquet, accepts_delta) {
        // Both: parquet unless the table's files need copies for it.
        (true, true) if prefer_delta => Format::Delta,
        (true, _) => Format::Parquet,
        (false, _) => Format::Delta,
    }
}

fn protocol_line(format: Format, snapshot: &Snapshot) -> ResponseLine<'static> {
    ResponseLine::protocol(match format {
        Format::Parquet => ProtocolLine::Parquet {
            min_reader_version: 1,
        },
        Format::Delta => ProtocolLine::Delta {
            delta_protocol: snapshot.protocol().clone(),
        },
    })
}

fn metadata_line(format: Format, snapshot: &Snapshot) -> ResponseLine<'static> {
    let metadata = snapshot.metadata();
    ResponseLine::metadata(match format {
        Format::Parquet => MetadataLine::Parquet(ParquetMetadata {
            id: metadata.id.clone(),
            name: metadata.name.clone(),
            description: metadata.description.clone(),
            format: metadata.format.clone(),
            schema_string: metadata.schema_string.clone(),
            partition_columns: metadata.partition_columns.clone(),
            configuration: metadata
                .configuration
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            version: Some(snapshot.version()),
            num_files: Some(snapshot.files().len() as i64),
            size: Some(snapshot.files().iter().map(|f| f.size).sum::<i64>()),
        }),
        Format::Delta => MetadataLine::Delta {
            delta_metadata: metadata.clone(),
            version: Some(snapshot.version()),
        },
    })
}

fn format_header(format: Format) -> (&'static str, HeaderValue) {
    (
        "delta-sharing-capabilities",
        HeaderValue::from_static(match format {
            Format::Parquet => "responseformat=parquet",
            Format::Delta => "responseformat=delta",
        }),
    )
}

fn ndjson(lines: Vec<ResponseLine<'_>>, version: i64, format: Format) -> Answer<Response> {
    let body = file_lines::head(&lines).map_err(ApiError::internal)?;
    Ok(ndjson_body(body.into(), version, format))
}

/// A response of NDJSON lines, with the table version and format headers.
fn ndjson_body(body: axum::body::Body, version: i64, format: Format) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson; charset=utf-8"),
    );
    let [(name, value)] = version_header(version);
    headers.insert(name, value);
    let (name, value) = format_header(format);
    headers.insert(name, value);
    response
}

async fn table_metadata(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    Path((share, schema, name)): Path<(String, String, String)>,
) -> Answer<Response> {
    let (_, table) = open_shared(&state, &principal, &share, &schema, &name).await?;
    let snapshot = table.snapshot().await?;
    let format = response_format(&headers, needs_delta(&snapshot).is_some());
    ndjson(
        vec![
            protocol_line(format, &snapshot),
            metadata_line(format, &snapshot),
        ],
        snapshot.version(),
        format,
    )
}

/// Partition values by logical column name (the log keys them by physical
/// name under column mapping).
fn logical_partition_values(snapshot: &Snapshot, add: &Add) -> PartitionValues {
    let schemas = snapshot.schemas();
    schemas
        .partition_logical
        .iter()
        .zip(&schemas.partition_physical_names)
        .map(|(field, physical)| {
            let value = add.partition_values.get(physical).cloned().flatten();
            (field.name().clone(), value)
        })
        .collect()
}

/// The body of a query.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryRequest {
    #[serde(default)]
    predicate_hints: Option<Vec<String>>,
    #[serde(default)]
    json_predicate_hints: Option<String>,
    #[serde(default)]
    limit_hint: Option<i64>,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    timestamp: Option<String>,
    /// Answer with an `endStreamAction` carrying a refresh token.
    #[serde(default)]
    include_refresh_token: bool,
    /// A refresh token of an earlier answer: the same version again, with
    /// fresh URLs.
    #[serde(default)]
    refresh_token: Option<String>,
}

/// How long a refresh token keeps fetching fresh URLs for its version.
const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The version a query's refresh token pins, if it has one.
fn refreshed_version(
    state: &AppState,
    table: &str,
    request: &QueryRequest,
) -> Result<Option<i64>, ApiError> {
    let Some(token) = &request.refresh_token else {
        return Ok(None);
    };
    state
        .signer
        .check_refresh_token(table, token, crate::signing::now_secs())
        .map(Some)
        .map_err(|refusal| {
            ApiError::bad_request(match refusal {
                crate::signing::Refusal::Expired => {
                    "the refresh token has expired; query the table again"
                }
                crate::signing::Refusal::BadSignature => "the refresh token is not valid here",
            })
        })
}

fn file_id(path: &str) -> String {
    Sha256::digest(path.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn query_table(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    Path((share, schema, name)): Path<(String, String, String)>,
    body: Option<Json<QueryRequest>>,
) -> Answer<Response> {
    let request = body.map(|Json(b)| b).unwrap_or_default();
    // SQL predicate hints are deprecated in favour of JSON ones; both are
    // best effort, and only the JSON ones are applied.
    let _ = &request.predicate_hints;
    let hint = request
        .json_predicate_hints
        .as_deref()
        .and_then(predicate::JsonPredicate::parse);
    let (shared, table) = open_shared(&state, &principal, &share, &schema, &name).await?;
    let qualified = format!("{share}.{schema}.{name}");
    let snapshot = match refreshed_version(&state, &qualified, &request)? {
        Some(version) => snapshot_at(&table, Some(version), None).await?,
        None => snapshot_at(&table, request.version, request.timestamp.as_deref()).await?,
    };
    let format = response_format(&headers, needs_delta(&snapshot).is_some());
    let lifetime = Duration::from_secs(state.config.limits.file_url_lifetime_secs);
    // Every URL of this answer expires no earlier than this.
    let urls_expire = (crate::signing::now_secs() + lifetime.as_secs()) as i64 * 1000;
    let head = file_lines::head(&[
        protocol_line(format, &snapshot),
        metadata_line(format, &snapshot),
    ])
    .map_err(ApiError::internal)?;
    let end = if request.include_refresh_token || request.refresh_token.is_some() {
        let expires = crate::signing::now_secs() + REFRESH_TOKEN_LIFETIME.as_secs();
        let token = state
            .signer
            .refresh_token(&qualified, snapshot.version(), expires);
        let line = ResponseLine::end_stream(EndStream {
            refresh_token: Some(token),
            min_url_expiration_timestamp: Some(urls_expire),
        });
        Some(line.to_json().map_err(ApiError::internal)?)
    } else {
        None
    };
    let version = snapshot.version();
    let lines = file_lines::FileLines {
        state: state.clone(),
        shared,
        table,
        snapshot,
        format,
        hint,
        limit_hint: request.limit_hint,
        end,
        next: 0,
        rows_so_far: 0,
        done: false,
    };
    // The first files are signed before answering, so that a failure there
    // is an error status; one later breaks the body.
    let Some((first, rest)) = lines.next_chunk().await else {
        return Err(ApiError::internal("a query answer without files or end").into());
    };
    let first = first?;
    let tail = futures::stream::unfold(rest, file_lines::FileLines::next_chunk);
    let body = futures::stream::iter([Ok(head), Ok(first)])
        .chain(tail)
        .map(|chunk| chunk.map_err(|error| std::io::Error::other(error.0.message)));
    metrics::counter!("wavelake_sharing_queries_total").increment(1);
    Ok(ndjson_body(
        axum::body::Body::from_stream(body),
        version,
        format,
    ))
}

/// One `file` line: the file's URL, and in the delta format its `add`
/// action with URLs for the data file and its deletion vector.
async fn file_line(
    state: &AppState,
    shared: &SharedTable,
    table: &Table,
    snapshot: &Snapshot,
    add: &Add,
    format: Format,
) -> Answer<String> {
    let sign = |path: String| async move { sign_file(state, shared, table, &path).await };
    let id = file_id(&add.path);
    let line = match format {
        Format::Parquet if materialize::needs_copy(snapshot, add) => {
            let copy = materialize::materialize(table, snapshot, add).await?;
            let (url, expires) = sign(copy.path).await?;
            FileLine::Parquet(ParquetFile {
                url,
                id,
                partition_values: Cow::Owned(logical_partition_values(snapshot, add)),
                size: copy.size,
                stats: copy.stats.map(Cow::Owned),
                expiration_timestamp: Some(expires),
                version: None,
                timestamp: None,
            })
        }
        Format::Parquet => {
            // The common case: the action's own values, borrowed.
            let (url, expires) = sign(snapshot.file_path(add)).await?;
            FileLine::Parquet(ParquetFile {
                url,
                id,
                partition_values: Cow::Borrowed(&add.partition_values),
                size: add.size,
                stats: add.stats.as_deref().map(Cow::Borrowed),
                expiration_timestamp: Some(expires),
                version: None,
                timestamp: None,
            })
        }
        Format::Delta => {
            let (url, expires) = sign(snapshot.file_path(add)).await?;
            let mut action = add.clone();
            action.path = url;
            action.deletion_vector =
                signed_deletion_vector(state, shared, table, add.deletion_vector.as_ref()).await?;
            FileLine::Delta(Box::new(DeltaFile {
                id,
                delta_single_action: SingleAction {
                    add: Some(action),
                    ..SingleAction::default()
                },
                version: None,
                timestamp: None,
                expiration_timestamp: Some(expires),
            }))
        }
    };
    ResponseLine::file(line)
        .to_json()
        .map_err(|e| ApiError::internal(e).into())
}

/// The URL a client reads a shared table's file from (`path` relative to
/// the table root, already resolved), and when it expires.
async fn sign_file(
    state: &AppState,
    shared: &SharedTable,
    table: &Table,
    path: &str,
) -> Answer<(String, i64)> {
    let lifetime = Duration::from_secs(state.config.limits.file_url_lifetime_secs);
    Ok(file_url(
        &state.signer,
        table.storage(),
        &shared.namespace,
        &shared.table,
        path,
        lifetime,
    )
    .await?)
}

/// A deletion vector as the delta format hands it out: a file-backed one
/// becomes an absolute (`p`) signed URL; an inline one stays as it is.
async fn signed_deletion_vector(
    state: &AppState,
    shared: &SharedTable,
    table: &Table,
    dv: Option<&DeletionVectorDescriptor>,
) -> Answer<Option<DeletionVectorDescriptor>> {
    let Some(dv) = dv else {
        return Ok(None);
    };
    let Ok(DvLocation::File { path, .. }) = dv.location() else {
        return Ok(Some(dv.clone()));
    };
    let resolved = wavelake_engine::storage::resolve_data_path(table.root(), &path);
    let (url, _) = sign_file(state, shared, table, &resolved).await?;
    Ok(Some(DeletionVectorDescriptor {
        storage_type: "p".into(),
        path_or_inline_dv: url,
        ..dv.clone()
    }))
}
