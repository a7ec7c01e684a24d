//! `DeltaScanExec`: the Parquet scan of a Delta table, presenting logical
//! column names and reporting Delta-level metrics (files pruned, rows
//! removed by deletion vectors) in `EXPLAIN ANALYZE`.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, ListArray, MapArray, RecordBatch, StructArray};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::Statistics;
use datafusion::common::config::ConfigOptions;
use datafusion::common::stats::Precision;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result as DfResult;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::DynamicFilterPhysicalExpr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::filter_pushdown::{
    ChildFilterDescription, ChildPushdownResult, FilterDescription, FilterPushdownPhase,
    FilterPushdownPropagation,
};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, Metric, MetricBuilder, MetricValue, MetricsSet,
};
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};

use super::deferred::{ScanSource, partition_with_deletion_vectors};
use super::row_filters::RowFilters;
use crate::storage::{FetchFigures, FetchMeter, StorageRef};

/// Figures about a scan known when it is planned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanFigures {
    /// Active files in the snapshot.
    pub files_total: usize,
    /// Files skipped by partition values and statistics.
    pub files_pruned: usize,
    /// Files read.
    pub files_scanned: usize,
    /// Files read that carry a deletion vector.
    pub files_with_deletion_vectors: usize,
    /// Rows the deletion vectors remove from the files read.
    pub rows_removed_by_deletion_vectors: u64,
    /// Bytes of the files read (Parquet reads fetch only parts of them).
    pub bytes_of_files_scanned: u64,
    /// Files read while planning (deletion vectors), which are not among
    /// the data files the scan goes on to read.
    pub files_read_while_planning: u64,
}

/// Wraps the Parquet scan: renames physical columns to logical ones and
/// reports [`ScanFigures`] as metrics.
#[derive(Debug)]
pub struct DeltaScanExec {
    input: Arc<dyn ExecutionPlan>,
    schema: SchemaRef,
    figures: ScanFigures,
    meter: Arc<FetchMeter>,
    metrics: ExecutionPlanMetricsSet,
    properties: Arc<PlanProperties>,
    /// The table and deletion vectors, for a process that runs the scan
    /// elsewhere.
    source: Option<Arc<ScanSource>>,
    /// Where deletion vectors are read from when the scan runs (they were
    /// not applied when it was planned).
    deferred: Option<StorageRef>,
    /// Dynamic filters of operators above (a join's keys, a TopK's bound)
    /// that reached this scan.
    dynamic_filters: Vec<Arc<dyn PhysicalExpr>>,
    /// Whether the rows the scan returns are tested against
    /// `dynamic_filters` (see [`super::row_filters`]).
    row_tests: bool,
}

