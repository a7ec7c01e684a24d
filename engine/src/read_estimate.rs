//! What a query would read, from the Delta log alone: the data files its
//! scans keep after partition and statistics pruning, and their bytes,
//! known before anything is fetched. A server decides from it whether a
//! query goes to its cluster; a page, whether to run the query itself.

use datafusion::catalog::Session;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::expr_rewriter::unnormalize_cols;
use serde::Serialize;

use crate::scan::DeltaTableProvider;

/// The reads of one query, estimated from the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadEstimate {
    /// Bytes of the data files kept (a Parquet scan fetches parts of them).
    pub bytes: u64,
    /// Data files kept.
    pub files: usize,
    /// Data files pruned by partition values and statistics.
    pub files_pruned: usize,
    /// Scans of Delta tables.
    pub scans: usize,
    /// The first scan of something other than a plain Delta table scan
    /// (a metadata function, an in-memory result), which only the process
    /// that planned it can run.
    pub other_source: Option<String>,
}

impl ReadEstimate {
    /// The estimate for `plan` (optimized, so that its scans carry the
    /// filters pushed into them), in the session `state`.
    pub fn of(plan: &LogicalPlan, state: &dyn Session) -> Self {
        let mut estimate = Self::default();
        let _ = plan.apply(|node| {
            let LogicalPlan::TableScan(scan) = node else {
                return Ok(TreeNodeRecursion::Continue);
            };
            let provider = source_as_provider(&scan.source).ok();
            match provider
                .as_deref()
                .and_then(|p| p.downcast_ref::<DeltaTableProvider>())
            {
                Some(delta) if delta.is_plain_scan() => {
                    // As the physical planner hands them to the scan:
                    // without table qualifiers.
                    let filters = unnormalize_cols(scan.filters.iter().cloned());
                    let figures = delta.estimate(state, &filters);
                    estimate.scans += 1;
                    estimate.bytes = estimate
                        .bytes
                        .saturating_add(figures.bytes_of_files_scanned);
                    estimate.files += figures.files_scanned;
                    estimate.files_pruned += figures.files_pruned;
                    Ok(TreeNodeRecursion::Continue)
                }
                _ => {
                    estimate.other_source = Some(scan.table_name.to_string());
                    Ok(TreeNodeRecursion::Stop)
                }
            }
        });
        estimate
    }
}

#[cfg(all(test, feature = "native"))]
mod tests {
    use std::sync::Arc;

    use arrow::array::AsArray;

    use crate::{Error, SqlSession};

    async fn partitioned_table() -> (tempfile::TempDir, SqlSession) {
        let dir = tempfile::tempdir().unwrap();
        let engine = SqlSession::new()
            .with_storage_opener(Arc::new(|location: &str| crate::storage::open(location)));
        engine
            .register_root(dir.path().to_str().unwrap())
            .await
            .unwrap();
        for sql in [
            "CREATE TABLE t (id BIGINT, part STRING) PARTITIONED BY (part)",
            "INSERT INTO t SELECT value AS id, CAST(value % 2 AS STRING) AS part FROM range(1000)",
            "INSERT INTO t SELECT value + 1000 AS id, 'x' AS part FROM range(10)",
        ] {
            engine.query(sql).await.unwrap();
        }
        (dir, engine)
    }

    #[tokio::test]
    async fn the_estimate_is_what_the_scan_keeps_after_pruning() {
        let (_dir, engine) = partitioned_table().await;
        let table = engine.table("t").unwrap().snapshot().await.unwrap();
        let sizes: u64 = table.files().iter().map(|f| f.size as u64).sum();
        assert_eq!(table.files().len(), 3);

        let all = engine.estimate_reads("SELECT * FROM t").await.unwrap();
        assert_eq!((all.files, all.files_pruned, all.scans), (3, 0, 1));
        assert_eq!(all.bytes, sizes);
        assert_eq!(all.other_source, None);

        let one = engine
            .estimate_reads("SELECT count(*) FROM t WHERE part = '1'")
            .await
            .unwrap();
        assert_eq!((one.files, one.files_pruned), (1, 2));
        assert!(one.bytes > 0 && one.bytes < sizes, "{one:?}");
        // Statistics: no file holds ids above 2000.
        let none = engine
            .estimate_reads("SELECT * FROM t WHERE id > 2000")
            .await
            .unwrap();
        assert_eq!((none.files, none.bytes), (0, 0));
        let joined = engine
            .estimate_reads("SELECT * FROM t a JOIN t b ON a.id = b.id")
            .await
            .unwrap();
        assert_eq!((joined.scans, joined.bytes), (2, 2 * sizes));
    }

    #[tokio::test]
    async fn writes_have_no_estimate_and_other_sources_are_named() {
        let (_dir, engine) = partitioned_table().await;
        let refused = engine.estimate_reads("DELETE FROM t").await.unwrap_err();
        assert!(matches!(refused, Error::InvalidArgument(_)), "{refused}");
        let rows = engine.query("SELECT count(*) FROM t").await.unwrap();
        let count = rows[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0);
        assert_eq!(count, 1010, "nothing was deleted");
        let history = engine
            .estimate_reads("SELECT * FROM delta_history('t')")
            .await
            .unwrap();
        assert!(history.other_source.is_some(), "{history:?}");
    }
}
