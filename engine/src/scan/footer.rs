//! Data files' footers read outside a scan: their row counts when the log
//! has none, and the bytes of the column chunks a scan would fetch.

use std::collections::HashSet;

use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::storage::Storage;
use crate::{Error, Result};

/// The footer of the Parquet file `path` of `size` bytes. With `hint`,
/// the file's last `hint` bytes are read at once, as a scan with
/// DataFusion's `metadata_size_hint` reads them (so a range cache serves
/// the scan the same bytes); otherwise its length, then the footer.
pub async fn read_footer(
    storage: &dyn Storage,
    path: &str,
    size: u64,
    hint: Option<usize>,
) -> Result<ParquetMetaData> {
    if size < 12 {
        return Err(Error::corrupt(path, "too small to be a Parquet file"));
    }
    let tail_len = hint.map_or(8, |hint| hint as u64).clamp(8, size);
    let tail = storage.get_range(path, size - tail_len..size).await?;
    if tail.len() as u64 != tail_len || &tail[tail.len() - 4..] != b"PAR1" {
        return Err(Error::corrupt(path, "no Parquet footer"));
    }
    let at = tail.len() - 8;
    let footer_len = u64::from(u32::from_le_bytes([
        tail[at],
        tail[at + 1],
        tail[at + 2],
        tail[at + 3],
    ]));
    if footer_len + 8 > size {
        return Err(Error::corrupt(path, "footer length exceeds the file"));
    }
    let footer = if footer_len + 8 <= tail_len {
        tail.slice(at - footer_len as usize..at)
    } else {
        storage
            .get_range(path, size - 8 - footer_len..size - 8)
            .await?
    };
    ParquetMetaDataReader::decode_metadata(&footer).map_err(|e| Error::corrupt(path, e))
}

/// Bytes of the column chunks of `metadata` under the top-level columns
/// `columns` (physical names), in every row group.
pub fn chunk_bytes(metadata: &ParquetMetaData, columns: &HashSet<String>) -> u64 {
    metadata
        .row_groups()
        .iter()
        .flat_map(|group| group.columns())
        .filter(|chunk| {
            chunk
                .column_path()
                .parts()
                .first()
                .is_some_and(|root| columns.contains(root))
        })
        .map(|chunk| chunk.compressed_size().max(0) as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use bytes::Bytes;
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use crate::storage::{FetchMeter, MemoryStorage, MeteredStorage};

    /// A file of three row groups with an `id` and a long `payload` column.
    fn file() -> Bytes {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("payload", DataType::Utf8, false),
        ]));
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(1_000))
            .build();
        let mut bytes = Vec::new();
        let mut writer =
            ArrowWriter::try_new(&mut bytes, schema.clone(), Some(properties)).expect("writer");
        let ids = Int64Array::from_iter_values(0..3_000);
        let payloads = StringArray::from_iter_values((0..3_000).map(|n| format!("{n:0>40}")));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(payloads)]).expect("batch");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
        Bytes::from(bytes)
    }

    async fn stored(bytes: &Bytes) -> (MeteredStorage, Arc<FetchMeter>) {
        let memory = MemoryStorage::new("memory://t");
        memory.put("f.parquet", bytes.clone()).await.expect("put");
        let meter = Arc::new(FetchMeter::default());
        (
            MeteredStorage::with_meter(Arc::new(memory), meter.clone()),
            meter,
        )
    }

    #[tokio::test]
    async fn a_hint_reads_the_footer_in_one_request_and_none_in_two() {
        let bytes = file();
        let size = bytes.len() as u64;
        for (hint, requests) in [(None, 2), (Some(64 * 1024), 1), (Some(16), 2)] {
            let (storage, meter) = stored(&bytes).await;
            let footer = read_footer(&storage, "f.parquet", size, hint)
                .await
                .expect("footer");
            assert_eq!(footer.num_row_groups(), 3);
            assert_eq!(meter.figures().requests, requests, "hint {hint:?}");
        }
    }

    #[tokio::test]
    async fn chunk_bytes_add_up_the_columns_asked_for() {
        let bytes = file();
        let (storage, _) = stored(&bytes).await;
        let footer = read_footer(&storage, "f.parquet", bytes.len() as u64, None)
            .await
            .expect("footer");
        let of = |names: &[&str]| {
            let names = names.iter().map(|n| (*n).to_owned()).collect();
            chunk_bytes(&footer, &names)
        };
        let id = of(&["id"]);
        let payload = of(&["payload"]);
        assert!(id > 0 && payload > id, "id {id}, payload {payload}");
        assert_eq!(of(&["id", "payload"]), id + payload);
        assert_eq!(of(&[]), 0);
        let all: u64 = footer
            .row_groups()
            .iter()
            .map(|g| g.compressed_size() as u64)
            .sum();
        assert_eq!(id + payload, all);
    }

    #[tokio::test]
    async fn what_is_not_a_footer_is_corrupt() {
        let (storage, _) = stored(&Bytes::from_static(b"not a parquet file at all")).await;
        let err = read_footer(&storage, "f.parquet", 25, Some(1024))
            .await
            .expect_err("no footer");
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
    }
}
