//! Flight SQL bulk ingest (`CommandStatementIngest`, what ADBC's
//! `adbc_ingest` sends): the rows of one `DoPut` reach the table whole or
//! not at all. Appends of up to `[ingest] flush_rows` rows go to the
//! table's write buffer (acknowledged once in its write-ahead log, read by
//! this server's queries at once, committed with the next flush); larger
//! ones are one commit of their own, as is creating or replacing a table.

use arrow::array::RecordBatch;
use arrow_flight::FlightData;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{CommandStatementIngest, TableExistsOption, TableNotExistOption};
use futures::{StreamExt, TryStreamExt};
use tonic::Status;

use super::{engine_status, status};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::names::check_name;
use crate::state::AppState;
use wavelake_write::{SaveMode, WriteOptions};

/// Ingests the rows of `stream` into the table `command` names (in its
/// schema, else the call's namespace); the rows written.
pub async fn ingest(
    state: &AppState,
    principal: &Principal,
    namespace: Option<String>,
    command: CommandStatementIngest,
    stream: PeekableFlightDataStream,
) -> Result<i64, Status> {
    if command.temporary {
        return Err(Status::unimplemented(
            "temporary tables are not supported; ingest into a table",
        ));
    }
    if command.transaction_id.is_some() {
        return Err(Status::unimplemented(
            "Flight SQL transactions are not supported; each ingest commits on its own",
        ));
    }
    let namespace = state
        .namespace_for(
            principal,
            command.schema.as_deref().or(namespace.as_deref()),
        )
        .map_err(status)?;
    check_name("table", &command.table).map_err(status)?;
    state.may_write(principal, &namespace).map_err(status)?;
    let options = command.table_definition_options.unwrap_or_default();
    let if_missing =
        TableNotExistOption::try_from(options.if_not_exist).unwrap_or(TableNotExistOption::Fail);
    let if_present =
        TableExistsOption::try_from(options.if_exists).unwrap_or(TableExistsOption::Fail);

    let limit = state.config.limits.max_upload_bytes;
    let (schema, batches) = receive(stream, limit).await?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let engine = state.session(principal, &namespace).await.map_err(status)?;
    let name = format!("{namespace}.{}", command.table);
    let Some(table) = engine.table(&name) else {
        if if_missing != TableNotExistOption::Create {
            return Err(status(ApiError::not_found(format!(
                "table {name} does not exist (ingest with mode create to create it)"
            ))));
        }
        let created = wavelake_write::create_table_from_stream(
            &engine,
            &name,
            &schema,
            futures::stream::iter(batches.into_iter().map(Ok)),
        )
        .await
        .map_err(engine_status)?;
        metrics::counter!("wavelake_commits_total").increment(1);
        return Ok(i64::try_from(created).unwrap_or(i64::MAX));
    };
    let mode = match if_present {
        TableExistsOption::Append => SaveMode::Append,
        TableExistsOption::Replace => SaveMode::Overwrite,
        TableExistsOption::Fail | TableExistsOption::Unspecified => {
            return Err(status(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "TABLE_EXISTS",
                format!("table {name} exists (ingest with mode append or replace)"),
            )));
        }
    };
    if mode == SaveMode::Append && rows <= state.config.ingest.settings().flush_rows {
        if rows == 0 {
            return Ok(0);
        }
        let batch = arrow::compute::concat_batches(&schema, &batches)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let buffer = state
            .buffer(&namespace, &command.table)
            .await
            .map_err(engine_status)?;
        let appended = buffer.append(&batch).await.map_err(engine_status)?;
        metrics::counter!("wavelake_buffered_rows_total").increment(appended.rows as u64);
        return Ok(i64::try_from(appended.rows).unwrap_or(i64::MAX));
    }
    // A commit of its own: what the buffer holds is committed first, so
    // it is neither replaced unseen nor committed after these rows.
    state
        .buffers
        .flush(&namespace, &command.table)
        .await
        .map_err(engine_status)?;
    let outcome = wavelake_write::write(
        &table,
        futures::stream::iter(batches.into_iter().map(Ok)),
        &WriteOptions {
            mode,
            app_transaction: None,
        },
    )
    .await
    .map_err(engine_status)?;
    metrics::counter!("wavelake_commits_total").increment(1);
    Ok(i64::try_from(outcome.rows).unwrap_or(i64::MAX))
}

/// The rows of a `DoPut`, refused past `limit` bytes of Arrow data.
async fn receive(
    stream: PeekableFlightDataStream,
    limit: usize,
) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>), Status> {
    let mut received = 0usize;
    let counted = stream.map(move |data| {
        let data: FlightData = data?;
        received += data.data_body.len() + data.data_header.len();
        if received > limit {
            return Err(Status::resource_exhausted(format!(
                "[PAYLOAD_TOO_LARGE] the ingest is larger than the limit of {limit} bytes; \
                 split it"
            )));
        }
        Ok(data)
    });
    let mut decoder =
        FlightRecordBatchStream::new_from_flight_data(counted.map_err(FlightError::from));
    let mut batches = Vec::new();
    while let Some(batch) = decoder.next().await {
        batches.push(batch.map_err(flight_status)?);
    }
    let schema = decoder
        .schema()
        .cloned()
        .or_else(|| batches.first().map(RecordBatch::schema))
        .ok_or_else(|| Status::invalid_argument("the ingest carries no schema"))?;
    Ok((schema, batches))
}

/// A decoding error as a status (an error the stream carried stays what it
/// was).
fn flight_status(error: FlightError) -> Status {
    match error {
        FlightError::Tonic(status) => *status,
        other => Status::invalid_argument(format!("the ingested data is not Arrow: {other}")),
    }
}
