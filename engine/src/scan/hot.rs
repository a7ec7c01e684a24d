//! `HotScanExec`: the Parquet scan of a Delta snapshot served from
//! [`HotData`] where it can be. Each row group a partition reads is put
//! together from decoded column chunks held in memory; only the chunks
//! not held are fetched and decoded (whole row groups, with the deletion
//! vector's rows left out) and then kept for the next query. When
//! partitions outnumber row groups, each partition reads, decodes and
//! keeps its own share of a row group's rows, so a first query decodes
//! every row once, on every core; so does each when the files are too few
//! for uneven row groups to even out.
//!
//! It stands in for DataFusion's Parquet scan (whose statistics it
//! reports) when a session has hot data. Row groups are pruned by the
//! scan's filter on their footer statistics, as the Parquet scan does;
//! pages are not (a chunk is a whole row group), nor do a join's dynamic
//! filters reach it: filters above the scan test every row it returns.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion::common::Statistics;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};
use datafusion::physical_plan::coop::make_cooperative;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType, SchedulingType};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion_datasource::PartitionedFile;
use datafusion_datasource_parquet::{
    Int96Coercer, ParquetAccessPlan, ParquetFileMetrics, ParquetFileReaderFactory,
    ParquetRowSelection, RowGroupAccess, RowGroupAccessPlanFilter,
};
use futures::{FutureExt, StreamExt, TryStreamExt};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, RowSelection};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStreamBuilder};
use parquet::file::metadata::ParquetMetaData;

use super::exec::retype;
use crate::hot_data::{ChunkKey, HotData};
use crate::parquet_guard;

/// The unique id of the deletion vector a scan's file is read with,
/// attached to the file when the scan is planned (one file may be read
/// twice with different vectors, as a change feed does).
#[derive(Debug, Clone)]
pub(crate) struct DeletionVectorId(pub Arc<str>);

/// A data file of the scan and what tells its chunks apart.
#[derive(Debug, Clone)]
pub(crate) struct HotFile {
    /// The file as the Parquet scan would read it (its deletion vector as
    /// a row selection extension).
    pub file: PartitionedFile,
    /// Its table's location and path.
    pub key: Arc<str>,
    /// Its deletion vector's unique id.
    pub deletion_vector: Option<Arc<str>>,
}

/// What every partition of the scan shares.
#[derive(Debug)]
struct Shared {
    files: Vec<HotFile>,
    /// The table's file columns, then its partition columns.
    scan_schema: SchemaRef,
    /// Columns of `scan_schema` the scan returns.
    projection: Vec<usize>,
    /// The output: `scan_schema` projected.
    schema: SchemaRef,
    reader_factory: Arc<dyn ParquetFileReaderFactory>,
    pruning: Option<Arc<PruningPredicate>>,
    hot: Arc<HotData>,
    partitions: usize,
    limit: Option<usize>,
    metrics: ExecutionPlanMetricsSet,
}

/// Scans Parquet data files through [`HotData`]; see the module docs.
#[derive(Debug)]
pub struct HotScanExec {
    shared: Arc<Shared>,
    /// The Parquet scan this one stands in for: its statistics are this
    /// scan's.
    parquet: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

/// The parts of a Parquet scan a [`HotScanExec`] is made of.
pub(crate) struct HotScanParts {
    pub files: Vec<HotFile>,
    pub scan_schema: SchemaRef,
    pub projection: Vec<usize>,
    pub reader_factory: Arc<dyn ParquetFileReaderFactory>,
    pub predicate: Option<Arc<dyn PhysicalExpr>>,
    pub limit: Option<usize>,
    pub partitions: usize,
}

impl HotScanExec {
    /// A scan of `parts` through `hot`, standing in for `parquet` (the
    /// equivalent DataFusion scan, whose output schema it has).
    pub(crate) fn new(
        parts: HotScanParts,
        hot: Arc<HotData>,
        parquet: Arc<dyn ExecutionPlan>,
    ) -> Self {
        let schema = parquet.schema();
        let pruning = parts
            .predicate
            .and_then(|predicate| {
                PruningPredicateBuilder::new()
                    .with_file_schema(parts.scan_schema.clone())
                    .try_build(predicate)
                    .ok()
            })
            .filter(|pruning| !pruning.always_true())
            .map(Arc::new);
        let partitions = parts.partitions.max(1);
        let properties = Arc::new(
            PlanProperties::new(
                EquivalenceProperties::new(schema.clone()),
                Partitioning::UnknownPartitioning(partitions),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )
            .with_scheduling_type(SchedulingType::Cooperative),
        );
        Self {
            shared: Arc::new(Shared {
                files: parts.files,
                scan_schema: parts.scan_schema,
                projection: parts.projection,
                schema,
                reader_factory: parts.reader_factory,
                pruning,
                hot,
                partitions,
                limit: parts.limit,
                metrics: ExecutionPlanMetricsSet::new(),
            }),
            parquet,
            properties,
        }
    }
}

impl DisplayAs for HotScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let figures = self.shared.hot.figures();
        write!(
            f,
            "HotScanExec: files={} columns={} hot_budget={}",
            self.shared.files.len(),
            self.shared.projection.len(),
            figures.budget
        )?;
        if let Some(pruning) = &self.shared.pruning {
            write!(f, " pruning_predicate={}", pruning.predicate_expr())?;
        }
        Ok(())
    }
}

