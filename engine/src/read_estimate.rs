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

/// Bytes of the column chunks the Delta scans of `plan` (optimized) fetch,
/// before row groups and pages are pruned: each kept file's footer is read
/// (see [`DeltaTableProvider::chunk_bytes`]). Unlike [`ReadEstimate`],
/// which counts whole files, it tells a query of a few narrow columns of a
/// table from one of its wide ones. Scans of anything else count nothing.
pub async fn chunk_bytes(plan: &LogicalPlan, state: &dyn Session) -> crate::Result<u64> {
    let mut scans = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
        {
            let filters = unnormalize_cols(scan.filters.iter().cloned());
            scans.push((provider, filters, scan.projection.clone()));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let mut bytes = 0u64;
    for (provider, filters, projection) in &scans {
        let Some(delta) = provider
            .downcast_ref::<DeltaTableProvider>()
            .filter(|delta| delta.is_plain_scan())
        else {
            continue;
        };
        let scanned = delta
            .chunk_bytes(state, filters, projection.as_deref())
            .await?;
        bytes = bytes.saturating_add(scanned);
    }
    Ok(bytes)
}
