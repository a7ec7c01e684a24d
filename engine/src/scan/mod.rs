//! The DataFusion `TableProvider` over a Delta snapshot: partition and
//! statistics pruning, deletion vectors as Parquet row selections, and
//! Parquet row-group and page-index pruning underneath.

mod deferred;
pub use crate::deletion;
mod exec;
mod footer;
mod hot;
mod lookup;
mod pruning;
mod reader;
mod row_filters;
mod row_ranges;
pub mod write_exec;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::buffered::BufferedBatches;
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::Session;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::Result as DfResult;
use datafusion::execution::context::SessionState;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::object_store::ObjectMeta;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;
use datafusion_datasource::compute_all_files_statistics;
use datafusion_datasource::file_groups::FileGroup;
use datafusion_datasource::file_scan_config::FileScanConfigBuilder;
use datafusion_datasource::source::DataSourceExec;
use datafusion_datasource::{PartitionedFile, TableSchema};
use datafusion_datasource_parquet::source::ParquetSource;
use datafusion_datasource_parquet::{ParquetFileReaderFactory, ParquetRowSelection};
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::arrow_reader::RowSelection;

pub use crate::deletion::{StoredDeletionVectors, load_deletion_vector, row_selection};
#[cfg(feature = "distributed")]
pub(crate) use deferred::file_scan_config;
pub use deferred::{FileDeletionVector, ScanSource};
pub use exec::{DeltaScanExec, ScanFigures, retype};
pub use hot::HotScanExec;
use hot::{DeletionVectorId, HotFile, HotScanParts};
pub use lookup::LateMaterialization;
use lookup::is_lookup;
pub use pruning::FilePruner;
pub use reader::DeltaParquetReaderFactory;
pub(crate) use row_filters::SelectiveRowTests;
pub use row_ranges::WholeRowGroups;

use crate::hot_data::HotData;
use crate::protocol::Add;
use crate::schema::TableSchemas;
use crate::snapshot::Snapshot;
use crate::stats::{FileStats, scan_statistics};
use crate::storage::{
    CachedStorage, FooterTails, MeteredStorage, RangeCache, Storage, StorageObjectStore,
    StorageRef, WholeSmallFiles, as_object_store,
};
use crate::table::Table;
use crate::write_path::{InsertMode, WritePathRef, read_only_build};
use crate::{Error, Result};
use write_exec::{TableWriteExec, WriteJob};

/// Deletion-vector files (and footers of files without row counts) read at
/// once while planning a scan.
const DV_LOAD_CONCURRENCY: usize = 16;

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(0);

/// Column that [`DeltaTableProvider::with_row_ids`] adds: the `add.path`
/// of the file a row comes from.
pub const FILE_PATH_COLUMN: &str = "__delta_file_path";
/// Column that [`DeltaTableProvider::with_row_ids`] adds: the row's
/// position in its data file (what deletion vectors record).
pub const ROW_INDEX_COLUMN: &str = "__delta_row_index";

/// Whether `name` is one of the row-id columns a scan for the write path
/// adds.
pub(crate) fn is_row_id_column(name: &str) -> bool {
    name == FILE_PATH_COLUMN || name == ROW_INDEX_COLUMN
}

/// A Delta snapshot as a DataFusion table.
#[derive(Debug, Clone)]
pub struct DeltaTableProvider {
    snapshot: Arc<Snapshot>,
    /// The snapshot's schemas as this provider serves them (see
    /// [`Self::with_string_views`]).
    schemas: Arc<TableSchemas>,
    /// Whether `schemas` serves strings and binaries as views.
    string_views: bool,
    storage: StorageRef,
    store_url: ObjectStoreUrl,
    row_ids: bool,
    only_files: Option<Arc<HashSet<String>>>,
    /// Deletion vectors are read when the scan runs, by whoever runs it
    /// (an executor of a cluster), not while it is planned.
    defer_deletion_vectors: bool,
    /// Where INSERT, DELETE and UPDATE go; without one they are refused.
    write_path: Option<WritePathRef>,
    /// Acknowledged rows not yet committed, read after the snapshot's.
    buffered_rows: Option<crate::buffered::BufferedRowsRef>,
}