impl DeltaScanExec {
    /// Presents `input`'s columns, in order, with `schema`'s names and types;
    /// `meter` counts the scan's reads from storage.
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        schema: SchemaRef,
        figures: ScanFigures,
        meter: Arc<FetchMeter>,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            input.output_partitioning().clone(),
            EmissionType::Incremental,
            Boundedness::Bounded,
        ));
        let metrics = ExecutionPlanMetricsSet::new();
        let count = |name: &'static str, value: u64| {
            MetricBuilder::new(&metrics)
                .global_counter(name)
                .add(value as usize);
        };
        count("files_total", figures.files_total as u64);
        count("files_pruned", figures.files_pruned as u64);
        count("files_scanned", figures.files_scanned as u64);
        count("files_with_dv", figures.files_with_deletion_vectors as u64);
        count("dv_rows_removed", figures.rows_removed_by_deletion_vectors);
        Self {
            input,
            schema,
            figures,
            meter,
            metrics,
            properties,
            source: None,
            deferred: None,
            dynamic_filters: Vec::new(),
            row_tests: false,
        }
    }

    /// This scan over `input`, with everything else it knows.
    fn over(&self, input: Arc<dyn ExecutionPlan>) -> Self {
        let mut exec = Self::new(input, self.schema.clone(), self.figures, self.meter.clone());
        exec.source = self.source.clone();
        exec.deferred = self.deferred.clone();
        exec.dynamic_filters = self.dynamic_filters.clone();
        exec.row_tests = self.row_tests;
        exec
    }

    /// The same scan testing its rows against the dynamic filters it was
    /// given, or `None` if it was given none or tests them already.
    pub(crate) fn with_row_tests(&self) -> Option<Arc<dyn ExecutionPlan>> {
        if self.dynamic_filters.is_empty() || self.row_tests {
            return None;
        }
        let mut exec = self.over(self.input.clone());
        exec.row_tests = true;
        Some(Arc::new(exec))
    }

    /// The same scan, knowing its table and deletion vectors (`source`);
    /// with `deferred`, the vectors are read from it when each partition
    /// starts rather than having been applied when the scan was planned.
    pub fn with_source(mut self, source: Arc<ScanSource>, deferred: Option<StorageRef>) -> Self {
        self.source = Some(source);
        self.deferred = deferred;
        self
    }

    /// The table and deletion vectors of the scan, when known.
    pub fn source(&self) -> Option<&Arc<ScanSource>> {
        self.source.as_ref()
    }

    /// The schema the scan presents (logical column names).
    pub fn output_schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The planning-time figures of this scan.
    pub fn figures(&self) -> ScanFigures {
        self.figures
    }

    /// What the scan has read from storage so far (deletion vectors,
    /// footers, pages).
    pub fn fetched(&self) -> FetchFigures {
        self.meter.figures()
    }

    /// Data files the scan has started reading so far.
    pub fn data_files_read(&self) -> u64 {
        self.meter
            .figures()
            .files
            .saturating_sub(self.figures.files_read_while_planning)
            .min(self.figures.files_scanned as u64)
    }

    /// The Parquet scan underneath.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

impl DisplayAs for DeltaScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let s = &self.figures;
        write!(
            f,
            "DeltaScanExec: files={}/{} pruned={} dv_files={} dv_rows_removed={}",
            s.files_scanned,
            s.files_total,
            s.files_pruned,
            s.files_with_deletion_vectors,
            s.rows_removed_by_deletion_vectors
        )?;
        if self.row_tests {
            write!(f, " row_tests={}", self.dynamic_filters.len())?;
        }
        Ok(())
    }
}

