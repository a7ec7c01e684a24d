//! One query spread over a group of workers that share no memory (Web
//! Workers in a page, or threads of Node): every worker plans the same
//! statement over the same table versions with one partition per worker,
//! and so holds the same plan. Where DataFusion would repartition,
//! coalesce or merge partitions, an [`exec::ExchangeExec`] runs the input
//! partitions placed on this worker and sends their rows, as Arrow IPC
//! messages, to the workers that read them; worker 0 runs the root and
//! returns the result.
//!
//! Nothing here owns threads or message ports: the host passes messages
//! from its [`ExchangeLink`] on the sending worker to
//! [`ExchangeHub::deliver`] on the receiving one, and cancels a query on
//! every worker once worker 0 has its result or any worker failed.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::common::JoinType;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::joins::{HashJoinExec, NestedLoopJoinExec, PartitionMode};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::scalar_subquery::{ScalarSubqueryExec, ScalarSubqueryLink};
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{
    ExecutionPlan, ExecutionPlanProperties, Partitioning, displayable,
};
use futures::future::{Either, select};

use crate::shared_subplan::SharedSubplanExec;
use crate::{Error, Result};

mod exec;
mod gate;
mod inbox;
mod message;
mod placement;

use exec::{ExchangeExec, Route, Wiring};
use gate::{GatedExec, SubqueryGate};
pub use inbox::ExchangeHub;
pub use message::{Address, Message, Payload};

/// Which worker of how many this one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerGroup {
    index: usize,
    size: usize,
}

impl WorkerGroup {
    /// Worker `index` of a group of `size`.
    pub fn new(index: usize, size: usize) -> Result<Self> {
        if size == 0 || index >= size {
            return Err(Error::InvalidArgument(format!(
                "worker {index} of a group of {size}"
            )));
        }
        Ok(Self { index, size })
    }

    /// This worker's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many workers the group has.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The worker an exchange's input partition runs on.
    pub fn worker_of(&self, partition: usize) -> usize {
        partition % self.size
    }

    /// Whether an exchange's input partition runs on this worker.
    pub fn places(&self, partition: usize) -> bool {
        self.worker_of(partition) == self.index
    }
}

/// Sends a message to another worker of the group; the host carries it to
/// that worker's [`ExchangeHub::deliver`].
pub trait ExchangeLink: Send + Sync + std::fmt::Debug {
    /// Sends `message` to worker `to`.
    fn send(&self, to: usize, message: Vec<u8>) -> Result<()>;
}

/// This worker's part of a query spread over its group.
#[derive(Debug)]
pub struct SpreadQuery {
    root: Arc<dyn ExecutionPlan>,
    exchanges: Vec<Arc<ExchangeExec>>,
    task: Arc<TaskContext>,
    wiring: Wiring,
}

impl SpreadQuery {
    /// Spreads `plan` (planned with one partition per worker of the hub's
    /// group) as query `query`. Every worker must spread the same
    /// statement over the same table versions under the same id.
    pub fn new(
        plan: Arc<dyn ExecutionPlan>,
        task: Arc<TaskContext>,
        query: u64,
        hub: Arc<ExchangeHub>,
        link: Arc<dyn ExchangeLink>,
    ) -> Result<Self> {
        let group = hub.group();
        let fingerprint = fingerprint(&plan);
        let inbox = hub.inbox(query).ok_or_else(|| Error::WorkerGroup {
            reason: format!("query {query} already ran on this worker"),
        })?;
        let wiring = Wiring {
            group,
            query,
            plan: fingerprint,
            inbox,
            hub,
            link,
        };
        match Self::wire(plan, task, wiring.clone()) {
            Ok(spread) => Ok(spread),
            Err(e) => {
                wiring.hub.finish(query);
                Err(e)
            }
        }
    }

    fn wire(plan: Arc<dyn ExecutionPlan>, task: Arc<TaskContext>, wiring: Wiring) -> Result<Self> {
        let group = wiring.group;
        let plan = match plan.output_partitioning().partition_count() {
            1 => plan,
            _ => Arc::new(CoalescePartitionsExec::new(plan)),
        };
        let mut rewrite = Rewrite {
            wiring: &wiring,
            exchanges: Vec::new(),
            done: HashMap::new(),
            shared: HashMap::new(),
            gates: Vec::new(),
        };
        let root = rewrite.visit(&plan)?;
        let exchanges = rewrite.exchanges;
        placement::place(&root, group)?;
        wiring.inbox.planned(wiring.plan);
        Ok(Self {
            root,
            exchanges,
            task,
            wiring,
        })
    }

    /// The plan with its exchanges, as this worker runs it.
    pub fn plan(&self) -> &Arc<dyn ExecutionPlan> {
        &self.root
    }

    /// Runs this worker's part: its share of every exchange's input and,
    /// on worker 0, the root, whose rows it returns (`None` elsewhere).
    /// Worker 0 returns once it has the result; another worker returns
    /// once it sent all it had. Either way the query is then finished
    /// here, and the host should cancel it on the other workers.
    pub async fn run(self) -> Result<Option<Vec<RecordBatch>>> {
        let producers = futures::future::try_join_all(
            self.exchanges
                .iter()
                .map(|exchange| exchange.produce(Arc::clone(&self.task))),
        );
        let outcome = if self.wiring.group.index() == 0 {
            let root =
                datafusion::physical_plan::collect(Arc::clone(&self.root), self.task.clone());
            match select(Box::pin(root), Box::pin(producers)).await {
                Either::Left((result, _)) => result.map(Some),
                Either::Right((Err(e), _)) => Err(e),
                Either::Right((Ok(_), root)) => root.await.map(Some),
            }
        } else {
            producers.await.map(|_| None)
        };
        self.wiring.hub.finish(self.wiring.query);
        Ok(outcome?)
    }
}

