//! Tombstones: the `remove` actions of a log segment (its checkpoint and
//! the commits after it), which VACUUM and new checkpoints need to keep
//! recently removed files for readers of older versions. Checkpoint rows
//! are turned back into JSON and parsed like commit lines, so one parser
//! serves both.

use arrow::array::RecordBatch;
use arrow::compute::{filter_record_batch, is_not_null};
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::replay::read_commits;
use super::segment::LogSegment;
use crate::protocol::{ActionBatch, Remove};
use crate::storage::Storage;
use crate::{Error, Result};

/// Every `remove` of `segment`, newest first: the commits' (newest commit
/// first), then the checkpoint's. A path may appear more than once.
pub async fn tombstones(storage: &dyn Storage, segment: &LogSegment) -> Result<Vec<Remove>> {
    let mut removes = Vec::new();
    for commit in read_commits(storage, segment).await?.into_iter().rev() {
        removes.extend(commit.removes);
    }
    for part in &segment.checkpoint {
        let bytes = storage.get(&part.path).await?;
        let batch = if part.path.ends_with(".json") {
            ActionBatch::from_json_lines(&part.path, &bytes)?
        } else {
            checkpoint_removes(&part.path, bytes)?
        };
        removes.extend(batch.removes);
    }
    Ok(removes)
}

/// The `remove` rows of a Parquet checkpoint part.
fn checkpoint_removes(path: &str, bytes: Bytes) -> Result<ActionBatch> {
    crate::parquet_guard::contain_decoder_panics(path, || decode_removes(path, bytes))
}

fn decode_removes(path: &str, bytes: Bytes) -> Result<ActionBatch> {
    let corrupt = |e: &dyn std::fmt::Display| Error::corrupt(path, e);
    let len = bytes.len() as u64;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).map_err(|e| corrupt(&e))?;
    crate::parquet_guard::check_layout(path, builder.metadata(), len)?;
    crate::parquet_guard::check_pages(path, builder.metadata(), &bytes)?;
    let has_removes = builder
        .parquet_schema()
        .columns()
        .iter()
        .any(|c| c.path().parts().first().is_some_and(|p| p == "remove"));
    if !has_removes {
        return Ok(ActionBatch::default());
    }
    let mask = ProjectionMask::columns(builder.parquet_schema(), ["remove"]);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| corrupt(&e))?;
    let mut lines = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(&e))?;
        let present = is_not_null(batch.column(0))?;
        let removes: RecordBatch = filter_record_batch(&batch, &present)?;
        if removes.num_rows() == 0 {
            continue;
        }
        let mut writer = arrow::json::LineDelimitedWriter::new(&mut lines);
        writer.write(&removes).map_err(|e| corrupt(&e))?;
        writer.finish().map_err(|e| corrupt(&e))?;
    }
    ActionBatch::from_json_lines(path, &lines)
}
