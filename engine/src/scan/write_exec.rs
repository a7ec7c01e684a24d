//! `TableWriteExec`: the plan node that INSERT, DELETE and UPDATE become.
//! The write runs when the plan executes (never while planning, so
//! `EXPLAIN` changes nothing) and yields one row: the rows affected.

use std::fmt;
use std::sync::Arc;

use arrow::array::{RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::future::BoxFuture;

use crate::Result;

/// The work of a write: given the input rows (if the write has an input)
/// and the task context, the number of rows affected.
pub type WriteJob = Arc<
    dyn Fn(Option<SendableRecordBatchStream>, Arc<TaskContext>) -> BoxFuture<'static, Result<u64>>
        + Send
        + Sync,
>;

/// A write as a plan node with one output row, `count`.
pub struct TableWriteExec {
    operation: &'static str,
    table: String,
    input: Option<Arc<dyn ExecutionPlan>>,
    job: WriteJob,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for TableWriteExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TableWriteExec")
            .field("operation", &self.operation)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// The schema of a write's result: one `count` column.
pub fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

impl TableWriteExec {
    /// A write named `operation` on `table`, reading `input` (coalesced
    /// into one stream) when given.
    pub fn new(
        operation: &'static str,
        table: String,
        input: Option<Arc<dyn ExecutionPlan>>,
        job: WriteJob,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        let input = input.map(|plan| {
            if plan.properties().partitioning.partition_count() > 1 {
                Arc::new(CoalescePartitionsExec::new(plan)) as Arc<dyn ExecutionPlan>
            } else {
                plan
            }
        });
        Self {
            operation,
            table,
            input,
            job,
            properties,
        }
    }
}

impl DisplayAs for TableWriteExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "TableWriteExec: {} {}", self.operation, self.table)
    }
}

impl ExecutionPlan for TableWriteExec {
    fn name(&self) -> &str {
        "TableWriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.input.iter().collect()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = match (self.input.is_some(), children.pop()) {
            (true, Some(child)) if children.is_empty() => Some(child),
            (false, None) => None,
            _ => {
                return Err(DataFusionError::Internal(
                    "TableWriteExec children do not match".into(),
                ));
            }
        };
        Ok(Arc::new(Self::new(
            self.operation,
            self.table.clone(),
            input,
            self.job.clone(),
        )))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "TableWriteExec has one partition, not {partition}"
            )));
        }
        let input = match &self.input {
            Some(plan) => Some(plan.execute(0, context.clone())?),
            None => None,
        };
        let job = (self.job)(input, context);
        let schema = count_schema();
        let out = schema.clone();
        let stream = futures::stream::once(async move {
            let count = job
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            Ok(RecordBatch::try_new(
                out,
                vec![Arc::new(UInt64Array::from(vec![count]))],
            )?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