impl ExecutionPlan for HotScanExec {
    fn name(&self) -> &str {
        "HotScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match children.is_empty() {
            true => Ok(self),
            false => Err(DataFusionError::Internal(
                "HotScanExec has no children".into(),
            )),
        }
    }

    /// The whole scan's statistics are the Parquet scan's (from the log);
    /// one partition's are unknown (row groups are dealt out when it runs).
    fn statistics_from_inputs(
        &self,
        _input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        match args.partition() {
            None => self.parquet.statistics_from_inputs(&[], args),
            Some(_) => Ok(Arc::new(Statistics::new_unknown(&self.shared.schema))),
        }
    }

    fn child_stats_requests(&self, _partition: Option<usize>) -> Vec<ChildStats> {
        Vec::new()
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let shared = self.shared.clone();
        let batch_size = context.session_config().batch_size().max(1);
        let counters = HotCounters::new(&shared.metrics, partition);
        let output_rows = counters.output_rows.clone();
        let files = shared.files.len();
        let planned = shared.clone();
        let row_groups = futures::stream::iter(0..files)
            .then(move |index| {
                let shared = planned.clone();
                async move { shared.row_groups(index, partition).await }
            })
            .map_ok(|row_groups| futures::stream::iter(row_groups.into_iter().map(Ok)))
            .try_flatten();
        let read = shared.clone();
        let batches = row_groups
            .and_then(move |row_group| {
                let (shared, counters) = (read.clone(), counters.clone());
                async move { shared.read(row_group, partition, &counters).await }
            })
            .map_ok(move |batch| {
                let slices: Vec<DfResult<RecordBatch>> = (0..batch.num_rows())
                    .step_by(batch_size)
                    .map(
                        |offset| Ok(batch.slice(offset, batch_size.min(batch.num_rows() - offset))),
                    )
                    .collect();
                futures::stream::iter(slices)
            })
            .try_flatten();
        // The limit: batches until it is reached, the last one cut, and
        // no row group read after it (nor after an error).
        let limit = shared.limit.unwrap_or(usize::MAX);
        let limited = futures::stream::unfold(
            (Box::pin(batches), limit),
            move |(mut batches, remaining)| {
                let output_rows = output_rows.clone();
                async move {
                    if remaining == 0 {
                        return None;
                    }
                    match batches.next().await? {
                        Ok(batch) => {
                            let rows = batch.num_rows().min(remaining);
                            output_rows.add(rows);
                            Some((Ok(batch.slice(0, rows)), (batches, remaining - rows)))
                        }
                        Err(error) => Some((Err(error), (batches, 0))),
                    }
                }
            },
        );
        Ok(make_cooperative(Box::pin(RecordBatchStreamAdapter::new(
            shared.schema.clone(),
            limited,
        ))))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.shared.metrics.clone_inner())
    }
}

/// The hot-data figures of one partition, in `EXPLAIN ANALYZE`.
#[derive(Debug, Clone)]
struct HotCounters {
    hits: Count,
    misses: Count,
    bytes_saved: Count,
    bytes_decoded: Count,
    output_rows: Count,
}

