//! The operator that takes the place of DataFusion's repartitioning,
//! coalescing and merging inputs when a query is spread over workers: its
//! input partitions run on the workers they are placed on, which send each
//! row to the workers that read the output partition it belongs to.

use std::fmt;
use std::sync::{Arc, OnceLock};

use arrow::array::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics;
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties,
};
use futures::StreamExt;

use super::gate::SubqueryGate;
use super::inbox::{ExchangeHub, QueryInbox, group_error};
use super::message::{Address, Message, Payload};
use super::{ExchangeLink, WorkerGroup};

/// How an exchange maps its input's rows to its output partitions.
#[derive(Debug, Clone)]
pub(crate) enum Route {
    /// By the hash of expressions, as DataFusion's `RepartitionExec`
    /// hashes them, into this many partitions.
    Hash(Vec<Arc<dyn PhysicalExpr>>, usize),
    /// Batches dealt in turn to this many partitions.
    RoundRobin(usize),
    /// Every row to one partition (`CoalescePartitionsExec`), at most
    /// `fetch` of them when set.
    Gather {
        /// The most rows the partition yields.
        fetch: Option<usize>,
    },
    /// Input partition `p` is output partition `p`, on the workers that
    /// read it (the inputs of `SortPreservingMergeExec`).
    Keep,
}

/// Everything a query's exchanges share on one worker.
#[derive(Debug, Clone)]
pub(crate) struct Wiring {
    pub(crate) group: WorkerGroup,
    pub(crate) query: u64,
    pub(crate) plan: u64,
    pub(crate) inbox: Arc<QueryInbox>,
    pub(crate) hub: Arc<ExchangeHub>,
    pub(crate) link: Arc<dyn ExchangeLink>,
}

/// One exchange of a spread query.
pub(crate) struct ExchangeExec {
    id: u32,
    input: Arc<dyn ExecutionPlan>,
    route: Route,
    wiring: Wiring,
    /// The workers that read each output partition, set once the plan's
    /// placement is known.
    readers: Arc<OnceLock<Vec<Vec<usize>>>>,
    /// The scalar subqueries the input reads, computed before it runs.
    gates: Vec<Arc<SubqueryGate>>,
    properties: Arc<PlanProperties>,
}

impl ExchangeExec {
    pub(crate) fn new(
        id: u32,
        input: Arc<dyn ExecutionPlan>,
        route: Route,
        wiring: Wiring,
        gates: Vec<Arc<SubqueryGate>>,
    ) -> Self {
        let properties = properties(&input, &route);
        Self {
            id,
            input,
            route,
            wiring,
            readers: Arc::new(OnceLock::new()),
            gates,
            properties: Arc::new(properties),
        }
    }

    pub(crate) fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }

    /// Which workers read each output partition; set once.
    pub(crate) fn set_readers(&self, readers: Vec<Vec<usize>>) {
        let _ = self.readers.set(readers);
    }

    /// Runs the input partitions placed on this worker and sends their
    /// rows on; then tells every reader this worker is done. On failure
    /// every reader is told why.
    pub(crate) async fn produce(&self, context: Arc<TaskContext>) -> DfResult<()> {
        let outcome = self.produce_rows(context).await;
        let payload = match &outcome {
            Ok(()) => Payload::End,
            Err(e) => Payload::Failed(e.to_string()),
        };
        let partitions = self.properties.output_partitioning().partition_count();
        for partition in 0..partitions {
            self.send(partition, &payload)?;
        }
        outcome
    }

    async fn produce_rows(&self, context: Arc<TaskContext>) -> DfResult<()> {
        let group = self.wiring.group;
        let inputs = self.input.output_partitioning().partition_count();
        let mine: Vec<usize> = (0..inputs).filter(|input| group.places(*input)).collect();
        if mine.is_empty() {
            return Ok(());
        }
        for gate in &self.gates {
            gate.open(Arc::clone(&context)).await?;
        }
        let mine = mine.into_iter();
        let runs = mine.map(|input| self.produce_partition(input, inputs, Arc::clone(&context)));
        futures::future::try_join_all(runs).await?;
        Ok(())
    }

    async fn produce_partition(
        &self,
        input: usize,
        inputs: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<()> {
        let mut stream = self.input.execute(input, context)?;
        let mut partitioner = match &self.route {
            Route::Hash(exprs, count) => Some(BatchPartitioner::try_new(
                Partitioning::Hash(exprs.clone(), *count),
                metrics::Time::new(),
                input,
                inputs,
            )?),
            Route::RoundRobin(count) => Some(BatchPartitioner::try_new(
                Partitioning::RoundRobinBatch(*count),
                metrics::Time::new(),
                input,
                inputs,
            )?),
            Route::Gather { .. } | Route::Keep => None,
        };
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            match partitioner.as_mut() {
                Some(partitioner) => {
                    let mut pieces = Vec::new();
                    partitioner.partition(batch, |partition, piece| {
                        pieces.push((partition, piece));
                        Ok(())
                    })?;
                    for (partition, piece) in pieces {
                        self.send(partition, &Payload::Rows(piece))?;
                    }
                }
                None => {
                    let partition = match self.route {
                        Route::Keep => input,
                        _ => 0,
                    };
                    self.send(partition, &Payload::Rows(batch))?;
                }
            }
        }
        Ok(())
    }

    /// Sends `payload` for output partition `partition` to its readers,
    /// encoding it once for all the other workers (and copying it only
    /// when more than one needs it).
    fn send(&self, partition: usize, payload: &Payload) -> DfResult<()> {
        let readers = self
            .readers
            .get()
            .and_then(|readers| readers.get(partition))
            .ok_or_else(|| group_error("an exchange without its placement"))?;
        let wiring = &self.wiring;
        let me = wiring.group.index();
        let message = Message {
            address: Address {
                query: wiring.query,
                plan: wiring.plan,
                exchange: self.id,
                partition: partition as u32,
                from: me as u32,
            },
            payload: payload.clone(),
        };
        let others: Vec<usize> = readers.iter().copied().filter(|r| *r != me).collect();
        if others.len() < readers.len() {
            wiring.hub.accept(message.clone());
        }
        let Some((last, rest)) = others.split_last() else {
            return Ok(());
        };
        let bytes = message
            .encode()
            .map_err(|e| DataFusionError::External(e.into()))?;
        let link_error = |e: crate::Error| DataFusionError::External(e.into());
        for &reader in rest {
            wiring
                .link
                .send(reader, bytes.clone())
                .map_err(link_error)?;
        }
        wiring.link.send(*last, bytes).map_err(link_error)?;
        Ok(())
    }
}

