//! `GET …/changes`: a shared table's change data feed between two versions
//! or timestamps, as the files a client reads directly. Change files
//! (`cdf`) carry their own `_change_type`; added and removed files are
//! inserts and deletes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use wavelake_sharing::lines::PartitionValues;
use wavelake_sharing::{
    DeltaFile, FileLine, MetadataLine, ParquetFile, ResponseLine, SingleAction,
};

use super::materialize::{self, needs_copy};
use super::{
    Answer, Format, file_id, metadata_line, ndjson, open_shared, protocol_line, response_format,
    sign_file, signed_deletion_vector,
};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::shares::SharedTable;
use crate::state::AppState;
use roaring::RoaringTreemap;
use wavelake_engine::changes::{ChangeAction, ChangeFeed, ChangeFile};
use wavelake_engine::log::TableState;
use wavelake_engine::protocol::{Add, DeletionVectorDescriptor, Metadata, Remove};
use wavelake_engine::schema::ColumnMappingMode;
use wavelake_engine::{Snapshot, Table};

/// The range asked for.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ChangesQuery {
    starting_version: Option<i64>,
    starting_timestamp: Option<String>,
    ending_version: Option<i64>,
    ending_timestamp: Option<String>,
}

fn millis(text: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| ApiError::bad_request(format!("timestamp {text:?} is not RFC 3339: {e}")))
}

/// The change data feed of a shared table.
pub(super) async fn table_changes(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    Path((share, schema, name)): Path<(String, String, String)>,
    Query(query): Query<ChangesQuery>,
) -> Answer<Response> {
    let (shared, table) = open_shared(&state, &principal, &share, &schema, &name).await?;
    let start = match (query.starting_version, &query.starting_timestamp) {
        (Some(version), _) => version,
        (None, Some(text)) => table.version_at_or_after(millis(text)?).await?,
        (None, None) => {
            return Err(ApiError::bad_request(
                "say where the changes start: startingVersion or startingTimestamp",
            )
            .into());
        }
    };
    let end = match (query.ending_version, &query.ending_timestamp) {
        (Some(version), _) => Some(version),
        (None, Some(text)) => Some(table.snapshot_at_timestamp(millis(text)?).await?.version()),
        (None, None) => None,
    };
    let feed = table.changes(start, end).await?;
    let column_mapped = feed.snapshot.column_mapping() != ColumnMappingMode::None;
    let has_dvs = feed.files.iter().any(|f| match &f.action {
        ChangeAction::Add(add) => add.deletion_vector.is_some(),
        ChangeAction::Remove(remove) => remove.deletion_vector.is_some(),
        ChangeAction::DeletionVectorChange { .. } => true,
        ChangeAction::Cdc(_) => false,
    });
    let format = response_format(&headers, column_mapped || has_dvs);
    let mut lines = vec![
        protocol_line(format, &feed.snapshot),
        start_metadata_line(format, &feed),
    ];
    let mut snapshots = HashMap::new();
    for file in &feed.files {
        match format {
            Format::Parquet => lines
                .extend(parquet_lines(&state, &shared, &table, &feed, file, &mut snapshots).await?),
            Format::Delta => lines.extend(delta_lines(&state, &shared, &table, file).await?),
        }
    }
    metrics::counter!("wavelake_sharing_change_queries_total").increment(1);
    ndjson(lines, feed.start, format)
}

/// The metadata line, with the starting version: clients of the delta
/// format rebuild a log that starts there.
fn start_metadata_line(format: Format, feed: &ChangeFeed) -> ResponseLine<'static> {
    let mut line = metadata_line(format, &feed.snapshot);
    match &mut line.meta_data {
        Some(MetadataLine::Delta { version, .. }) => *version = Some(feed.start),
        Some(MetadataLine::Parquet(metadata)) => metadata.version = Some(feed.start),
        None => {}
    }
    line
}

/// Signs a path as the log (or a copy) names it.
async fn sign(
    state: &AppState,
    shared: &SharedTable,
    table: &Table,
    path: &str,
) -> Answer<(String, i64)> {
    let resolved = wavelake_engine::storage::resolve_data_path(table.root(), path);
    sign_file(state, shared, table, &resolved).await
}