impl HotCounters {
    fn new(metrics: &ExecutionPlanMetricsSet, partition: usize) -> Self {
        let count = |name: &'static str| MetricBuilder::new(metrics).counter(name, partition);
        Self {
            hits: count("hot_chunks_hit"),
            misses: count("hot_chunks_missed"),
            bytes_saved: count("hot_bytes_saved"),
            bytes_decoded: count("hot_bytes_decoded"),
            output_rows: MetricBuilder::new(metrics).output_rows(partition),
        }
    }
}

/// `metadata` with the Arrow schema the Parquet scan reads the file as
/// (legacy INT96 timestamps as microseconds).
fn read_as(metadata: Arc<ParquetMetaData>) -> DfResult<ArrowReaderMetadata> {
    let plain = ArrowReaderMetadata::try_new(metadata.clone(), ArrowReaderOptions::new())?;
    let coerced = Int96Coercer::new(
        plain.parquet_schema(),
        plain.schema(),
        &TimeUnit::Microsecond,
    )
    .coerce();
    match coerced {
        Some(schema) => Ok(ArrowReaderMetadata::try_new(
            metadata,
            ArrowReaderOptions::new().with_schema(Arc::new(schema)),
        )?),
        None => Ok(plain),
    }
}

/// One row group a partition reads.
struct RowGroupRead {
    file: usize,
    row_group: usize,
    /// The rows kept (the deletion vector's left out), or all.
    selection: Option<RowSelection>,
    /// How many rows it reads: those `selection` keeps, or this
    /// partition's share of them.
    rows: usize,
    metadata: ArrowReaderMetadata,
    /// For each column of the scan schema the scan returns: its top-level
    /// index in the file (`None`: not in the file, or a partition column).
    file_columns: Vec<Option<usize>>,
    /// The share of the row group's kept rows this partition reads, as an
    /// offset and a length, when the row group is shared (`rows` is then
    /// the share's length).
    share: Option<(usize, usize)>,
}

/// Rows of one row group assigned to one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    row_group: usize,
    partition: usize,
    /// How many of the row group's kept rows.
    rows: usize,
    /// Where they start among the kept rows, and how many, unless they
    /// are all of them.
    share: Option<(usize, usize)>,
}

impl Shared {
    /// The row groups (or shares of them) of file `index` that `partition`
    /// reads, of those the filter's statistics and the deletion vector do
    /// not rule out; see [`Shared::pieces`].
    async fn row_groups(&self, index: usize, partition: usize) -> DfResult<Vec<RowGroupRead>> {
        let hot_file = &self.files[index];
        let reader_metadata = match self.hot.footer(&hot_file.key) {
            Some(metadata) => metadata,
            None => {
                let mut reader = self.reader_factory.create_reader(
                    partition,
                    hot_file.file.clone(),
                    None,
                    &self.metrics,
                )?;
                let metadata = read_as(reader.get_metadata(None).await?)?;
                self.hot.keep_footer(&hot_file.key, metadata.clone());
                metadata
            }
        };
        let groups = reader_metadata.metadata().row_groups();
        let access = match hot_file.file.extensions.get::<ParquetRowSelection>() {
            Some(selection) => ParquetAccessPlan::try_new_from_overall_row_selection(
                selection.selection().clone(),
                groups,
            )?,
            None => ParquetAccessPlan::new_all(groups.len()),
        };
        // Shares are cut from the rows the deletion vector keeps, before
        // the query's filter prunes row groups, so that every query keys
        // a row group's chunks alike.
        let kept: Vec<usize> = access
            .inner()
            .iter()
            .zip(groups)
            .map(|(access, group)| match access {
                RowGroupAccess::Skip => 0,
                RowGroupAccess::Scan => group.num_rows().max(0) as usize,
                RowGroupAccess::Selection(selection) => selection.row_count(),
            })
            .collect();
        let mine: Vec<Piece> = self
            .pieces(index, &kept)
            .into_iter()
            .filter(|piece| piece.partition == partition && piece.rows > 0)
            .collect();
        if mine.is_empty() {
            return Ok(Vec::new());
        }
        let access = match &self.pruning {
            Some(pruning) => {
                let file_metrics = ParquetFileMetrics::new(
                    partition,
                    hot_file.file.object_meta.location.as_ref(),
                    &self.metrics,
                );
                let mut filter = RowGroupAccessPlanFilter::new(access);
                filter.prune_by_statistics(
                    &self.scan_schema,
                    reader_metadata.parquet_schema(),
                    groups,
                    pruning,
                    &file_metrics,
                );
                filter.build()
            }
            None => access,
        };
        let access = access.into_inner();
        let file_schema = reader_metadata.schema();
        let file_columns: Vec<Option<usize>> = self
            .projection
            .iter()
            .map(|&column| {
                file_schema
                    .index_of(self.scan_schema.field(column).name())
                    .ok()
            })
            .collect();
        let mut reads = Vec::new();
        for piece in mine {
            let selection = match access.get(piece.row_group) {
                Some(RowGroupAccess::Scan) => None,
                Some(RowGroupAccess::Selection(selection)) => Some(selection.clone()),
                Some(RowGroupAccess::Skip) | None => continue,
            };
            reads.push(RowGroupRead {
                file: index,
                row_group: piece.row_group,
                selection,
                rows: piece.rows,
                metadata: reader_metadata.clone(),
                file_columns: file_columns.clone(),
                share: piece.share,
            });
        }
        Ok(reads)
    }

