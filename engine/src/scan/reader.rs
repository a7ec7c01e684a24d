//! The Parquet reader factory of a scan: DataFusion's cached reader, with
//! typed errors when a footer cannot be read (the stock reader turns them
//! into text): a missing file stays `NotFound`, a broken one is `Corrupt`,
//! both naming the file. Files are read by their Parquet schema alone,
//! not the Arrow schema a writer may have embedded (see
//! [`without_arrow_schema`]).

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::error::Result as DfResult;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::object_store::{ObjectStore, ObjectStoreExt};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion_datasource::PartitionedFile;
use datafusion_datasource_parquet::{CachedParquetFileReaderFactory, ParquetFileReaderFactory};
use futures::FutureExt;
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    FileMetaData, PageIndexPolicy, ParquetMetaData, ParquetMetaDataBuilder,
};

use crate::Error;
use crate::storage::StorageObjectStore;

/// Creates the readers of one scan's data files.
#[derive(Debug)]
pub struct DeltaParquetReaderFactory {
    store: Arc<dyn ObjectStore>,
    inner: CachedParquetFileReaderFactory,
}

impl DeltaParquetReaderFactory {
    /// Readers over `store`, sharing parsed footers in `metadata_cache`.
    pub fn new(store: Arc<dyn ObjectStore>, metadata_cache: Arc<FileMetadataCache>) -> Self {
        Self {
            inner: CachedParquetFileReaderFactory::new(store.clone(), metadata_cache),
            store,
        }
    }
}

impl ParquetFileReaderFactory for DeltaParquetReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> DfResult<Box<dyn AsyncFileReader + Send>> {
        let location = partitioned_file.object_meta.location.clone();
        let size = partitioned_file.object_meta.size;
        let inner = self.inner.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(TypedErrorReader {
            inner,
            store: self.store.clone(),
            location,
            size,
            page_starts: None,
        }))
    }
}

/// Forwards to DataFusion's reader; on a failed footer read, re-reads the
/// last byte to recover the storage error as a value. Pages fetched at a
/// column chunk's or an indexed page's start have their headers checked
/// before the parquet crate decompresses them (see
/// [`crate::parquet_guard::page_header`]).
struct TypedErrorReader {
    inner: Box<dyn AsyncFileReader + Send>,
    store: Arc<dyn ObjectStore>,
    location: datafusion::object_store::path::Path,
    size: u64,
    /// Where pages begin, once the footer has been read.
    page_starts: Option<Arc<HashSet<u64>>>,
}

impl TypedErrorReader {
    /// Reads the footer (from DataFusion's cache, where the scan put it)
    /// if this reader has not: DataFusion decodes a filtered scan through
    /// a second reader that is never asked for the footer, and without it
    /// pages cannot be checked.
    async fn know_footer(&mut self) -> parquet::errors::Result<()> {
        if self.page_starts.is_none() {
            // Page starts come from the footer alone; whatever page index
            // the scan asked for is in the cache with it.
            let footer_only =
                ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Skip);
            self.get_metadata(Some(&footer_only)).await?;
        }
        Ok(())
    }

    fn check_pages(&self, start: u64, bytes: &Bytes) -> parquet::errors::Result<()> {
        let Some(starts) = &self.page_starts else {
            return Ok(());
        };
        let path = StorageObjectStore::storage_path(&self.location);
        crate::parquet_guard::page_header::check_fetched_pages(&path, starts, start, bytes)
            .map_err(|e| ParquetError::External(Box::new(e)))
    }
}

