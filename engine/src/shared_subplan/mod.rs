//! Computing a repeated subquery once. DataFusion plans a common table
//! expression (or a subquery written twice) once per reference: TPC-H Q15
//! names `revenue0` twice, so it reads, filters and groups `lineitem`
//! twice. After optimization, [`SharedSubplanPlanner`] finds aggregations
//! that occur more than once in a plan over the same tables, wraps each
//! occurrence in a [`SharedSubplan`] node and plans them as
//! [`SharedSubplanExec`]s that share one result: the first occurrence to
//! run a partition computes it, every occurrence replays it.
//!
//! Only aggregations are shared: their output is usually small next to
//! what they read, and they produce nothing until their input is done, so
//! keeping their output whole costs no pipelining. Subplans with volatile
//! functions, subqueries or recursive references are never shared, so each
//! query still sees what it saw before. An aggregation that a finer one
//! over the same rows can answer (a total next to per-group sums) is first
//! rewritten to aggregate the finer one's result, see [`rollup`].

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchemaRef, Statistics};
use datafusion::datasource::source_as_provider;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, TableScan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::{CardinalityEffect, EmissionType};
use datafusion::physical_plan::statistics::{ChildStats, StatisticsArgs};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::{StreamExt, TryStreamExt};

mod rollup;

/// Plans queries with DataFusion's physical planner after marking the
/// aggregations that occur more than once, so each is computed once (an
/// aggregation a finer one can answer first rewritten to use it).
#[derive(Debug, Default)]
pub(crate) struct SharedSubplanPlanner;

#[async_trait]
impl QueryPlanner for SharedSubplanPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let rolled_up = rollup::roll_up_aggregations(logical_plan.clone())?;
        let marked = mark_shared_subplans(rolled_up)?;
        let extension: Arc<dyn ExtensionPlanner + Send + Sync> =
            Arc::new(SharedResultPlanner::default());
        DefaultPhysicalPlanner::with_extension_planners(vec![extension])
            .create_physical_plan(&marked, session)
            .await
    }
}

/// A subplan whose result is shared by every node with the same `id`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Hash)]
pub(crate) struct SharedSubplan {
    /// Which shared result this occurrence reads.
    pub id: usize,
    /// The subplan, identical in every occurrence.
    pub input: LogicalPlan,
}

impl UserDefinedLogicalNodeCore for SharedSubplan {
    fn name(&self) -> &str {
        "SharedSubplan"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SharedSubplan: id={}", self.id)
    }