/// The file lines of the parquet format for one change: `cdf`, `add` or
/// `remove`, with files that carry deletion vectors or physical column
/// names replaced by plain copies holding just the changed rows.
async fn parquet_lines(
    state: &AppState,
    shared: &SharedTable,
    table: &Table,
    feed: &ChangeFeed,
    file: &ChangeFile,
    snapshots: &mut HashMap<i64, Snapshot>,
) -> Answer<Vec<ResponseLine<'static>>> {
    let line = match &file.action {
        ChangeAction::Cdc(cdc) if needs_copy(&feed.snapshot, &cdc.as_add()) => {
            // Physical column names: a copy under logical names, read
            // through a one-file snapshot whose schema has the change type.
            let add = cdc.as_add();
            let metadata = with_change_type(&feed.snapshot)?;
            let snapshot = one_file_snapshot(&feed.snapshot, metadata, add.clone())?;
            let copy = materialize::materialize(table, &snapshot, &add).await?;
            let (url, expires) = sign(state, shared, table, &copy.path).await?;
            let values = super::logical_partition_values(&snapshot, &add);
            ChangeKind::Cdf.line(file, url, file_id(&copy.path), values, copy.size, expires)
        }
        ChangeAction::Cdc(cdc) => {
            let (url, expires) = sign(state, shared, table, &cdc.path).await?;
            let values = cdc.partition_values.clone();
            ChangeKind::Cdf.line(file, url, file_id(&cdc.path), values, cdc.size, expires)
        }
        ChangeAction::Add(add) => {
            let snapshot = holding(table, feed, add, file.version, snapshots).await?;
            plain_line(
                state,
                shared,
                table,
                feed,
                file,
                ChangeKind::Add,
                add,
                &snapshot,
            )
            .await?
        }
        ChangeAction::Remove(remove) => {
            let add = remove.as_add();
            let snapshot = holding(table, feed, &add, file.version - 1, snapshots).await?;
            plain_line(
                state,
                shared,
                table,
                feed,
                file,
                ChangeKind::Remove,
                &add,
                &snapshot,
            )
            .await?
        }
        ChangeAction::DeletionVectorChange { remove, add } => {
            let rows = table.changed_rows(remove, add).await?;
            let mut lines = Vec::new();
            for (kind, selected) in [
                (ChangeKind::Remove, &rows.deleted),
                (ChangeKind::Add, &rows.restored),
            ] {
                if selected.is_empty() {
                    continue;
                }
                // A copy of just the selected rows: every other row is
                // marked deleted by an inline vector of a one-file snapshot.
                let mut others = RoaringTreemap::new();
                others.insert_range(0..rows.num_rows);
                others -= selected;
                let mut only = Add::clone(add);
                only.deletion_vector = Some(DeletionVectorDescriptor::inline(&others));
                let metadata = feed.snapshot.metadata().clone();
                let snapshot = one_file_snapshot(&feed.snapshot, metadata, only.clone())?;
                lines.push(
                    plain_line(state, shared, table, feed, file, kind, &only, &snapshot).await?,
                );
            }
            return Ok(lines);
        }
    };
    Ok(vec![line])
}

/// The snapshot to copy `add` from: the table at `version`, loaded once per
/// version, and only when the file needs a copy (otherwise the feed's own).
async fn holding(
    table: &Table,
    feed: &ChangeFeed,
    add: &Add,
    version: i64,
    snapshots: &mut HashMap<i64, Snapshot>,
) -> Answer<Snapshot> {
    if !needs_copy(&feed.snapshot, add) {
        return Ok(feed.snapshot.clone());
    }
    if let Some(snapshot) = snapshots.get(&version) {
        return Ok(snapshot.clone());
    }
    let snapshot = table.snapshot_at(Some(version)).await?;
    snapshots.insert(version, snapshot.clone());
    Ok(snapshot)
}

/// `snapshot`'s metadata with the `_change_type` column change files carry
/// added to its schema (under column mapping, with its own name as physical
/// name).
fn with_change_type(snapshot: &Snapshot) -> Answer<Metadata> {
    let mut schema: Value =
        serde_json::from_str(&snapshot.metadata().schema_string).map_err(ApiError::internal)?;
    let mut field_metadata = serde_json::Map::new();
    if snapshot.column_mapping() != ColumnMappingMode::None {
        let next_id = snapshot
            .metadata()
            .property("delta.columnMapping.maxColumnId")
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
            + 1;
        field_metadata.insert("delta.columnMapping.id".into(), json!(next_id));
        field_metadata.insert(
            "delta.columnMapping.physicalName".into(),
            json!("_change_type"),
        );
    }
    if let Some(fields) = schema.get_mut("fields").and_then(Value::as_array_mut) {
        fields.push(
            json!({"name": "_change_type", "type": "string", "nullable": true,
            "metadata": field_metadata}),
        );
    }
    let mut metadata = snapshot.metadata().clone();
    metadata.schema_string = schema.to_string();
    Ok(metadata)
}

/// `template`'s table, with `metadata`, and `add` as its only file.
fn one_file_snapshot(template: &Snapshot, metadata: Metadata, add: Add) -> Answer<Snapshot> {
    let state = TableState {
        version: template.version(),
        protocol: template.protocol().clone(),
        metadata,
        files: vec![add],
        txns: HashMap::new(),
        domains: HashMap::new(),
        timestamp: template.timestamp(),
    };
    Ok(Snapshot::try_new(state, template.root().clone())?)
}

