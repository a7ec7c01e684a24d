//! What a worker receives from its group: per query, a queue of rows for
//! every exchange partition it consumes, ended when every worker of the
//! group has said it sent all it had.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::RecordBatch;
use datafusion::error::{DataFusionError, Result as DfResult};
use futures::channel::mpsc;

use super::WorkerGroup;
use super::message::{Address, Message, Payload};
use crate::{Error, Result};

/// Queries whose ids are remembered after they finish, so that rows
/// arriving late are dropped rather than kept.
const REMEMBERED_FINISHED: usize = 1024;

type RowSender = mpsc::UnboundedSender<DfResult<RecordBatch>>;
/// The rows of one exchange partition as they arrive.
pub(crate) type RowReceiver = mpsc::UnboundedReceiver<DfResult<RecordBatch>>;

/// A worker's receiving end for every query it runs with its group: rows
/// from other workers are handed to [`ExchangeHub::deliver`], and the
/// query's exchanges read them from here.
#[derive(Debug)]
pub struct ExchangeHub {
    group: WorkerGroup,
    state: Mutex<HubState>,
}

#[derive(Debug, Default)]
struct HubState {
    queries: HashMap<u64, Arc<QueryInbox>>,
    finished: VecDeque<u64>,
}

impl ExchangeHub {
    /// The hub of worker `group.index()`.
    pub fn new(group: WorkerGroup) -> Self {
        Self {
            group,
            state: Mutex::default(),
        }
    }

    /// The group this hub's worker belongs to.
    pub fn group(&self) -> WorkerGroup {
        self.group
    }

    /// Takes a message another worker sent. A malformed message is an
    /// error and changes nothing; rows for a query already finished here
    /// are dropped.
    pub fn deliver(&self, bytes: &[u8]) -> Result<()> {
        let message = Message::decode(bytes)?;
        if message.address.from as usize >= self.group.size() {
            return Err(Error::WorkerGroup {
                reason: format!(
                    "a message from worker {} in a group of {}",
                    message.address.from,
                    self.group.size()
                ),
            });
        }
        self.accept(message);
        Ok(())
    }

    /// Routes a message to its query's inbox (made on the first message).
    pub(crate) fn accept(&self, message: Message) {
        if let Some(inbox) = self.inbox(message.address.query) {
            inbox.accept(message);
        }
    }

    /// Fails every partition of `query` still receiving, so its run here
    /// ends with `reason`.
    pub fn cancel(&self, query: u64, reason: &str) {
        if let Some(inbox) = self.inbox(query) {
            inbox.fail(reason);
        }
    }

    /// The inbox of `query`, or `None` once it finished here.
    pub(crate) fn inbox(&self, query: u64) -> Option<Arc<QueryInbox>> {
        let mut state = lock(&self.state);
        if state.finished.contains(&query) {
            return None;
        }
        let size = self.group.size();
        Some(Arc::clone(
            state
                .queries
                .entry(query)
                .or_insert_with(|| Arc::new(QueryInbox::new(size))),
        ))
    }

    /// Forgets `query`: it finished here, and whatever still arrives for
    /// it is dropped.
    pub(crate) fn finish(&self, query: u64) {
        let mut state = lock(&self.state);
        if let Some(inbox) = state.queries.remove(&query) {
            inbox.fail("the query finished on this worker");
        }
        state.finished.push_back(query);
        if state.finished.len() > REMEMBERED_FINISHED {
            state.finished.pop_front();
        }
    }

