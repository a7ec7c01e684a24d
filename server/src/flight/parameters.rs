//! Parameters a client binds to a prepared statement (`DoPut` with its
//! handle): the Arrow batches it sends, as rows of values for
//! [`wavelake_engine::bind_parameters`].

use arrow::array::RecordBatch;
use datafusion::common::ScalarValue;
use futures::TryStreamExt;
use tonic::Status;

/// Parameter rows one `DoPut` may bind, at most (each row of an update is
/// one execution).
pub const MAX_PARAMETER_ROWS: usize = 10_000;

/// The rows of parameters in `stream` (none for an empty binding).
pub async fn read(
    stream: arrow_flight::sql::server::PeekableFlightDataStream,
) -> Result<Vec<Vec<ScalarValue>>, Status> {
    let batches: Vec<RecordBatch> =
        arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
            // The stream itself, not its inner one: the first message, the
            // command the server peeked at, carries the schema.
            stream.map_err(arrow_flight::error::FlightError::from),
        )
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("the parameters: {e}")))?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows > MAX_PARAMETER_ROWS {
        return Err(Status::invalid_argument(format!(
            "{rows} rows of parameters exceed the limit of {MAX_PARAMETER_ROWS} per call"
        )));
    }
    let mut values = Vec::with_capacity(rows);
    for batch in batches.iter().filter(|b| b.num_columns() > 0) {
        for row in 0..batch.num_rows() {
            let row = batch
                .columns()
                .iter()
                .map(|column| ScalarValue::try_from_array(column, row))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Status::invalid_argument(format!("the parameters: {e}")))?;
            values.push(row);
        }
    }
    Ok(values)
}
