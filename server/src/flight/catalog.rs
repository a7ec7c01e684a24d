//! Flight SQL's catalog metadata: one catalog (DataFusion's, which SQL
//! names as `datafusion`), the namespaces the token reads as its schemas,
//! their Delta tables (with Arrow schemas when asked), and what the server
//! is (SQL info).

use std::sync::OnceLock;

use arrow::array::RecordBatch;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables, SqlInfo,
};
use tonic::Status;

use super::{engine_status, status};
use crate::auth::Principal;
use crate::state::AppState;

/// The catalog every table is in.
pub const CATALOG: &str = "datafusion";
/// The one kind of table.
pub const TABLE_TYPE: &str = "TABLE";

fn built(
    batch: Result<RecordBatch, arrow_flight::error::FlightError>,
) -> Result<RecordBatch, Status> {
    batch.map_err(|e| Status::internal(e.to_string()))
}

/// `CommandGetCatalogs`.
pub fn catalogs(query: CommandGetCatalogs) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    builder.append(CATALOG);
    built(builder.build())
}

/// `CommandGetTableTypes`.
pub fn table_types(query: CommandGetTableTypes) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    builder.append(TABLE_TYPE);
    built(builder.build())
}

/// `CommandGetDbSchemas`: the namespaces `principal` reads.
pub async fn schemas(
    state: &AppState,
    principal: &Principal,
    query: CommandGetDbSchemas,
) -> Result<RecordBatch, Status> {
    let mut builder = query.into_builder();
    for namespace in state
        .readable_namespaces(principal)
        .await
        .map_err(engine_status)?
    {
        builder.append(CATALOG, namespace);
    }
    built(builder.build())
}

/// `CommandGetTables`: the tables of the namespaces `principal` reads,
/// with their schemas when the command asks.
pub async fn tables(
    state: &AppState,
    principal: &Principal,
    query: CommandGetTables,
) -> Result<RecordBatch, Status> {
    let include_schema = query.include_schema;
    let mut builder = query.into_builder();
    for namespace in state
        .readable_namespaces(principal)
        .await
        .map_err(engine_status)?
    {
        let tables = state
            .namespace_tables(&namespace)
            .await
            .map_err(engine_status)?;
        if tables.is_empty() {
            continue;
        }
        let engine = if include_schema {
            Some(state.session(principal, &namespace).await.map_err(status)?)
        } else {
            None
        };
        for table in tables {
            let schema = match &engine {
                Some(engine) => match engine.table(&format!("{namespace}.{table}")) {
                    Some(found) => found
                        .snapshot()
                        .await
                        .map_err(engine_status)?
                        .arrow_schema(),
                    None => continue,
                },
                None => std::sync::Arc::new(arrow::datatypes::Schema::empty()),
            };
            builder
                .append(CATALOG, &namespace, &table, TABLE_TYPE, &schema)
                .map_err(|e| Status::internal(e.to_string()))?;
        }
    }
    built(builder.build())
}

/// What the server tells of itself (`CommandGetSqlInfo`).
pub fn sql_info() -> Result<&'static SqlInfoData, Status> {
    static INFO: OnceLock<Result<SqlInfoData, String>> = OnceLock::new();
    INFO.get_or_init(|| {
        let mut builder = SqlInfoDataBuilder::new();
        builder.append(SqlInfo::FlightSqlServerName, "Wavelake");
        builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        builder.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
        builder.append(SqlInfo::FlightSqlServerReadOnly, false);
        builder.append(SqlInfo::FlightSqlServerSql, true);
        builder.append(SqlInfo::FlightSqlServerSubstrait, false);
        builder.append(SqlInfo::FlightSqlServerTransaction, 0_i32);
        builder.append(SqlInfo::FlightSqlServerCancel, false);
        builder.append(SqlInfo::FlightSqlServerBulkIngestion, true);
        builder.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        builder.build().map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Status::internal(e.clone()))
}