    /// Queries with an inbox here (started or sent to, not finished).
    pub fn open_queries(&self) -> usize {
        lock(&self.state).queries.len()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One query's partitions as they arrive.
#[derive(Debug)]
pub(crate) struct QueryInbox {
    size: usize,
    state: Mutex<InboxState>,
}

#[derive(Debug, Default)]
struct InboxState {
    /// The fingerprint of this worker's plan, once it planned the query.
    plan: Option<u64>,
    /// Fingerprints other workers sent before this one planned.
    seen_plans: BTreeSet<u64>,
    partitions: HashMap<(u32, u32), Slot>,
    failed: Option<String>,
}

#[derive(Debug)]
struct Slot {
    sender: Option<RowSender>,
    receiver: Option<RowReceiver>,
    taken: bool,
    ended: BTreeSet<u32>,
}

impl Slot {
    fn new() -> Self {
        let (sender, receiver) = mpsc::unbounded();
        Self {
            sender: Some(sender),
            receiver: Some(receiver),
            taken: false,
            ended: BTreeSet::new(),
        }
    }

    fn fail(&mut self, reason: &str) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.unbounded_send(Err(group_error(reason)));
        }
    }
}

/// A `WorkerGroup` error inside DataFusion.
pub(crate) fn group_error(reason: &str) -> DataFusionError {
    DataFusionError::External(Box::new(Error::WorkerGroup {
        reason: reason.to_owned(),
    }))
}

impl QueryInbox {
    fn new(size: usize) -> Self {
        Self {
            size,
            state: Mutex::default(),
        }
    }

    /// This worker planned the query with fingerprint `plan`: rows planned
    /// otherwise fail it.
    pub(crate) fn planned(&self, plan: u64) {
        let mut state = lock(&self.state);
        state.plan = Some(plan);
        if state.seen_plans.iter().any(|seen| *seen != plan) {
            Self::fail_all(&mut state, "the workers planned the query differently");
        }
    }

    /// The rows of partition `partition` of exchange `exchange`, once.
    pub(crate) fn take(&self, exchange: u32, partition: u32) -> DfResult<RowReceiver> {
        let mut state = lock(&self.state);
        let failed = state.failed.clone();
        let slot = state
            .partitions
            .entry((exchange, partition))
            .or_insert_with(Slot::new);
        if slot.taken {
            return Err(group_error(&format!(
                "partition {partition} of exchange {exchange} was read twice on one worker"
            )));
        }
        slot.taken = true;
        if let Some(reason) = failed {
            slot.fail(&reason);
        }
        slot.receiver
            .take()
            .ok_or_else(|| group_error("an exchange partition without its receiver"))
    }

    fn accept(&self, message: Message) {
        let Address {
            plan,
            exchange,
            partition,
            from,
            ..
        } = message.address;
        let mut state = lock(&self.state);
        if state.failed.is_some() {
            return;
        }
        match state.plan {
            Some(ours) if ours != plan => {
                Self::fail_all(&mut state, "the workers planned the query differently");
                return;
            }
            Some(_) => {}
            None => {
                state.seen_plans.insert(plan);
            }
        }
        let size = self.size;
        let slot = state
            .partitions
            .entry((exchange, partition))
            .or_insert_with(Slot::new);
        if slot.ended.contains(&from) {
            slot.fail(&format!("worker {from} sent rows after their end"));
            return;
        }
        match message.payload {
            Payload::Rows(batch) => {
                if let Some(sender) = &slot.sender {
                    let _ = sender.unbounded_send(Ok(batch));
                }
            }
            Payload::End => {
                slot.ended.insert(from);
                if slot.ended.len() == size {
                    slot.sender = None;
                }
            }
            Payload::Failed(reason) => {
                let reason = format!("worker {from} failed: {reason}");
                Self::fail_all(&mut state, &reason);
            }
        }
    }

    /// Ends every partition with `reason`, now and when read later.
    pub(crate) fn fail(&self, reason: &str) {
        let mut state = lock(&self.state);
        Self::fail_all(&mut state, reason);
    }

    fn fail_all(state: &mut InboxState, reason: &str) {
        if state.failed.is_none() {
            state.failed = Some(reason.to_owned());
        }
        for slot in state.partitions.values_mut() {
            slot.fail(reason);
        }
    }
}