impl ExecutionPlan for DeltaScanExec {
    fn name(&self) -> &str {
        "DeltaScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    /// The scan reads its file scan's partitions as they are: spreading
    /// them belongs above it, not between it and the file scan whose
    /// deletion vectors it applies (and whose node a cluster decodes).
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    /// The dynamic filters the scan tests rows against: a join computes
    /// its filter only where a node below it holds the filter (the
    /// Parquet scan does for pruning; a scan from hot data does not).
    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        if self.row_tests {
            for filter in &self.dynamic_filters {
                if f(filter)? == TreeNodeRecursion::Stop {
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(input) if children.is_empty() => Ok(Arc::new(self.over(input))),
            _ => Err(datafusion::error::DataFusionError::Internal(
                "DeltaScanExec takes exactly one child".into(),
            )),
        }
    }

    /// The Parquet scan's statistics (from the log), under this scan's
    /// column types: a bound whose type the scan changes is left unknown.
    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        let unknown = || Arc::new(Statistics::new_unknown(&self.schema));
        let Some(inner) = input_stats.first() else {
            return Ok(unknown());
        };
        if inner.column_statistics.len() != self.schema.fields().len() {
            return Ok(unknown());
        }
        let mut statistics = inner.as_ref().clone();
        let input_schema = self.input.schema();
        for ((column, ours), theirs) in statistics
            .column_statistics
            .iter_mut()
            .zip(self.schema.fields())
            .zip(input_schema.fields())
        {
            if ours.data_type() != theirs.data_type() {
                column.min_value = Precision::Absent;
                column.max_value = Precision::Absent;
                column.sum_value = Precision::Absent;
            }
        }
        Ok(Arc::new(statistics))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    /// Filters from above (a join's dynamic filter on its keys, a TopK's
    /// bound) reach the Parquet scan, which prunes row groups and pages
    /// with them, where they name a column the Parquet scan presents under
    /// the same name and type as this scan (not a renamed or retyped one,
    /// nor a row id).
    fn gather_filters_for_pushdown(
        &self,
        _phase: FilterPushdownPhase,
        parent_filters: Vec<Arc<dyn PhysicalExpr>>,
        _config: &ConfigOptions,
    ) -> DfResult<FilterDescription> {
        let input_schema = self.input.schema();
        let unchanged: HashSet<usize> = self
            .schema
            .fields()
            .iter()
            .zip(input_schema.fields())
            .enumerate()
            .filter(|(_, (ours, theirs))| {
                ours.name() == theirs.name()
                    && ours.data_type() == theirs.data_type()
                    && !super::is_row_id_column(ours.name())
            })
            .map(|(index, _)| index)
            .collect();
        Ok(FilterDescription::new().with_child(
            ChildFilterDescription::from_child_with_allowed_indices(
                &parent_filters,
                unchanged,
                &self.input,
            )?,
        ))
    }

    /// The Parquet scan prunes with the filters it took; the dynamic ones
    /// are also kept here, to test rows with where that pays (see
    /// [`super::row_filters`]). Every filter stays with its operator.
    fn handle_child_pushdown_result(
        &self,
        _phase: FilterPushdownPhase,
        child_pushdown_result: ChildPushdownResult,
        _config: &ConfigOptions,
    ) -> DfResult<FilterPushdownPropagation<Arc<dyn ExecutionPlan>>> {
        let dynamic: Vec<Arc<dyn PhysicalExpr>> = child_pushdown_result
            .parent_filters
            .iter()
            .map(|pushed| Arc::clone(&pushed.filter))
            .filter(|filter| filter.downcast_ref::<DynamicFilterPhysicalExpr>().is_some())
            .collect();
        let result = FilterPushdownPropagation::if_all(child_pushdown_result);
        if dynamic.is_empty() {
            return Ok(result);
        }
        let mut exec = self.over(self.input.clone());
        exec.dynamic_filters.extend(dynamic);
        Ok(result.with_updated_node(Arc::new(exec)))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let schema = self.schema.clone();
        let stream = match (&self.source, &self.deferred) {
            (Some(source), Some(storage)) => {
                let (input, source, storage) =
                    (self.input.clone(), source.clone(), storage.clone());
                let opened = async move {
                    let narrowed = partition_with_deletion_vectors(
                        &input, partition, &source, &storage, &context,
                    )
                    .await?;
                    narrowed.execute(0, context)
                };
                let stream = futures::stream::once(opened).try_flatten();
                Box::pin(RecordBatchStreamAdapter::new(self.input.schema(), stream))
            }
            _ => self.input.execute(partition, context)?,
        };
        let out_schema = schema.clone();
        let mut row_filters = self.row_tests.then(|| {
            let removed =
                MetricBuilder::new(&self.metrics).counter("dynamic_filter_rows_removed", partition);
            RowFilters::new(&self.dynamic_filters, removed)
        });
        let renamed = stream.map(move |batch| {
            let batch = batch?;
            if batch.schema() == out_schema {
                return Ok(batch);
            }
            let columns = batch
                .columns()
                .iter()
                .zip(out_schema.fields())
                .map(|(array, field)| retype(array, field.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RecordBatch::try_new(out_schema.clone(), columns)?)
        });
        let renamed = renamed.map(move |batch: DfResult<RecordBatch>| match &mut row_filters {
            Some(filters) => filters.apply(batch?),
            None => batch,
        });
        #[cfg(target_arch = "wasm32")]
        let renamed = host_turns::yielding(renamed);
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, renamed)))
    }