impl AsyncFileReader for TypedErrorReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.know_footer().await?;
            let start = range.start;
            let bytes = self.inner.get_bytes(range).await?;
            self.check_pages(start, &bytes)?;
            Ok(bytes)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.know_footer().await?;
            let starts: Vec<u64> = ranges.iter().map(|r| r.start).collect();
            let fetched = self.inner.get_byte_ranges(ranges).await?;
            for (start, bytes) in starts.into_iter().zip(&fetched) {
                self.check_pages(start, bytes)?;
            }
            Ok(fetched)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            match self.inner.get_metadata(options).await {
                Ok(metadata) => {
                    let path = StorageObjectStore::storage_path(&self.location);
                    crate::parquet_guard::check_layout(&path, &metadata, self.size)
                        .map_err(|e| ParquetError::External(Box::new(e)))?;
                    self.page_starts = Some(Arc::new(
                        crate::parquet_guard::page_header::page_starts(&metadata),
                    ));
                    Ok(without_arrow_schema(metadata))
                }
                Err(err) => {
                    let probe = self.size.saturating_sub(1)..self.size;
                    match self.store.get_range(&self.location, probe).await {
                        Err(storage_error) => Err(ParquetError::External(Box::new(storage_error))),
                        // The file is there: its footer is what is wrong.
                        Ok(_) => Err(ParquetError::External(Box::new(Error::Corrupt {
                            path: StorageObjectStore::storage_path(&self.location),
                            reason: format!("not a readable Parquet file: {err}"),
                        }))),
                    }
                }
            }
        }
        .boxed()
    }
}

/// The key under which Arrow writers embed their schema in a Parquet footer.
const ARROW_SCHEMA_KEY: &str = "ARROW:schema";

/// `metadata` without the Arrow schema its writer embedded. A Delta table's
/// schema is the log's, and the Parquet schema alone says how to read each
/// column as it; the embedded one only changes how strings are decoded:
/// `deltalake` 1.x declares them `Utf8View`, which the scan would decode
/// into views and then copy into the table's `Utf8`, string by string.
/// Read by its Parquet schema, a file decodes straight into `Utf8`, as one
/// written by Spark (which embeds no Arrow schema) does.
fn without_arrow_schema(metadata: Arc<ParquetMetaData>) -> Arc<ParquetMetaData> {
    let file = metadata.file_metadata();
    let Some(pairs) = file.key_value_metadata() else {
        return metadata;
    };
    if !pairs.iter().any(|pair| pair.key == ARROW_SCHEMA_KEY) {
        return metadata;
    }
    let kept: Vec<_> = pairs
        .iter()
        .filter(|pair| pair.key != ARROW_SCHEMA_KEY)
        .cloned()
        .collect();
    let stripped = FileMetaData::new(
        file.version(),
        file.num_rows(),
        file.created_by().map(str::to_owned),
        (!kept.is_empty()).then_some(kept),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    Arc::new(
        ParquetMetaDataBuilder::new(stripped)
            .set_row_groups(metadata.row_groups().to_vec())
            .set_column_index(metadata.column_index().cloned())
            .set_offset_index(metadata.offset_index().cloned())
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{RecordBatch, StringViewArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ArrowReaderMetadata;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn strings_a_writer_declared_as_views_are_read_as_utf8() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8View, true)]));
        let column = Arc::new(StringViewArray::from(vec!["a", "b"]));
        let batch = RecordBatch::try_new(schema.clone(), vec![column]).expect("batch");
        let mut bytes = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut bytes, schema, None).expect("writer");
        writer.write(&batch).expect("write");
        writer.close().expect("close");
        let reader = SerializedFileReader::new(Bytes::from(bytes)).expect("reader");
        let metadata = Arc::new(reader.metadata().clone());

        let as_written = ArrowReaderMetadata::try_new(metadata.clone(), ArrowReaderOptions::new())
            .expect("schema");
        assert_eq!(
            as_written.schema().field(0).data_type(),
            &DataType::Utf8View
        );
        let stripped = without_arrow_schema(metadata.clone());
        let read_as = ArrowReaderMetadata::try_new(stripped.clone(), ArrowReaderOptions::new())
            .expect("schema");
        assert_eq!(read_as.schema().field(0).data_type(), &DataType::Utf8);
        assert_eq!(stripped.row_groups(), metadata.row_groups());
        assert_eq!(stripped.file_metadata().num_rows(), 2);
    }
}