/// An `add` or `remove` line of the parquet format for `add` as `snapshot`
/// has it, copied when the client could not read it as it is.
#[allow(clippy::too_many_arguments)]
async fn plain_line(
    state: &AppState,
    shared: &SharedTable,
    table: &Table,
    feed: &ChangeFeed,
    file: &ChangeFile,
    kind: ChangeKind,
    add: &Add,
    snapshot: &Snapshot,
) -> Answer<ResponseLine<'static>> {
    let (path, size, stats, partition_values) = if needs_copy(&feed.snapshot, add) {
        let copy = materialize::materialize(table, snapshot, add).await?;
        let values = super::logical_partition_values(snapshot, add);
        (copy.path, copy.size, copy.stats, values)
    } else {
        (
            add.path.clone(),
            add.size,
            add.stats.clone(),
            add.partition_values.clone(),
        )
    };
    let (url, expires) = sign(state, shared, table, &path).await?;
    let mut line = kind.line(file, url, file_id(&path), partition_values, size, expires);
    if let (ChangeKind::Add, Some(added)) = (kind, line.add.as_mut()) {
        added.stats = stats.map(Cow::Owned);
    }
    Ok(line)
}

/// The kinds of lines of the parquet format's change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChangeKind {
    /// Rows inserted (a file added).
    Add,
    /// Rows deleted (a file removed).
    Remove,
    /// A change data file.
    Cdf,
}

impl ChangeKind {
    /// The line for a file of this kind made by `change`'s commit.
    fn line(
        self,
        change: &ChangeFile,
        url: String,
        id: String,
        partition_values: PartitionValues,
        size: i64,
        expires: i64,
    ) -> ResponseLine<'static> {
        let file = ParquetFile {
            url,
            id,
            partition_values: Cow::Owned(partition_values),
            size,
            stats: None,
            expiration_timestamp: Some(expires),
            version: Some(change.version),
            timestamp: Some(change.timestamp),
        };
        match self {
            Self::Add => ResponseLine {
                add: Some(file),
                ..ResponseLine::default()
            },
            Self::Remove => ResponseLine {
                remove: Some(file),
                ..ResponseLine::default()
            },
            Self::Cdf => ResponseLine {
                cdf: Some(file),
                ..ResponseLine::default()
            },
        }
    }
}

/// The file lines of the delta format for one change: the log actions
/// themselves, their paths replaced by signed URLs.
async fn delta_lines(
    state: &AppState,
    shared: &SharedTable,
    table: &Table,
    file: &ChangeFile,
) -> Answer<Vec<ResponseLine<'static>>> {
    let line = |id: String, action: SingleAction, expires: i64| {
        ResponseLine::file(FileLine::Delta(Box::new(DeltaFile {
            id,
            delta_single_action: action,
            version: Some(file.version),
            timestamp: Some(file.timestamp),
            expiration_timestamp: Some(expires),
        })))
    };
    let added = |add: Add| SingleAction {
        add: Some(add),
        ..SingleAction::default()
    };
    let removed = |remove: Remove| SingleAction {
        remove: Some(remove),
        ..SingleAction::default()
    };
    Ok(match &file.action {
        ChangeAction::Cdc(cdc) => {
            let (url, expires) = sign(state, shared, table, &cdc.path).await?;
            let mut cdc = cdc.clone();
            let id = file_id(&cdc.path);
            cdc.path = url;
            let action = SingleAction {
                cdc: Some(cdc),
                ..SingleAction::default()
            };
            vec![line(id, action, expires)]
        }
        ChangeAction::Add(add) => {
            let (id, add, expires) = signed_add(state, shared, table, add).await?;
            vec![line(id, added(add), expires)]
        }
        ChangeAction::Remove(remove) => {
            let (id, remove, expires) = signed_remove(state, shared, table, remove).await?;
            vec![line(id, removed(remove), expires)]
        }
        ChangeAction::DeletionVectorChange { remove, add } => {
            let (id, remove, expires) = signed_remove(state, shared, table, remove).await?;
            let first = line(id, removed(remove), expires);
            let (id, add, expires) = signed_add(state, shared, table, add).await?;
            vec![first, line(id, added(add), expires)]
        }
    })
}

async fn signed_add(
    state: &AppState,
    shared: &SharedTable,
    table: &Table,
    add: &Add,
) -> Answer<(String, Add, i64)> {
    let (url, expires) = sign(state, shared, table, &add.path).await?;
    let mut signed = add.clone();
    signed.path = url;
    signed.deletion_vector =
        signed_deletion_vector(state, shared, table, add.deletion_vector.as_ref()).await?;
    Ok((file_id(&add.path), signed, expires))
}

async fn signed_remove(
    state: &AppState,
    shared: &SharedTable,
    table: &Table,
    remove: &Remove,
) -> Answer<(String, Remove, i64)> {
    let (url, expires) = sign(state, shared, table, &remove.path).await?;
    let mut signed = remove.clone();
    signed.path = url;
    signed.deletion_vector =
        signed_deletion_vector(state, shared, table, remove.deletion_vector.as_ref()).await?;
    Ok((file_id(&remove.path), signed, expires))
}
