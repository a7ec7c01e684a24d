//! How a native session's hash joins build their tables. DataFusion builds
//! one table shared by every partition (`CollectLeft`) only when the build
//! side is under a fixed size (1 MB or 128k rows), and otherwise
//! repartitions both sides by key and builds a table per partition. On few
//! partitions the repartitioning costs more than it wins: every row of both
//! sides is hashed and copied once more, so that two threads can each build
//! half a table.

use datafusion::prelude::SessionConfig;

/// The settings that limit the build side of a shared table; a limit given
/// in the environment is kept as given.
const LIMIT_SETTINGS: [&str; 2] = [
    "DATAFUSION_OPTIMIZER_HASH_JOIN_SINGLE_PARTITION_THRESHOLD",
    "DATAFUSION_OPTIMIZER_HASH_JOIN_SINGLE_PARTITION_THRESHOLD_ROWS",
];

/// The most partitions on which every hash join builds one shared table.
const MOST_PARTITIONS_SHARING: usize = 2;

/// On at most two partitions, every hash join builds one table from its
/// smaller side, shared by the partitions, whatever that side's size:
/// TPC-H SF10 on two cores took 0.88x the time, no query slower (SF1
/// 0.997x). Memory is the same either way (one table of the build side's
/// rows). More partitions keep DataFusion's limits (one thread builds a
/// shared table while the others wait), as does a limit set in the
/// environment.
pub(crate) fn shared_build_sides(mut config: SessionConfig) -> SessionConfig {
    let limit_chosen = LIMIT_SETTINGS
        .iter()
        .any(|name| std::env::var_os(name).is_some());
    if config.target_partitions() <= MOST_PARTITIONS_SHARING && !limit_chosen {
        let optimizer = &mut config.options_mut().optimizer;
        optimizer.hash_join_single_partition_threshold = usize::MAX;
        optimizer.hash_join_single_partition_threshold_rows = usize::MAX;
    }
    config
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, RecordBatch};
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::physical_plan::ExecutionPlan;
    use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
    use datafusion::prelude::SessionContext;

    use super::*;

    /// The partition mode of the hash join of two 300,000-row tables
    /// (above DataFusion's own limits) on `partitions` partitions.
    async fn join_mode(partitions: usize) -> PartitionMode {
        let config = SessionConfig::new().with_target_partitions(partitions);
        let ctx = SessionContext::new_with_config(shared_build_sides(config));
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..300_000));
        let batch = RecordBatch::try_from_iter([("id", ids)]).unwrap();
        ctx.register_batch("a", batch.clone()).unwrap();
        ctx.register_batch("b", batch).unwrap();
        let sql = "SELECT a.id FROM a JOIN b ON a.id = b.id";
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await;
        let mut modes = Vec::new();
        plan.unwrap()
            .apply(|node: &Arc<dyn ExecutionPlan>| {
                if let Some(join) = node.downcast_ref::<HashJoinExec>() {
                    modes.push(*join.partition_mode());
                }
                Ok(TreeNodeRecursion::Continue)
            })
            .unwrap();
        assert_eq!(modes.len(), 1, "one hash join: {modes:?}");
        modes[0]
    }

    #[tokio::test]
    async fn two_partitions_share_one_table_of_a_large_build_side() {
        assert_eq!(join_mode(2).await, PartitionMode::CollectLeft);
        assert_eq!(join_mode(1).await, PartitionMode::CollectLeft);
    }

    #[tokio::test]
    async fn more_partitions_keep_datafusions_limits() {
        assert_eq!(join_mode(4).await, PartitionMode::Partitioned);
    }
}