impl DeltaTableProvider {
    /// Serves `snapshot`, reading its files through `storage`.
    pub fn new(snapshot: Snapshot, storage: StorageRef) -> Result<Self> {
        let id = NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed);
        let store_url = ObjectStoreUrl::parse(format!("wavelake://table-{id}/"))?;
        Ok(Self {
            schemas: Arc::new(snapshot.schemas().clone()),
            string_views: false,
            snapshot: Arc::new(snapshot),
            storage,
            store_url,
            row_ids: false,
            only_files: None,
            defer_deletion_vectors: false,
            write_path: None,
            buffered_rows: None,
        })
    }

    /// The same table, also reading the rows `buffered` holds for it that
    /// are not committed yet (a server's write buffer; the latest version
    /// only).
    pub fn with_buffered_rows(
        mut self,
        buffered: Option<crate::buffered::BufferedRowsRef>,
    ) -> Self {
        self.buffered_rows = buffered;
        self
    }

    /// The same table with its data files' strings and binaries served as
    /// views (`Utf8View`, `BinaryView`): decoded from Parquet without a
    /// copy into one buffer, and compared, hashed and grouped faster by
    /// DataFusion's operators. For a query session, whose plans cast them
    /// back to the declared types for callers; the write path reads the
    /// declared types.
    pub fn with_string_views(mut self) -> Self {
        self.string_views = true;
        self.schemas = Arc::new(self.snapshot.schemas().with_string_views());
        self
    }

    /// The same provider over `snapshot` (a newer version of its table).
    fn at(&self, snapshot: Snapshot) -> Self {
        let schemas = match self.string_views {
            true => snapshot.schemas().with_string_views(),
            false => snapshot.schemas().clone(),
        };
        Self {
            snapshot: Arc::new(snapshot),
            schemas: Arc::new(schemas),
            ..self.clone()
        }
    }

    /// The same table, with INSERT, DELETE and UPDATE handed to
    /// `write_path` (refused without one).
    pub fn with_write_path(mut self, write_path: Option<WritePathRef>) -> Self {
        self.write_path = write_path;
        self
    }

    fn write_path(&self) -> DfResult<WritePathRef> {
        self.write_path
            .clone()
            .ok_or_else(|| read_only_build().into())
    }

    /// The same table, with deletion vectors read when the scan runs rather
    /// than when it is planned: a planner that hands the scan to executors
    /// (a Ballista scheduler) reads no deletion vector itself.
    pub fn with_deferred_deletion_vectors(mut self) -> Self {
        self.defer_deletion_vectors = true;
        self
    }

    /// The table's location (a URL), as its storage names it.
    pub fn location(&self) -> String {
        self.storage.location()
    }

    /// Whether scans of this table read every row of the files they keep
    /// (no row ids, no restriction to some files): what a cluster can run.
    pub fn is_plain_scan(&self) -> bool {
        !self.row_ids && self.only_files.is_none()
    }

    /// Whether a scan reads exactly the snapshot and nothing besides: no
    /// row ids, no restriction to some files, and no buffered rows the
    /// snapshot lacks (nor a buffer flushed past it). Then what the scan
    /// returns depends on the table's version alone.
    pub fn reads_only_its_snapshot(&self) -> bool {
        if !self.is_plain_scan() {
            return false;
        }
        let buffered = self.buffered();
        let recorded = |app: &str| self.snapshot.txn(app).map_or(-1, |t| t.version);
        if let Some((app_id, through)) = &buffered.flushed
            && recorded(app_id) < *through
        {
            return false;
        }
        buffered.not_recorded_by(recorded).is_empty()
    }

    /// What a scan with `filters` would read, from the log alone (partition
    /// values and statistics; no deletion vector or footer is read).
    pub fn estimate(&self, state: &dyn Session, filters: &[Expr]) -> ScanFigures {
        let files = self.snapshot.files();
        let keep = self.prune(state, filters, files.len());
        let mut figures = ScanFigures {
            files_total: files.len(),
            ..ScanFigures::default()
        };
        for (add, keep) in files.iter().zip(keep) {
            if !keep {
                continue;
            }
            figures.files_scanned += 1;
            figures.bytes_of_files_scanned += add.size.max(0) as u64;
            if let Some(dv) = &add.deletion_vector {
                figures.files_with_deletion_vectors += 1;
                figures.rows_removed_by_deletion_vectors += dv.cardinality.max(0) as u64;
            }
        }
        figures.files_pruned = figures.files_total - figures.files_scanned;
        figures
    }

    /// Bytes of the column chunks a scan of `projection` (indices of the
    /// table's columns; all when `None`) fetches from the files `filters`
    /// keep, before row groups and pages are pruned: from each file's
    /// footer, read as the scan reads it (DataFusion's
    /// `metadata_size_hint`), so a range cache serves the scan those bytes.
    pub async fn chunk_bytes(
        &self,
        state: &dyn Session,
        filters: &[Expr],
        projection: Option<&[usize]>,
    ) -> Result<u64> {
        let files = self.snapshot.files();
        let keep = self.prune(state, filters, files.len());
        let indices = self.scan_indices();
        let physical = &self.schemas.file_physical;
        let all: Vec<usize> = (0..self.schemas.logical.fields().len()).collect();
        let columns: HashSet<String> = projection
            .unwrap_or(&all)
            .iter()
            .filter_map(|column| indices.get(*column))
            .filter(|index| **index < physical.fields().len())
            .map(|index| physical.field(*index).name().clone())
            .collect();
        if columns.is_empty() {
            return Ok(0);
        }
        let hint = state.config_options().execution.parquet.metadata_size_hint;
        let kept = files.iter().zip(keep).filter(|(_, keep)| *keep);
        let footers = kept.map(|(add, _)| {
            let path = self.snapshot.file_path(add);
            let size = add.size.max(0) as u64;
            let storage = self.storage.clone();
            async move { footer::read_footer(storage.as_ref(), &path, size, hint).await }
        });
        let footers = futures::future::try_join_all(footers).await?;
        Ok(footers
            .iter()
            .map(|metadata| footer::chunk_bytes(metadata, &columns))
            .sum())
    }

    /// The same table with two more columns, [`FILE_PATH_COLUMN`] and
    /// [`ROW_INDEX_COLUMN`], that identify each row for the write path.
    pub fn with_row_ids(mut self) -> Self {
        self.row_ids = true;
        self
    }

    /// The same table restricted to the files whose `add.path` is in `paths`.
    pub fn with_files(mut self, paths: HashSet<String>) -> Self {
        self.only_files = Some(Arc::new(paths));
        self
    }

    /// The storage files are read through.
    pub fn storage(&self) -> &StorageRef {
        &self.storage
    }

    /// The rows buffered for this table and not yet committed; none when
    /// the scan reads row ids or some files only (DML's scans of committed
    /// rows).
    fn buffered(&self) -> BufferedBatches {
        match &self.buffered_rows {
            Some(buffered) if !self.row_ids && self.only_files.is_none() => {
                buffered.rows(&self.storage.location())
            }
            _ => BufferedBatches::default(),
        }
    }

    /// `buffered` as columns `wanted` of the logical schema; `None` when
    /// there are none.
    fn project_buffered(
        &self,
        buffered: Vec<RecordBatch>,
        wanted: &[usize],
    ) -> DfResult<Option<Vec<RecordBatch>>> {
        let logical = self.snapshot.arrow_schema();
        let served = self.schemas.logical.clone();
        let mut batches = Vec::new();
        for batch in buffered {
            if batch.schema().fields() != logical.fields() {
                // Buffered before the table's schema changed: a server
                // flushes before it changes a schema, so only a crash
                // leaves such rows, and its restart commits them.
                tracing::warn!(table = %self.storage.location(), "buffered rows of an older schema are not read");
                continue;
            }
            let columns = batch
                .columns()
                .iter()
                .zip(served.fields())
                .map(|(column, field)| arrow::compute::cast(column, field.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            batches.push(RecordBatch::try_new(served.clone(), columns)?.project(wanted)?);
        }
        Ok((!batches.is_empty()).then_some(batches))
    }

    /// The scan of this snapshot, followed by `buffered` rows (the
    /// table's logical schema) when there are any.
    async fn scan_with(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
        buffered: Vec<RecordBatch>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        state.runtime_env().register_object_store(
            self.store_url.as_ref(),
            as_object_store(self.storage.clone()),
        );
        // Every read of this scan (deletion vectors, footers, pages) is
        // counted, so the plan can report what the query fetched.
        let metered = MeteredStorage::new(self.storage.clone());
        let meter = metered.meter();
        let mut metered: StorageRef = Arc::new(metered);
        // Ranges read before by this session come from its cache, when it
        // has one; only misses reach the meter as fetched.
        if let Some(cache) = state.config().get_extension::<RangeCache>() {
            metered = Arc::new(CachedStorage::new(metered, cache).with_meter(meter.clone()));
        }
        let (files, mut figures, deletion_vectors) =
            self.plan_files(state, filters, metered.as_ref()).await?;
        figures.files_read_while_planning = meter.figures().files;

        let (scan_schema, partition_fields) = self.scan_schema();
        let schemas = &self.schemas;
        let mut table_schema = TableSchema::builder(schemas.file_physical.clone())
            .with_table_partition_cols(partition_fields);
        if self.row_ids {
            table_schema = table_schema.with_virtual_columns(vec![row_index_field()]);
        }
        let table_schema = table_schema.build();
        let mut options = state.default_table_options().parquet;
        options.global.coerce_int96 = Some("us".into());
        // Strings are decoded as the table schema says: views when this
        // provider serves views, else Utf8 (decoding views only to cast
        // every batch back would cost a copy of each).
        options.global.schema_force_view_types = false;
        // A footer is read with its page index in one request from the
        // end of the file (DataFusion's `metadata_size_hint`), not three:
        // its length, then itself, then the index.
        let footer_hint = options.global.metadata_size_hint;
        let metadata_cache = state.runtime_env().cache_manager.get_file_metadata_cache();
        // Each file's storage path and size, as the log gives them.
        let file_sizes: Vec<(String, u64)> = files
            .iter()
            .map(|file| {
                (
                    StorageObjectStore::storage_path(&file.object_meta.location),
                    file.object_meta.size,
                )
            })
            .collect();
        // Small files are read whole: one request each instead of a footer
        // and then pages.
        let small = WholeSmallFiles::new(metered.clone(), file_sizes.iter().cloned());
        let mut reads: StorageRef = if small.has_small_files() {
            Arc::new(small)
        } else {
            metered.clone()
        };
        // The end read for a footer holds the page index too: it serves
        // DataFusion's read of the index, which would be another request.
        if footer_hint.is_some() {
            reads = Arc::new(FooterTails::new(reads, file_sizes));
        }
        let reader_factory: Arc<dyn ParquetFileReaderFactory> = Arc::new(
            DeltaParquetReaderFactory::new(as_object_store(reads), metadata_cache),
        );
        let mut predicate = None;
        if let Some(logical) =
            conjunction(filters.iter().cloned()).and_then(|e| self.physical_filter(e))
        {
            let df_schema = DFSchema::try_from(scan_schema.as_ref().clone())?;
            predicate = state.create_physical_expr(logical, &df_schema).ok();
        }
        let partitions = state.config().target_partitions().max(1);
        // Plain scans (not the write path's, nor one whose deletion vectors
        // a cluster reads) are served from decoded chunks held in memory,
        // which deal out whole row groups themselves, and otherwise read
        // large files in ranges of rows; other scans keep whole files.
        let plain = !self.row_ids && !self.defer_deletion_vectors;
        let hot = state.config().get_extension::<HotData>().filter(|_| plain);
        let hot_files = hot.is_some().then(|| self.hot_files(&files));
        let whole_row_groups = state
            .config()
            .get_extension::<row_ranges::WholeRowGroups>()
            .is_some();
        let files = match plain && !whole_row_groups {
            true => row_ranges::spread(files, partitions),
            false => files,
        };
        let groups = file_groups(files, partitions);
        // The log's statistics of every file, for the optimizer (join
        // order, selectivity); none at all unless every file has them, nor
        // for a scan with row ids.
        let described = groups
            .iter()
            .flat_map(|g| g.iter())
            .all(|f| f.statistics.is_some());
        let (groups, statistics) = match described && !self.row_ids {
            true => {
                let (groups, summary) =
                    compute_all_files_statistics(groups, scan_schema.clone(), true, false)?;
                (groups, Some(summary))
            }
            false => (groups, None),
        };
        // A lookup in a session that pays for every byte reads its filter's
        // columns first and the other columns' pages only where rows pass.
        if state
            .config()
            .get_extension::<LateMaterialization>()
            .is_some()
            && let (Some(predicate), Some(statistics)) = (&predicate, &statistics)
            && is_lookup(predicate, &scan_schema, statistics)
        {
            options.global.pushdown_filters = true;
        }
        let mut source = ParquetSource::new(table_schema)
            .with_table_parquet_options(options)
            .with_parquet_file_reader_factory(reader_factory.clone());
        if let Some(predicate) = &predicate {
            source = source.with_predicate(predicate.clone());
        }
        if let Some(hint) = footer_hint {
            source = source.with_metadata_size_hint(hint);
        }

        let logical = self.output_schema();
        let wanted: Vec<usize> = projection
            .cloned()
            .unwrap_or_else(|| (0..logical.fields().len()).collect());
        let indices = self.scan_indices();
        let scan_projection: Vec<usize> = wanted.iter().map(|i| indices[*i]).collect();
        let output_fields: Vec<Field> = wanted.iter().map(|i| logical.field(*i).clone()).collect();
        let output_schema = Arc::new(Schema::new(output_fields));

        let mut config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_file_groups(groups);
        if let Some(statistics) = statistics {
            config = config.with_statistics(statistics);
        }
        let config = config
            .with_limit(limit)
            .with_projection_indices(Some(scan_projection.clone()))?
            .build();
        let mut scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        if let (Some(hot), Some(files)) = (hot, hot_files) {
            let parts = HotScanParts {
                files,
                scan_schema: scan_schema.clone(),
                projection: scan_projection,
                reader_factory,
                predicate,
                limit,
                partitions: state.config().target_partitions(),
            };
            scan = Arc::new(HotScanExec::new(parts, hot, scan));
        }
        let source = ScanSource {
            location: self.storage.location(),
            version: self.snapshot.version(),
            deletion_vectors,
        };
        let deferred = self.defer_deletion_vectors.then(|| metered.clone());
        let scan: Arc<dyn ExecutionPlan> = Arc::new(
            DeltaScanExec::new(scan, output_schema.clone(), figures, meter)
                .with_source(Arc::new(source), deferred),
        );
        match self.project_buffered(buffered, &wanted)? {
            Some(buffered) => {
                let rows = MemorySourceConfig::try_new_exec(&[buffered], output_schema, None)?;
                Ok(UnionExec::try_new(vec![scan, rows])?)
            }
            None => Ok(scan),
        }
    }

    /// `files` as a [`HotScanExec`] reads them, each told
    /// apart by its location and the deletion vector it is read with.
    fn hot_files(&self, files: &[PartitionedFile]) -> Vec<HotFile> {
        files
            .iter()
            .map(|file| {
                let path = StorageObjectStore::storage_path(&file.object_meta.location);
                HotFile {
                    key: self.file_key(&path).into(),
                    deletion_vector: file.extension::<DeletionVectorId>().map(|id| id.0.clone()),
                    file: file.clone(),
                }
            })
            .collect()
    }

    fn output_schema(&self) -> SchemaRef {
        let logical = self.schemas.logical.clone();
        if !self.row_ids {
            return logical;
        }
        let mut fields: Vec<FieldRef> = logical.fields().iter().cloned().collect();
        fields.push(Arc::new(Field::new(
            FILE_PATH_COLUMN,
            arrow::datatypes::DataType::Utf8,
            false,
        )));
        fields.push(Arc::new(Field::new(
            ROW_INDEX_COLUMN,
            arrow::datatypes::DataType::Int64,
            false,
        )));
        Arc::new(Schema::new(fields))
    }

    /// The snapshot served.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Plans the files to read for `filters`: prunes by partition values and
    /// statistics, and loads deletion vectors.
    async fn plan_files(
        &self,
        state: &dyn Session,
        filters: &[Expr],
        storage: &dyn Storage,
    ) -> Result<(Vec<PartitionedFile>, ScanFigures, Vec<FileDeletionVector>)> {
        let snapshot = &self.snapshot;
        let files: Vec<&Add> = snapshot.files().iter().collect();
        let partition_values = snapshot.all_partition_values()?;
        let keep = self.prune(state, filters, files.len());
        let mut figures = ScanFigures {
            files_total: files.len(),
            ..ScanFigures::default()
        };
        // Each kept file with its path from the table root.
        let kept: Vec<(Add, String, Vec<ScalarValue>)> = files
            .into_iter()
            .zip(partition_values.iter().cloned())
            .zip(keep)
            .filter_map(|((file, mut values), keep)| {
                if self.row_ids {
                    values.push(ScalarValue::Utf8(Some(file.path.clone())));
                }
                keep.then(|| (file.clone(), self.snapshot.file_path(file), values))
            })
            .collect();
        figures.files_pruned = figures.files_total - kept.len();
        figures.files_scanned = kept.len();
        for (add, _, _) in &kept {
            figures.bytes_of_files_scanned += add.size.max(0) as u64;
            if let Some(dv) = &add.deletion_vector {
                figures.files_with_deletion_vectors += 1;
                figures.rows_removed_by_deletion_vectors += dv.cardinality.max(0) as u64;
            }
        }
        let deletion_vectors: Vec<FileDeletionVector> = kept
            .iter()
            .filter_map(|(add, path, _)| {
                Some(FileDeletionVector {
                    path: path.clone(),
                    descriptor: add.deletion_vector.clone()?,
                    num_records: FileStats::of(add).and_then(|s| s.num_records),
                    size: add.size.max(0) as u64,
                })
            })
            .collect();
        if self.defer_deletion_vectors {
            let planned = kept
                .into_iter()
                .map(|(add, path, values)| {
                    partitioned_file(&add, path, values, self.statistics_schemas())
                })
                .collect::<Result<_>>()?;
            return Ok((planned, figures, deletion_vectors));
        }
        // Rows kept by deletion vectors hot data holds need no fetch:
        // each kept file's held selection, looked up once.
        let hot = state.config().get_extension::<HotData>();
        let held: Vec<Option<Arc<RowSelection>>> = kept
            .iter()
            .map(|(add, path, _)| {
                let (hot, dv) = (hot.as_ref()?, add.deletion_vector.as_ref()?);
                hot.row_selection(&self.file_key(path), &dv.unique_id())
            })
            .collect();
        let stored = StoredDeletionVectors::fetch(
            storage,
            kept.iter()
                .zip(&held)
                .filter(|(_, held)| held.is_none())
                .filter_map(|((add, path, _), _)| {
                    Some((path.as_str(), add.deletion_vector.as_ref()?))
                }),
            DV_LOAD_CONCURRENCY,
        )
        .await?;
        let (stored, hot) = (&stored, hot.as_deref());
        let planned = futures::stream::iter(kept.into_iter().zip(held))
            .map(|((add, path, values), held)| async move {
                match held {
                    Some(selection) => {
                        let file = partitioned_file(&add, path, values, self.statistics_schemas())?;
                        Ok(file
                            .with_extension(ParquetRowSelection::new(selection.as_ref().clone()))
                            .with_extension(deletion_vector_id(&add)))
                    }
                    None => {
                        self.partitioned_file(storage, stored, hot, &add, path, values)
                            .await
                    }
                }
            })
            .buffered(DV_LOAD_CONCURRENCY)
            .try_collect()
            .await?;
        Ok((planned, figures, deletion_vectors))
    }

    /// The schemas file statistics are given for; `None` when the scan
    /// adds row ids (whose columns statistics do not describe).
    fn statistics_schemas(&self) -> Option<&TableSchemas> {
        (!self.row_ids).then_some(self.schemas.as_ref())
    }

    /// Which files may hold rows matching `filters` (true = read it), of
    /// those this provider is restricted to.
    fn prune(&self, state: &dyn Session, filters: &[Expr], file_count: usize) -> Vec<bool> {
        let mut keep = match FilePruner::new(&self.snapshot, state, filters) {
            Some(pruner) => pruner.snapshot_files(),
            None => vec![true; file_count],
        };
        if let Some(only) = &self.only_files {
            for (keep, file) in keep.iter_mut().zip(self.snapshot.files()) {
                *keep &= only.contains(&file.path);
            }
        }
        keep
    }

    /// Data file `path` (from the table root) with its table's location:
    /// what tells it apart in hot data.
    fn file_key(&self, path: &str) -> String {
        format!("{}/{path}", self.storage.location().trim_end_matches('/'))
    }

    async fn partitioned_file(
        &self,
        storage: &dyn Storage,
        deletion_vectors: &StoredDeletionVectors,
        hot: Option<&HotData>,
        add: &Add,
        path: String,
        partition_values: Vec<ScalarValue>,
    ) -> Result<PartitionedFile> {
        let file = partitioned_file(
            add,
            path.clone(),
            partition_values,
            self.statistics_schemas(),
        )?;
        let Some(dv) = &add.deletion_vector else {
            return Ok(file);
        };
        let size = file.object_meta.size;
        let deleted = deletion_vectors.load(storage, &path, dv).await?;
        let num_rows = match FileStats::of(add).and_then(|s| s.num_records) {
            Some(rows) => rows,
            None => footer_row_count(storage, &path, size).await?,
        };
        let selection =
            row_selection(&deleted, num_rows).map_err(|reason| Error::DeletionVector {
                data_file: path.clone(),
                reason,
            })?;
        if let Some(hot) = hot {
            hot.keep_row_selection(&self.file_key(&path), &dv.unique_id(), selection.clone());
        }
        Ok(file
            .with_extension(ParquetRowSelection::new(selection))
            .with_extension(deletion_vector_id(add)))
    }

    /// The schema the Parquet scan produces: file columns under their
    /// physical names, then partition columns.
    fn scan_schema(&self) -> (SchemaRef, Vec<FieldRef>) {
        let schemas = &self.schemas;
        let mut partition: Vec<FieldRef> = schemas
            .partition_logical
            .iter()
            .cloned()
            .map(Arc::new)
            .collect();
        if self.row_ids {
            partition.push(Arc::new(Field::new(
                FILE_PATH_COLUMN,
                arrow::datatypes::DataType::Utf8,
                false,
            )));
        }
        let mut fields: Vec<FieldRef> = schemas.file_physical.fields().iter().cloned().collect();
        fields.extend(partition.iter().cloned());
        if self.row_ids {
            fields.push(row_index_field());
        }
        (Arc::new(Schema::new(fields)), partition)
    }

    /// Index in the scan schema of each output column.
    fn scan_indices(&self) -> Vec<usize> {
        let schemas = &self.schemas;
        let file_count = schemas.file_physical.fields().len();
        let mut next_file = 0;
        let mut indices: Vec<usize> = schemas
            .logical
            .fields()
            .iter()
            .map(|field| {
                match schemas
                    .partition_logical
                    .iter()
                    .position(|p| p.name() == field.name())
                {
                    Some(p) => file_count + p,
                    None => {
                        next_file += 1;
                        next_file - 1
                    }
                }
            })
            .collect();
        if self.row_ids {
            let path_index = file_count + schemas.partition_logical.len();
            indices.push(path_index);
            indices.push(path_index + 1);
        }
        indices
    }

    /// Rewrites `expr` from logical to physical column names.
    fn physical_filter(&self, expr: Expr) -> Option<Expr> {
        let schemas = &self.schemas;
        let indices = self.scan_indices();
        let (scan_schema, _) = self.scan_schema();
        expr.transform(|e| {
            if let Expr::Column(column) = &e
                && let Ok(index) = schemas.logical.index_of(&column.name)
            {
                let physical = scan_schema.field(indices[index]).name().clone();
                return Ok(Transformed::yes(Expr::Column(Column::new_unqualified(
                    physical,
                ))));
            }
            Ok(Transformed::no(e))
        })
        .ok()
        .map(|t| t.data)
    }
}

#[async_trait]
impl TableProvider for DeltaTableProvider {
    fn schema(&self) -> SchemaRef {
        self.output_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let buffered = self.buffered();
        // The buffer flushed rows since this snapshot was taken: they are
        // in a newer version and no longer buffered, so read that one.
        if let Some((app_id, through)) = &buffered.flushed
            && self.snapshot.txn(app_id).map_or(-1, |t| t.version) < *through
        {
            let latest = Table::new(self.storage.clone())?.load_latest().await?;
            if latest.arrow_schema() == self.snapshot.arrow_schema() {
                let rows =
                    buffered.not_recorded_by(|app| latest.txn(app).map_or(-1, |t| t.version));
                let newer = self.at(latest);
                return newer
                    .scan_with(state, projection, filters, limit, rows)
                    .await;
            }
        }
        let rows = buffered.not_recorded_by(|app| self.snapshot.txn(app).map_or(-1, |t| t.version));
        self.scan_with(state, projection, filters, limit, rows)
            .await
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mode = match insert_op {
            InsertOp::Append => InsertMode::Append,
            InsertOp::Overwrite => InsertMode::Overwrite,
            InsertOp::Replace => {
                return Err(Error::Sql("REPLACE INTO is not supported; use MERGE".into()).into());
            }
        };
        let writer = self.write_path()?;
        let table = Table::new(self.storage.clone())?;
        let job: WriteJob = Arc::new(move |input, _context| {
            let (table, writer) = (table.clone(), writer.clone());
            Box::pin(async move {
                let input =
                    input.ok_or_else(|| Error::Sql("INSERT without rows to insert".into()))?;
                writer.insert(&table, input, mode).await
            })
        });
        Ok(Arc::new(TableWriteExec::new(
            "INSERT",
            self.storage.location(),
            Some(input),
            job,
        )))
    }

    async fn delete_from(
        &self,
        state: &dyn Session,
        filters: Vec<Expr>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let writer = self.write_path()?;
        let state = session_state(state)?;
        let table = Table::new(self.storage.clone())?;
        let job: WriteJob = Arc::new(move |_input, _context| {
            let (table, state, filters) = (table.clone(), state.clone(), filters.clone());
            let writer = writer.clone();
            Box::pin(async move { writer.delete(&table, &state, filters).await })
        });
        Ok(Arc::new(TableWriteExec::new(
            "DELETE",
            self.storage.location(),
            None,
            job,
        )))
    }

    async fn update(
        &self,
        state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let writer = self.write_path()?;
        let state = session_state(state)?;
        let table = Table::new(self.storage.clone())?;
        let job: WriteJob = Arc::new(move |_input, _context| {
            let (table, state, writer) = (table.clone(), state.clone(), writer.clone());
            let (assignments, filters) = (assignments.clone(), filters.clone());
            Box::pin(async move { writer.update(&table, &state, assignments, filters).await })
        });
        Ok(Arc::new(TableWriteExec::new(
            "UPDATE",
            self.storage.location(),
            None,
            job,
        )))
    }
}

/// The full session state behind `state`, which the write path plans with.
fn session_state(state: &dyn Session) -> DfResult<Arc<SessionState>> {
    state
        .as_any()
        .downcast_ref::<SessionState>()
        .map(|s| Arc::new(s.clone()))
        .ok_or_else(|| Error::Sql("writes need a DataFusion SessionState".into()).into())
}

/// The Parquet reader's row-number virtual column, as [`ROW_INDEX_COLUMN`].
fn row_index_field() -> FieldRef {
    Arc::new(
        Field::new(ROW_INDEX_COLUMN, arrow::datatypes::DataType::Int64, false)
            .with_extension_type(parquet::arrow::RowNumber),
    )
}

/// The scan's entry for data file `path` (from the table root) that `add`
/// describes, without its deletion vector applied.
fn partitioned_file(
    add: &Add,
    path: String,
    partition_values: Vec<ScalarValue>,
    schemas: Option<&TableSchemas>,
) -> Result<PartitionedFile> {
    let statistics = schemas.and_then(|schemas| scan_statistics(add, schemas, &partition_values));
    let size = u64::try_from(add.size).map_err(|_| {
        Error::corrupt(
            path.clone(),
            format!("negative size {} in the log", add.size),
        )
    })?;
    let meta = ObjectMeta {
        location: StorageObjectStore::object_path(&path)?,
        last_modified: chrono::DateTime::from_timestamp_millis(add.modification_time)
            .unwrap_or_default(),
        size,
        e_tag: None,
        version: None,
    };
    let file = PartitionedFile::new_from_meta(meta).with_partition_values(partition_values);
    Ok(match statistics {
        Some(statistics) => file.with_statistics(Arc::new(statistics)),
        None => file,
    })
}

/// What tells the rows `add`'s deletion vector keeps apart in hot data.
fn deletion_vector_id(add: &Add) -> DeletionVectorId {
    let id = add
        .deletion_vector
        .as_ref()
        .map_or_else(String::new, |dv| dv.unique_id());
    DeletionVectorId(id.into())
}

/// Rows in a data file whose statistics do not say, from its footer.
pub(crate) async fn footer_row_count(storage: &dyn Storage, path: &str, size: u64) -> Result<u64> {
    let metadata = footer::read_footer(storage, path, size, None).await?;
    Ok(metadata.file_metadata().num_rows().max(0) as u64)
}

/// Spreads files over `partitions` groups of similar total size.
fn file_groups(mut files: Vec<PartitionedFile>, partitions: usize) -> Vec<FileGroup> {
    files.sort_by_key(|f| std::cmp::Reverse(f.object_meta.size));
    let count = partitions.min(files.len()).max(1);
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> =
        (0..count).map(|_| (0, Vec::new())).collect();
    for file in files {
        if let Some(smallest) = groups.iter_mut().min_by_key(|(size, _)| *size) {
            smallest.0 += file.object_meta.size;
            smallest.1.push(file);
        }
    }
    groups
        .into_iter()
        .map(|(_, files)| FileGroup::new(files))
        .collect()
}