/// The exchange's properties: those of its input but for the partitioning
/// (and, unless partitions are kept, the order).
fn properties(input: &Arc<dyn ExecutionPlan>, route: &Route) -> PlanProperties {
    let mut equivalences = input.equivalence_properties().clone();
    let partitioning = match route {
        Route::Hash(exprs, count) => Partitioning::Hash(exprs.clone(), *count),
        Route::RoundRobin(count) => Partitioning::UnknownPartitioning(*count),
        Route::Gather { .. } => Partitioning::UnknownPartitioning(1),
        Route::Keep => input.output_partitioning().clone(),
    };
    if !matches!(route, Route::Keep) {
        equivalences.clear_orderings();
        equivalences.clear_per_partition_constants();
    }
    PlanProperties::new(
        equivalences,
        partitioning,
        EmissionType::Incremental,
        Boundedness::Bounded,
    )
}

impl fmt::Debug for ExchangeExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExchangeExec")
            .field("id", &self.id)
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl DisplayAs for ExchangeExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let route = match &self.route {
            Route::Hash(exprs, count) => {
                let exprs: Vec<String> = exprs.iter().map(|e| e.to_string()).collect();
                format!("hash([{}], {count})", exprs.join(", "))
            }
            Route::RoundRobin(count) => format!("round_robin({count})"),
            Route::Gather { fetch: Some(fetch) } => format!("gather(fetch={fetch})"),
            Route::Gather { fetch: None } => "gather".to_owned(),
            Route::Keep => "keep".to_owned(),
        };
        write!(f, "ExchangeExec: id={}, route={route}", self.id)
    }
}

impl ExecutionPlan for ExchangeExec {
    fn name(&self) -> &str {
        "ExchangeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        if let Route::Hash(exprs, _) = &self.route {
            for expr in exprs {
                if f(expr)? == TreeNodeRecursion::Stop {
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![matches!(self.route, Route::Keep)]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self {
                id: self.id,
                properties: Arc::new(properties(&input, &self.route)),
                input,
                route: self.route.clone(),
                wiring: self.wiring.clone(),
                readers: Arc::clone(&self.readers),
                gates: self.gates.clone(),
            })),
            _ => Err(DataFusionError::Internal(
                "ExchangeExec has one child".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        let receiver = self.wiring.inbox.take(self.id, partition as u32)?;
        let rows: futures::stream::BoxStream<'static, DfResult<RecordBatch>> = match self.route {
            Route::Gather { fetch: Some(fetch) } => Box::pin(limited(receiver, fetch)),
            _ => Box::pin(receiver),
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), rows)))
    }
}

/// The first `fetch` rows of `rows`.
fn limited(
    rows: impl futures::Stream<Item = DfResult<RecordBatch>> + Send + 'static,
    fetch: usize,
) -> impl futures::Stream<Item = DfResult<RecordBatch>> + Send + 'static {
    futures::stream::unfold((Box::pin(rows), fetch), |(mut rows, left)| async move {
        if left == 0 {
            return None;
        }
        match rows.next().await? {
            Ok(batch) => {
                let kept = batch.slice(0, batch.num_rows().min(left));
                let left = left - kept.num_rows();
                Some((Ok(kept), (rows, left)))
            }
            Err(e) => Some((Err(e), (rows, 0))),
        }
    })
}
