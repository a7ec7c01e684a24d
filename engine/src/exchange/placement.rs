//! Which worker runs which partition of a spread plan. Worker 0 runs the
//! root; input partition `i` of every exchange runs on worker `i` modulo
//! the group's size; everything else runs where the partitions above it
//! need it. What this says about an exchange's output partitions (who
//! reads each) tells its producers where to send their rows.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

use super::WorkerGroup;
use super::exec::ExchangeExec;
use super::gate::GatedExec;
use crate::{Error, Result};

/// A partition of a plan node run by a worker.
type Run = (usize, usize);

/// Sets every exchange's readers, from the partitions of the plan under
/// `root` each worker runs. An operator whose partitions cannot be traced
/// to its inputs' makes the plan not spreadable.
pub(crate) fn place(root: &Arc<dyn ExecutionPlan>, group: WorkerGroup) -> Result<()> {
    let mut runs: HashMap<usize, BTreeSet<Run>> = HashMap::new();
    let mut exchanges: HashMap<usize, &ExchangeExec> = HashMap::new();
    let mut pending: Vec<(&Arc<dyn ExecutionPlan>, Vec<Run>)> = vec![(root, vec![(0, 0)])];
    while let Some((node, wanted)) = pending.pop() {
        let key = Arc::as_ptr(node) as *const () as usize;
        let known = runs.entry(key).or_default();
        let fresh: Vec<Run> = wanted
            .into_iter()
            .filter(|run| known.insert(*run))
            .collect();
        let first_visit = !exchanges.contains_key(&key) && known.len() == fresh.len();
        if fresh.is_empty() {
            continue;
        }
        if let Some(exchange) = node.downcast_ref::<ExchangeExec>() {
            exchanges.insert(key, exchange);
            if first_visit {
                let inputs = exchange.input().output_partitioning().partition_count();
                let produced = (0..inputs).map(|i| (group.worker_of(i), i)).collect();
                pending.push((exchange.input(), produced));
            }
            continue;
        }
        let children = node.children();
        for (child, runs) in child_runs(node.as_ref(), &children, &fresh, group)? {
            pending.push((children[child], runs));
        }
    }
    for (key, exchange) in exchanges {
        let outputs = exchange
            .properties()
            .output_partitioning()
            .partition_count();
        let mut readers = vec![Vec::new(); outputs];
        for &(worker, partition) in runs.get(&key).into_iter().flatten() {
            if let Some(readers) = readers.get_mut(partition) {
                readers.push(worker);
            }
        }
        exchange.set_readers(readers);
    }
    Ok(())
}

/// The partitions of each child that running `runs` of `node` runs.
fn child_runs(
    node: &dyn ExecutionPlan,
    children: &[&Arc<dyn ExecutionPlan>],
    runs: &[Run],
    group: WorkerGroup,
) -> Result<Vec<(usize, Vec<Run>)>> {
    let outputs = node.output_partitioning().partition_count();
    let counts: Vec<usize> = children
        .iter()
        .map(|child| child.output_partitioning().partition_count())
        .collect();
    let same = |child: usize| (child, runs.to_vec());
    let not_spreadable = || Error::NotSpreadable {
        reason: format!(
            "{} has {outputs} partitions over inputs of {counts:?}",
            node.name()
        ),
    };
    if node.is::<UnionExec>() {
        let mut placed: Vec<(usize, Vec<Run>)> = (0..children.len()).map(|c| (c, vec![])).collect();
        for &(worker, partition) in runs {
            let mut offset = 0;
            for (child, count) in counts.iter().enumerate() {
                if partition < offset + count {
                    placed[child].1.push((worker, partition - offset));
                    break;
                }
                offset += count;
            }
        }
        return Ok(placed);
    }
    if node.is::<GatedExec>() {
        // Any worker may open the gate: each computes the subqueries.
        let everywhere: Vec<Run> = (0..group.size()).map(|worker| (worker, 0)).collect();
        let subqueries = (1..children.len()).map(|child| (child, everywhere.clone()));
        return Ok(std::iter::once(same(0)).chain(subqueries).collect());
    }
    if node.is::<SortPreservingMergeExec>() {
        // Merges every partition of its (kept) input where it runs.
        let all = runs
            .iter()
            .flat_map(|(worker, _)| (0..counts.first().copied().unwrap_or(0)).map(|p| (*worker, p)))
            .collect();
        return Ok(vec![(0, all)]);
    }
    match counts.as_slice() {
        [] => Ok(vec![]),
        [count] if *count == outputs => Ok(vec![same(0)]),
        // A hash join building one table from all of its left side.
        [1, right] if *right == outputs => {
            let left = runs.iter().map(|(worker, _)| (*worker, 0)).collect();
            Ok(vec![(0, left), same(1)])
        }
        counts if counts.iter().all(|count| *count == outputs) => {
            Ok((0..counts.len()).map(same).collect())
        }
        _ => Err(not_spreadable()),
    }
}