    /// Which partition reads which rows of file `index`, whose row groups
    /// keep `kept` rows each. Row groups are dealt out round robin by file
    /// and row group index. When partitions outnumber the scan's row
    /// groups, each row group is split into equal shares for consecutive
    /// partitions. When the files are too few for the round robin to even
    /// out (a table of one file whose row groups hold 1M and 0.45M rows),
    /// the file's rows are cut into one consecutive range per partition.
    fn pieces(&self, index: usize, kept: &[usize]) -> Vec<Piece> {
        let partitions = self.partitions;
        let shares = partitions
            .div_ceil(self.files.len() * kept.len().max(1))
            .max(1);
        if shares > 1 {
            return (0..kept.len())
                .flat_map(|row_group| {
                    let rows = kept[row_group];
                    (0..shares).map(move |share| {
                        let start = rows * share / shares;
                        let length = rows * (share + 1) / shares - start;
                        Piece {
                            row_group,
                            partition: ((index + row_group) * shares + share) % partitions,
                            rows: length,
                            share: Some((start, length)),
                        }
                    })
                })
                .collect();
        }
        let round_robin: Vec<Piece> = kept
            .iter()
            .enumerate()
            .map(|(row_group, &rows)| Piece {
                row_group,
                partition: (index + row_group) % partitions,
                rows,
                share: None,
            })
            .collect();
        let total: usize = kept.iter().sum();
        let mut loads = vec![0usize; partitions];
        for piece in &round_robin {
            loads[piece.partition] += piece.rows;
        }
        let heaviest = loads.iter().copied().max().unwrap_or(0);
        let uneven = heaviest * partitions * 4 > total * 5;
        if self.files.len() >= 2 * partitions || !uneven {
            return round_robin;
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        for (row_group, &rows) in kept.iter().enumerate() {
            let end = start + rows;
            for partition in 0..partitions {
                let from = (total * partition / partitions).max(start);
                let to = (total * (partition + 1) / partitions).min(end);
                if from < to {
                    let whole = to - from == rows;
                    pieces.push(Piece {
                        row_group,
                        partition,
                        rows: to - from,
                        share: (!whole).then_some((from - start, to - from)),
                    });
                }
            }
            start = end;
        }
        pieces
    }

    /// The scan's columns of one row group: held chunks from memory, the
    /// others decoded from the file (and then held).
    async fn read(
        &self,
        read: RowGroupRead,
        partition: usize,
        counters: &HotCounters,
    ) -> DfResult<RecordBatch> {
        let hot_file = &self.files[read.file];
        let key = |column: usize, data_type: &DataType| ChunkKey {
            file: hot_file.key.clone(),
            deletion_vector: hot_file.deletion_vector.clone(),
            row_group: read.row_group,
            share: read.share,
            column,
            data_type: data_type.clone(),
        };
        let mut columns: Vec<Option<ArrayRef>> = vec![None; self.projection.len()];
        let mut missing: Vec<usize> = Vec::new();
        for (position, file_column) in read.file_columns.iter().enumerate() {
            let Some(file_column) = file_column else {
                continue;
            };
            let wanted = key(*file_column, self.schema.field(position).data_type());
            match self.hot.get(&wanted) {
                Some(array) => {
                    counters.hits.add(1);
                    counters.bytes_saved.add(array.get_array_memory_size());
                    columns[position] = Some(array);
                }
                None => {
                    counters.misses.add(1);
                    missing.push(*file_column);
                }
            }
        }
        if !missing.is_empty() {
            missing.sort_unstable();
            missing.dedup();
            let decoded = self.decode(&read, &missing, partition).await?;
            for (position, file_column) in read.file_columns.iter().enumerate() {
                let Some(file_column) = file_column else {
                    continue;
                };
                if columns[position].is_some() {
                    continue;
                }
                let data_type = self.schema.field(position).data_type();
                let name = read.metadata.schema().field(*file_column).name();
                let array = decoded.column_by_name(name).ok_or_else(|| {
                    DataFusionError::Internal(format!("column {name} not decoded"))
                })?;
                let array = retype(array, data_type)?;
                counters.bytes_decoded.add(array.get_array_memory_size());
                self.hot.insert(key(*file_column, data_type), array.clone());
                columns[position] = Some(array);
            }
        }
        let partition_values = &hot_file.file.partition_values;
        let file_fields = self.scan_schema.fields().len() - partition_values.len();
        let columns = columns
            .into_iter()
            .zip(&self.projection)
            .zip(self.schema.fields())
            .map(|((array, &column), field)| match array {
                Some(array) => Ok(array),
                None if column >= file_fields => {
                    let value = &partition_values[column - file_fields];
                    Ok(retype(
                        &value.to_array_of_size(read.rows)?,
                        field.data_type(),
                    )?)
                }
                None => Ok(new_null_array(field.data_type(), read.rows)),
            })
            .collect::<DfResult<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(read.rows));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }

    /// Columns `missing` (top-level indices in the file) of one row group
    /// (or this partition's share of it), decoded from Parquet with the
    /// deletion vector's rows left out.
    async fn decode(
        &self,
        read: &RowGroupRead,
        missing: &[usize],
        partition: usize,
    ) -> DfResult<RecordBatch> {
        let hot_file = &self.files[read.file];
        let reader: Box<dyn AsyncFileReader> = self.reader_factory.create_reader(
            partition,
            hot_file.file.clone(),
            None,
            &self.metrics,
        )?;
        let mask = ProjectionMask::roots(read.metadata.parquet_schema(), missing.iter().copied());
        let mut builder =
            ParquetRecordBatchStreamBuilder::new_with_metadata(reader, read.metadata.clone())
                .with_projection(mask)
                .with_row_groups(vec![read.row_group])
                .with_batch_size(read.rows.max(1));
        if let Some(selection) = &read.selection {
            builder = builder.with_row_selection(selection.clone());
        }
        if let Some((offset, length)) = read.share {
            builder = builder.with_offset(offset).with_limit(length);
        }
        let stream = builder.build()?;
        let schema = stream.schema().clone();
        // The parquet crate's page decoders still panic on some malformed
        // data (see `parquet_guard::contain_decoder_panics`): a corrupt
        // file, not a crashed query.
        let batches: Vec<RecordBatch> = std::panic::AssertUnwindSafe(stream.try_collect())
            .catch_unwind()
            .await
            .map_err(|panic| {
                DataFusionError::from(parquet_guard::decoder_failed(
                    &hot_file.key,
                    &parquet_guard::panic_message(panic.as_ref()),
                ))
            })??;
        let decoded = arrow::compute::concat_batches(&schema, &batches)?;
        if decoded.num_rows() != read.rows {
            return Err(DataFusionError::Internal(format!(
                "row group {} of {} decoded {} rows, expected {}",
                read.row_group,
                hot_file.key,
                decoded.num_rows(),
                read.rows
            )));
        }
        Ok(decoded)
    }
}