    fn with_exprs_and_inputs(&self, _exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> DfResult<Self> {
        let [input] = <[LogicalPlan; 1]>::try_from(inputs).map_err(|inputs| {
            DataFusionError::Internal(format!("SharedSubplan has one input, not {}", inputs.len()))
        })?;
        Ok(Self { id: self.id, input })
    }
}

/// Wraps every aggregation that occurs at least twice in `plan` (over the
/// same tables, outside any other repeated aggregation) in a
/// [`SharedSubplan`] node; a plan without repeats comes back unchanged.
pub(crate) fn mark_shared_subplans(plan: LogicalPlan) -> DfResult<LogicalPlan> {
    let mut recursive = false;
    let mut groups: Vec<(LogicalPlan, usize)> = Vec::new();
    plan.apply_with_subqueries(|node| {
        if matches!(node, LogicalPlan::RecursiveQuery(_)) {
            recursive = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        if is_shareable(node)? {
            match groups.iter_mut().find(|(seen, _)| same_subplan(seen, node)) {
                Some((_, count)) => *count += 1,
                None => groups.push((node.clone(), 1)),
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if recursive {
        return Ok(plan);
    }
    let mut repeated: Vec<LogicalPlan> = groups
        .into_iter()
        .filter(|(_, count)| *count > 1)
        .map(|(subplan, _)| subplan)
        .collect();
    // A repeat nested in another repeat is wrapped only where the outer
    // one is not; drop any left with a single occurrence and try again.
    loop {
        if repeated.is_empty() {
            return Ok(plan);
        }
        let mut wrapped = vec![0usize; repeated.len()];
        let marked = plan.clone().transform_down_with_subqueries(|node| {
            let Some(id) = repeated
                .iter()
                .position(|shared| same_subplan(shared, &node))
            else {
                return Ok(Transformed::no(node));
            };
            wrapped[id] += 1;
            let shared = SharedSubplan { id, input: node };
            Ok(Transformed::new(
                LogicalPlan::Extension(Extension {
                    node: Arc::new(shared),
                }),
                true,
                TreeNodeRecursion::Jump,
            ))
        })?;
        if wrapped.iter().all(|count| *count > 1) {
            return Ok(marked.data);
        }
        repeated = repeated
            .into_iter()
            .zip(wrapped)
            .filter(|(_, count)| *count > 1)
            .map(|(subplan, _)| subplan)
            .collect();
    }
}

/// An aggregation over at least one table, with nothing that could give
/// two evaluations different answers.
fn is_shareable(node: &LogicalPlan) -> DfResult<bool> {
    if !matches!(node, LogicalPlan::Aggregate(_)) {
        return Ok(false);
    }
    let mut reads_a_table = false;
    let mut unsafe_to_share = false;
    node.apply(|inner| {
        match inner {
            LogicalPlan::TableScan(_) => reads_a_table = true,
            LogicalPlan::Extension(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => {
                unsafe_to_share = true
            }
            _ => {}
        }
        for expr in inner.expressions() {
            if may_differ_between_evaluations(&expr)? {
                unsafe_to_share = true;
            }
        }
        Ok(if unsafe_to_share {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    })?;
    Ok(reads_a_table && !unsafe_to_share)
}

/// Whether two evaluations of `expr` could differ: it calls a volatile
/// function or holds a subquery.
pub(crate) fn may_differ_between_evaluations(expr: &Expr) -> DfResult<bool> {
    Ok(expr.is_volatile() || expr.exists(|e| Ok(is_subquery(e)))?)
}

fn is_subquery(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) | Expr::SetComparison(_)
    )
}

/// The same plan over the same table providers: DataFusion's plan equality
/// compares table scans by name, which two snapshots of one table share.
fn same_subplan(a: &LogicalPlan, b: &LogicalPlan) -> bool {
    if a != b {
        return false;
    }
    let (scans_a, scans_b) = (table_scans(a), table_scans(b));
    scans_a.len() == scans_b.len() && scans_a.iter().zip(&scans_b).all(|(x, y)| same_source(x, y))
}

fn table_scans(plan: &LogicalPlan) -> Vec<&TableScan> {
    let mut scans = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            scans.push(scan);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    scans
}

fn same_source(a: &TableScan, b: &TableScan) -> bool {
    fn address<T: ?Sized>(value: &Arc<T>) -> *const () {
        Arc::as_ptr(value).cast::<()>()
    }
    match (source_as_provider(&a.source), source_as_provider(&b.source)) {
        (Ok(x), Ok(y)) => address(&x) == address(&y),
        _ => address(&a.source) == address(&b.source),
    }
}

/// Plans [`SharedSubplan`] nodes, giving the nodes of one id one result.
#[derive(Debug, Default)]
struct SharedResultPlanner {
    results: Mutex<Vec<(usize, Arc<SharedResult>)>>,
}

#[async_trait]
impl ExtensionPlanner for SharedResultPlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        let Some(shared) = node.as_any().downcast_ref::<SharedSubplan>() else {
            return Ok(None);
        };
        let [input] = physical_inputs else {
            return Err(DataFusionError::Internal(format!(
                "SharedSubplan has one input, not {}",
                physical_inputs.len()
            )));
        };
        let result = {
            let mut results = self
                .results
                .lock()
                .map_err(|_| DataFusionError::Internal("shared results poisoned".into()))?;
            match results.iter().find(|(id, _)| *id == shared.id) {
                Some((_, result)) => Arc::clone(result),
                None => {
                    let result = Arc::new(SharedResult::default());
                    results.push((shared.id, Arc::clone(&result)));
                    result
                }
            }
        };
        Ok(Some(Arc::new(SharedSubplanExec::new(
            shared.id,
            Arc::clone(input),
            result,
        ))))
    }
}

/// One occurrence of a shared subplan: runs `input` for a partition unless
/// another occurrence already did, then replays the shared batches.
pub(crate) struct SharedSubplanExec {
    id: usize,
    input: Arc<dyn ExecutionPlan>,
    result: Arc<SharedResult>,
    properties: Arc<PlanProperties>,
}

impl SharedSubplanExec {
    /// The subplan this occurrence shares with the others of the same id.
    pub(crate) fn shared_id(&self) -> usize {
        self.id
    }

    fn new(id: usize, input: Arc<dyn ExecutionPlan>, result: Arc<SharedResult>) -> Self {
        let properties = Arc::new(
            input
                .properties()
                .as_ref()
                .clone()
                .with_emission_type(EmissionType::Final),
        );
        Self {
            id,
            input,
            result,
            properties,
        }
    }
}

impl fmt::Debug for SharedSubplanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSubplanExec")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl DisplayAs for SharedSubplanExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SharedSubplanExec: id={}", self.id)
    }
}

impl ExecutionPlan for SharedSubplanExec {
    fn name(&self) -> &str {
        "SharedSubplanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        match input_stats {
            [input] => Ok(Arc::clone(input)),
            _ => Ok(Arc::new(Statistics::new_unknown(&self.schema()))),
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self::new(
                self.id,
                input,
                Arc::clone(&self.result),
            ))),
            _ => Err(DataFusionError::Internal(
                "SharedSubplanExec has one child".into(),
            )),
        }
    }

    fn reset_state(self: Arc<Self>) -> DfResult<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::new(
            self.id,
            Arc::clone(&self.input),
            Arc::new(SharedResult::default()),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let batches = self
            .result
            .partition(self.id, &self.input, partition, context)?;
        let stream = futures::stream::once(batches)
            .map_err(DataFusionError::Shared)
            .map_ok(|collected| {
                let count = collected.batches.len();
                futures::stream::iter((0..count).map(move |i| Ok(collected.batches[i].clone())))
            })
            .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.schema(),
            stream,
        )))
    }
}

