//! Scalar subqueries in a spread plan. DataFusion's `ScalarSubqueryExec`
//! computes its subqueries before any partition of its input runs, into
//! values the input's expressions read. Spread, the input's partitions
//! run on several workers, some under exchanges that `ScalarSubqueryExec`
//! never sees: so every worker computes the subqueries once (a
//! [`SubqueryGate`]) before running any part of that input, its own
//! exchanges' producers included.

use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::ScalarSubqueryResults;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::scalar_subquery::ScalarSubqueryLink;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::{StreamExt, TryStreamExt};

type Opening = Shared<BoxFuture<'static, Result<(), Arc<DataFusionError>>>>;

/// The scalar subqueries of one `ScalarSubqueryExec`, computed at most
/// once on this worker.
pub(crate) struct SubqueryGate {
    subqueries: Vec<ScalarSubqueryLink>,
    results: ScalarSubqueryResults,
    opening: Mutex<Option<Opening>>,
}

impl fmt::Debug for SubqueryGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubqueryGate")
            .field("subqueries", &self.subqueries.len())
            .finish_non_exhaustive()
    }
}

impl SubqueryGate {
    pub(crate) fn new(subqueries: Vec<ScalarSubqueryLink>, results: ScalarSubqueryResults) -> Self {
        Self {
            subqueries,
            results,
            opening: Mutex::new(None),
        }
    }

    /// Waits until every subquery's value is known on this worker,
    /// computing them the first time.
    pub(crate) async fn open(&self, context: Arc<TaskContext>) -> DfResult<()> {
        let opening = {
            let mut opening = self
                .opening
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            opening
                .get_or_insert_with(|| {
                    let subqueries = self.subqueries.clone();
                    let results = self.results.clone();
                    compute(subqueries, results, context)
                        .map(|outcome| outcome.map_err(Arc::new))
                        .boxed()
                        .shared()
                })
                .clone()
        };
        opening.await.map_err(DataFusionError::Shared)
    }
}

async fn compute(
    subqueries: Vec<ScalarSubqueryLink>,
    results: ScalarSubqueryResults,
    context: Arc<TaskContext>,
) -> DfResult<()> {
    let values = subqueries.iter().map(|subquery| {
        let plan = Arc::clone(&subquery.plan);
        let context = Arc::clone(&context);
        async move { Ok::<_, DataFusionError>((subquery.index, value(plan, context).await?)) }
    });
    for (index, value) in futures::future::try_join_all(values).await? {
        results.set(index, value)?;
    }
    Ok(())
}

/// A scalar subquery's one value: NULL of its type for no row, an error
/// for more than one.
async fn value(plan: Arc<dyn ExecutionPlan>, context: Arc<TaskContext>) -> DfResult<ScalarValue> {
    let schema = plan.schema();
    if schema.fields().len() != 1 {
        return Err(DataFusionError::Internal(format!(
            "a scalar subquery of {} columns",
            schema.fields().len()
        )));
    }
    let mut stream = plan.execute(0, context)?;
    let mut found = None;
    while let Some(batch) = stream.next().await.transpose()? {
        if batch.num_rows() == 0 {
            continue;
        }
        if found.is_some() || batch.num_rows() > 1 {
            return Err(DataFusionError::Execution(
                "Scalar subquery returned more than one row".into(),
            ));
        }
        found = Some(ScalarValue::try_from_array(batch.column(0), 0)?);
    }
    match found {
        Some(value) => Ok(value),
        None => ScalarValue::try_from(schema.field(0).data_type()),
    }
}

/// Takes the place of a `ScalarSubqueryExec`: opens the gate, then runs
/// the input's partition. Its children are the input, then the
/// subqueries (each run whole on every worker).
pub(crate) struct GatedExec {
    gate: Arc<SubqueryGate>,
    input: Arc<dyn ExecutionPlan>,
    subqueries: Vec<Arc<dyn ExecutionPlan>>,
}

impl GatedExec {
    pub(crate) fn new(gate: Arc<SubqueryGate>, input: Arc<dyn ExecutionPlan>) -> Self {
        let subqueries = gate
            .subqueries
            .iter()
            .map(|s| Arc::clone(&s.plan))
            .collect();
        Self {
            gate,
            input,
            subqueries,
        }
    }
}

impl fmt::Debug for GatedExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatedExec").finish_non_exhaustive()
    }
}

impl DisplayAs for GatedExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "GatedExec: subqueries={}", self.subqueries.len())
    }
}

impl ExecutionPlan for GatedExec {
    fn name(&self) -> &str {
        "GatedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        std::iter::once(&self.input)
            .chain(self.subqueries.iter())
            .collect()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        std::iter::once(true)
            .chain(self.subqueries.iter().map(|_| false))
            .collect()
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Internal(
            "a spread plan's subquery gate is not rebuilt".into(),
        ))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let gate = Arc::clone(&self.gate);
        let input = Arc::clone(&self.input);
        let schema = self.schema();
        let rows = futures::stream::once(async move {
            gate.open(Arc::clone(&context)).await?;
            input.execute(partition, context)
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, rows)))
    }
}