/// A hash of the plan's text, the same on every worker that planned the
/// same statement the same way.
fn fingerprint(plan: &Arc<dyn ExecutionPlan>) -> u64 {
    let text = displayable(plan.as_ref()).indent(true).to_string();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// Replaces DataFusion's repartitioning, coalescing and merging inputs by
/// exchanges, numbered in the order met, and scalar subqueries by gates
/// ([`gate`]); a subplan shared by reference (or as one
/// [`SharedSubplanExec`]) stays shared.
struct Rewrite<'a> {
    wiring: &'a Wiring,
    exchanges: Vec<Arc<ExchangeExec>>,
    done: HashMap<usize, Arc<dyn ExecutionPlan>>,
    shared: HashMap<usize, Arc<dyn ExecutionPlan>>,
    /// The subquery gates of the `ScalarSubqueryExec`s being visited.
    gates: Vec<Arc<SubqueryGate>>,
}

impl Rewrite<'_> {
    fn visit(&mut self, node: &Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        let key = Arc::as_ptr(node) as *const () as usize;
        if let Some(done) = self.done.get(&key) {
            return Ok(Arc::clone(done));
        }
        if let Some(scalar) = node.downcast_ref::<ScalarSubqueryExec>() {
            let subqueries = scalar
                .subqueries()
                .iter()
                .map(|link| {
                    Ok(ScalarSubqueryLink {
                        plan: self.visit(&link.plan)?,
                        index: link.index,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let gate = Arc::new(SubqueryGate::new(subqueries, scalar.results().clone()));
            self.gates.push(Arc::clone(&gate));
            let input = self.visit(scalar.input());
            self.gates.pop();
            let gated: Arc<dyn ExecutionPlan> = Arc::new(GatedExec::new(gate, input?));
            self.done.insert(key, Arc::clone(&gated));
            return Ok(gated);
        }
        let shared_id = node
            .downcast_ref::<SharedSubplanExec>()
            .map(SharedSubplanExec::shared_id);
        let children = match shared_id.and_then(|id| self.shared.get(&id)) {
            Some(input) => vec![Arc::clone(input)],
            None => node
                .children()
                .into_iter()
                .map(|child| self.visit(child))
                .collect::<Result<Vec<_>>>()?,
        };
        if let (Some(id), [input]) = (shared_id, children.as_slice()) {
            self.shared.entry(id).or_insert_with(|| Arc::clone(input));
        }
        let mut children = children;
        if emits_build_side_at_end(node.as_ref()) {
            // Which build rows matched is known only once every probe
            // partition ran: they all run on one worker.
            if let Some(probe) = children.pop() {
                let probe = match probe.output_partitioning().partition_count() {
                    1 => probe,
                    _ => self.exchange(probe, Route::Gather { fetch: None }),
                };
                children.push(probe);
            }
        }
        let rewritten: Arc<dyn ExecutionPlan> =
            if let Some(repartition) = node.downcast_ref::<RepartitionExec>() {
                if repartition.preserve_order() {
                    return Err(Error::NotSpreadable {
                        reason: "a repartitioning that keeps its input's order".into(),
                    });
                }
                let route = match repartition.partitioning() {
                    Partitioning::Hash(exprs, count) => Route::Hash(exprs.clone(), *count),
                    Partitioning::RoundRobinBatch(count) => Route::RoundRobin(*count),
                    other => {
                        return Err(Error::NotSpreadable {
                            reason: format!("repartitioning by {other}"),
                        });
                    }
                };
                self.exchange(single(children)?, route)
            } else if node.is::<CoalescePartitionsExec>() {
                let fetch = node.fetch();
                self.exchange(single(children)?, Route::Gather { fetch })
            } else if node.is::<SortPreservingMergeExec>() {
                let kept = self.exchange(single(children)?, Route::Keep);
                replace_children_if_necessary(Arc::clone(node), vec![kept])?
            } else {
                replace_children_if_necessary(Arc::clone(node), children)?
            };
        self.done.insert(key, Arc::clone(&rewritten));
        Ok(rewritten)
    }

    fn exchange(&mut self, input: Arc<dyn ExecutionPlan>, route: Route) -> Arc<dyn ExecutionPlan> {
        let id = self.exchanges.len() as u32;
        let exchange = Arc::new(ExchangeExec::new(
            id,
            input,
            route,
            self.wiring.clone(),
            self.gates.clone(),
        ));
        self.exchanges.push(Arc::clone(&exchange));
        exchange
    }
}

/// Whether `node` is a join that builds a table of its left side shared
/// by its partitions and emits left rows (unmatched, or matched once) when
/// the last partition ends.
fn emits_build_side_at_end(node: &dyn ExecutionPlan) -> bool {
    let join_type = if let Some(join) = node.downcast_ref::<HashJoinExec>() {
        if *join.partition_mode() != PartitionMode::CollectLeft {
            return false;
        }
        *join.join_type()
    } else if let Some(join) = node.downcast_ref::<NestedLoopJoinExec>() {
        *join.join_type()
    } else {
        return false;
    };
    matches!(
        join_type,
        JoinType::Left
            | JoinType::LeftSemi
            | JoinType::LeftAnti
            | JoinType::LeftMark
            | JoinType::Full
    )
}

fn single(mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
    match (children.pop(), children.is_empty()) {
        (Some(child), true) => Ok(child),
        _ => Err(Error::NotSpreadable {
            reason: "an exchange without exactly one input".into(),
        }),
    }
}