    #[cfg(feature = "distributed")]
    fn try_to_proto(
        &self,
        ctx: &datafusion::physical_plan::proto::ExecutionPlanEncodeCtx<'_>,
    ) -> DfResult<Option<datafusion_proto::protobuf::PhysicalPlanNode>> {
        crate::distributed::encode_scan(self, ctx).map(Some)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        let mut set = self.metrics.clone_inner();
        let fetched = self.meter.figures();
        for (name, value) in [
            ("bytes_fetched", fetched.bytes),
            ("fetch_requests", fetched.requests),
            ("bytes_from_cache", fetched.cached_bytes),
        ] {
            let count = Count::new();
            count.add(usize::try_from(value).unwrap_or(usize::MAX));
            set.push(Arc::new(Metric::new(
                MetricValue::Count {
                    name: name.into(),
                    count,
                },
                None,
            )));
        }
        Some(set)
    }
}

/// Gives `array` the type `target`, which differs at most in nested field
/// names (column mapping) or in a castable leaf type.
pub fn retype(array: &ArrayRef, target: &DataType) -> Result<ArrayRef, arrow::error::ArrowError> {
    if array.data_type() == target {
        return Ok(array.clone());
    }
    match (array.data_type(), target) {
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let source = array
                .as_any()
                .downcast_ref::<StructArray>()
                .ok_or_else(|| arrow::error::ArrowError::CastError("not a struct".into()))?;
            let children = source
                .columns()
                .iter()
                .zip(fields.iter())
                .map(|(child, field)| retype(child, field.data_type()))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Arc::new(StructArray::try_new(
                fields.clone(),
                children,
                source.nulls().cloned(),
            )?))
        }
        (DataType::List(_), DataType::List(field)) => {
            let source = array
                .as_any()
                .downcast_ref::<ListArray>()
                .ok_or_else(|| arrow::error::ArrowError::CastError("not a list".into()))?;
            let values = retype(source.values(), field.data_type())?;
            Ok(Arc::new(ListArray::try_new(
                field.clone(),
                source.offsets().clone(),
                values,
                source.nulls().cloned(),
            )?))
        }
        (DataType::Map(_, _), DataType::Map(field, sorted)) => {
            let source = array
                .as_any()
                .downcast_ref::<MapArray>()
                .ok_or_else(|| arrow::error::ArrowError::CastError("not a map".into()))?;
            let entries: ArrayRef = Arc::new(source.entries().clone());
            let entries = retype(&entries, field.data_type())?;
            let entries = entries
                .as_any()
                .downcast_ref::<StructArray>()
                .ok_or_else(|| arrow::error::ArrowError::CastError("bad map entries".into()))?
                .clone();
            Ok(Arc::new(MapArray::try_new(
                field.clone(),
                source.offsets().clone(),
                entries,
                source.nulls().cloned(),
                *sorted,
            )?))
        }
        _ => arrow::compute::cast(array, target),
    }
}

/// Turns for the JavaScript host's event loop during long queries.
#[cfg(target_arch = "wasm32")]
mod host_turns {
    use std::time::Duration;

    use futures::{Stream, StreamExt};

    /// Work done between two turns for the host at most.
    const WORK_BETWEEN_TURNS_MS: f64 = 40.0;

    /// `stream`, pausing for one `setTimeout` turn when the query has
    /// worked for [`WORK_BETWEEN_TURNS_MS`] since the last pause. A page
    /// stays responsive (input, rendering, progress) and can cancel a long
    /// query over data already in memory; a scan waiting on the network
    /// gives turns anyway.
    pub fn yielding<S, T>(stream: S) -> impl Stream<Item = T> + Send
    where
        S: Stream<Item = T> + Send,
        T: Send + 'static,
    {
        let mut last_turn = js_sys::Date::now();
        stream.then(move |item| {
            let now = js_sys::Date::now();
            let pause = now - last_turn >= WORK_BETWEEN_TURNS_MS;
            if pause {
                last_turn = now;
            }
            async move {
                if pause {
                    crate::timer::sleep(Duration::ZERO).await;
                }
                item
            }
        })
    }
}