/// The batches of one partition, held against the query's memory pool.
struct Collected {
    batches: Vec<RecordBatch>,
    _reservation: MemoryReservation,
}

type SharedBatches = Shared<BoxFuture<'static, Result<Arc<Collected>, Arc<DataFusionError>>>>;

/// The result the occurrences of one subplan share. The first occurrence
/// to run pins its own input: every partition comes from that one plan,
/// so operators that share state across partitions (repartitioning, a
/// join's build side) run once.
#[derive(Default)]
struct SharedResult {
    state: Mutex<Option<Pinned>>,
}

impl fmt::Debug for SharedResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedResult").finish_non_exhaustive()
    }
}

struct Pinned {
    input: Arc<dyn ExecutionPlan>,
    partitions: Vec<Option<SharedBatches>>,
}

impl SharedResult {
    /// The shared batches of `partition`, started (by whichever occurrence
    /// polls first) if no occurrence asked for them yet.
    fn partition(
        &self,
        id: usize,
        input: &Arc<dyn ExecutionPlan>,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SharedBatches> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| DataFusionError::Internal("shared result poisoned".into()))?;
        let pinned = state.get_or_insert_with(|| Pinned {
            input: Arc::clone(input),
            partitions: vec![None; input.output_partitioning().partition_count()],
        });
        let Some(slot) = pinned.partitions.get_mut(partition) else {
            return Err(DataFusionError::Internal(format!(
                "shared subplan {id} has no partition {partition}"
            )));
        };
        if let Some(batches) = slot {
            return Ok(batches.clone());
        }
        let reservation = MemoryConsumer::new(format!("SharedSubplan[{id}.{partition}]"))
            .register(context.memory_pool());
        let stream = pinned.input.execute(partition, context)?;
        let batches = collect(stream, reservation).boxed().shared();
        *slot = Some(batches.clone());
        Ok(batches)
    }
}

async fn collect(
    mut stream: SendableRecordBatchStream,
    reservation: MemoryReservation,
) -> Result<Arc<Collected>, Arc<DataFusionError>> {
    let mut batches = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(Arc::new)?;
        reservation
            .try_grow(batch.get_array_memory_size())
            .map_err(Arc::new)?;
        batches.push(batch);
    }
    Ok(Arc::new(Collected {
        batches,
        _reservation: reservation,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::{MemTable, provider_as_source};
    use datafusion::functions_aggregate::expr_fn::sum;
    use datafusion::logical_expr::{LogicalPlanBuilder, col};

    fn summed(provider: &Arc<MemTable>) -> LogicalPlan {
        let source = provider_as_source(Arc::clone(provider) as _);
        LogicalPlanBuilder::scan("t", source, None)
            .and_then(|scan| scan.aggregate(vec![col("k")], vec![sum(col("v"))]))
            .and_then(LogicalPlanBuilder::build)
            .expect("plan")
    }

    fn table() -> Arc<MemTable> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Int64, false),
        ]));
        Arc::new(MemTable::try_new(schema, vec![vec![]]).expect("table"))
    }

    #[test]
    fn equal_plans_over_different_tables_of_one_name_are_not_the_same() {
        let (first, second) = (table(), table());
        assert_eq!(summed(&first), summed(&second), "DataFusion compares names");
        assert!(same_subplan(&summed(&first), &summed(&first)));
        assert!(!same_subplan(&summed(&first), &summed(&second)));
    }

    #[test]
    fn only_aggregations_that_occur_twice_are_marked() {
        let provider = table();
        let aliased = |name: &str| {
            LogicalPlanBuilder::from(summed(&provider))
                .alias(name)
                .and_then(LogicalPlanBuilder::build)
                .expect("alias")
        };
        let twice = LogicalPlanBuilder::from(aliased("a"))
            .cross_join(aliased("b"))
            .and_then(LogicalPlanBuilder::build)
            .expect("plan");
        let marked = mark_shared_subplans(twice).expect("marked");
        let mut ids = Vec::new();
        marked
            .apply(|node| {
                if let LogicalPlan::Extension(extension) = node
                    && let Some(shared) = extension.node.as_any().downcast_ref::<SharedSubplan>()
                {
                    ids.push(shared.id);
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .expect("walk");
        assert_eq!(ids, vec![0, 0]);

        let once = summed(&provider);
        assert_eq!(mark_shared_subplans(once.clone()).expect("marked"), once);
    }
}
