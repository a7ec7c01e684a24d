//! What Flight SQL tickets carry and how results go out: statement
//! handles, results of statements that ran already (kept briefly for their
//! ticket), and record batches encoded as Flight data within the
//! statement's time limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tonic::Status;

use super::{FlightDataStream, timed_out};
use crate::admission::Admitted;

/// Results kept for their tickets at most, across callers.
const MAX_KEPT_RESULTS: usize = 1024;
/// How long a result waits for its ticket.
const KEPT_FOR: Duration = Duration::from_secs(600);

/// What a statement ticket names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Handle {
    /// A query, planned again and run when the ticket is fetched (by the
    /// caller who fetches it, with that caller's rights).
    Query {
        /// The statement.
        sql: String,
        /// The namespace it resolves names in.
        namespace: Option<String>,
    },
    /// The result of a statement that ran already.
    Result {
        /// Its key in the [`ResultStore`].
        id: String,
    },
}

impl Handle {
    /// The handle as ticket bytes.
    pub fn encode(&self) -> Result<Vec<u8>, Status> {
        serde_json::to_vec(self).map_err(|e| Status::internal(e.to_string()))
    }

    /// The handle of ticket bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, Status> {
        serde_json::from_slice(bytes)
            .map_err(|_| Status::invalid_argument("the ticket is not one this server issued"))
    }
}

/// A random key, hex.
pub fn random_id() -> Result<String, Status> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Status::internal(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

struct Kept {
    owner: String,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
    since: Instant,
}

/// Results of statements that ran at `GetFlightInfo`, until their ticket
/// is fetched (once) or they expire.
#[derive(Default)]
pub struct ResultStore {
    kept: Mutex<HashMap<String, Kept>>,
}

impl ResultStore {
    /// Keeps a result for `owner`; its key. The oldest results go when
    /// the store is full.
    pub fn keep(
        &self,
        owner: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<String, Status> {
        let id = random_id()?;
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.retain(|_, k| k.since.elapsed() < KEPT_FOR);
        while kept.len() >= MAX_KEPT_RESULTS {
            let oldest = kept
                .iter()
                .min_by_key(|(_, k)| k.since)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(oldest) => kept.remove(&oldest),
                None => break,
            };
        }
        kept.insert(
            id.clone(),
            Kept {
                owner: owner.to_owned(),
                schema,
                batches,
                since: Instant::now(),
            },
        );
        Ok(id)
    }

    /// Takes the result `id`, if `owner` made it and it has not expired.
    pub fn take(&self, owner: &str, id: &str) -> Result<(SchemaRef, Vec<RecordBatch>), Status> {
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match kept.remove(id) {
            Some(k) if k.owner == owner && k.since.elapsed() < KEPT_FOR => {
                Ok((k.schema, k.batches))
            }
            Some(k) if k.owner != owner => {
                kept.insert(id.to_owned(), k);
                Err(Status::not_found("no such result (not yours)"))
            }
            _ => Err(Status::not_found(
                "no such result: a ticket's result is fetched once, within ten minutes",
            )),
        }
    }
}

/// Rows as a stream, with their schema (empty without rows).
pub fn batches_stream(
    batches: Vec<RecordBatch>,
) -> (SchemaRef, BoxStream<'static, Result<RecordBatch, Status>>) {
    let schema = batches
        .first()
        .map_or_else(|| Arc::new(Schema::empty()), RecordBatch::schema);
    (
        schema,
        futures::stream::iter(batches.into_iter().map(Ok)).boxed(),
    )
}

/// `rows`, ended with a timeout error at `deadline`, holding `admitted`
/// (the statement's place among those running) until the last row.
pub fn until(
    rows: BoxStream<'static, Result<RecordBatch, Status>>,
    deadline: tokio::time::Instant,
    limit_secs: u64,
    admitted: Admitted,
) -> BoxStream<'static, Result<RecordBatch, Status>> {
    futures::stream::unfold(Some((rows, admitted)), move |state| async move {
        let (mut rows, admitted) = state?;
        match tokio::time::timeout_at(deadline, rows.next()).await {
            Ok(Some(item)) => Some((item, Some((rows, admitted)))),
            Ok(None) => None,
            Err(_) => Some((Err(timed_out(limit_secs)), None)),
        }
    })
    .boxed()
}

/// Rows of `schema` as Flight data.
pub fn encode(
    schema: SchemaRef,
    rows: BoxStream<'static, Result<RecordBatch, Status>>,
) -> FlightDataStream {
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(rows.map_err(FlightError::from))
        .map_err(Status::from);
    Box::pin(stream)
}

/// One batch as Flight data.
pub fn encode_batch(batch: RecordBatch) -> FlightDataStream {
    let (schema, rows) = batches_stream(vec![batch]);
    encode(schema, rows)
}

/// The rows a statement changed, from its result's `count` column; `-1`
/// when it has none (DDL).
pub fn count(batches: &[RecordBatch]) -> i64 {
    let mut total: Option<i64> = None;
    for batch in batches {
        let Some(column) = batch.column_by_name("count") else {
            continue;
        };
        let Ok(counts) = arrow::compute::cast(column, &DataType::Int64) else {
            continue;
        };
        let counts = counts.as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..counts.len() {
            if counts.is_valid(i) {
                *total.get_or_insert(0) += counts.value(i);
            }
        }
    }
    total.unwrap_or(-1)
}
