//! What a query cost: per Delta scan, the files, row groups and pages it
//! skipped, the rows deletion vectors removed, and the bytes it fetched.
//! The same figures `EXPLAIN ANALYZE` prints, as values for APIs.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::physical_plan::metrics::{MetricValue, MetricsSet};
use serde::Serialize;

use crate::scan::DeltaScanExec;

/// Figures of one Delta table scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ScanProfile {
    /// Active files in the snapshot.
    pub files_total: u64,
    /// Files skipped by partition values and file statistics.
    pub files_pruned: u64,
    /// Files read.
    pub files_scanned: u64,
    /// Files read that carry a deletion vector.
    pub files_with_deletion_vectors: u64,
    /// Rows removed by deletion vectors.
    pub deletion_vector_rows_removed: u64,
    /// Row groups examined in the files read.
    pub row_groups_total: u64,
    /// Row groups skipped by statistics, bloom filters or the limit.
    pub row_groups_pruned: u64,
    /// Pages skipped by the page index.
    pub pages_pruned: u64,
    /// Rows in the pages skipped by the page index.
    pub page_rows_pruned: u64,
    /// Rows the scan produced.
    pub output_rows: u64,
    /// Reads sent to storage (whole files or ranges).
    pub fetch_requests: u64,
    /// Bytes fetched from storage (deletion vectors, footers, pages).
    pub bytes_fetched: u64,
    /// Bytes served from the session's in-memory range cache instead.
    pub bytes_from_cache: u64,
    /// Decoded column chunks served from hot data (no fetch, no decoding).
    pub hot_chunks_hit: u64,
    /// Column chunks looked for in hot data and decoded from Parquet.
    pub hot_chunks_missed: u64,
    /// Decoded bytes served from hot data.
    pub hot_bytes_saved: u64,
    /// Rows the dynamic filters of operators above (a join's keys) removed
    /// as they left the scan.
    pub dynamic_filter_rows_removed: u64,
}

/// How far a running query has got, summed over its Delta scans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueryProgress {
    /// Data files the query will read (after pruning).
    pub files_total: u64,
    /// Data files it has started reading.
    pub files_read: u64,
    /// Bytes fetched from storage so far.
    pub bytes_fetched: u64,
    /// Bytes served from the range cache so far.
    pub bytes_from_cache: u64,
    /// Reads sent to storage so far.
    pub fetch_requests: u64,
}

impl QueryProgress {
    /// The progress of `plan`, which may be running.
    pub fn of(plan: &Arc<dyn ExecutionPlan>) -> Self {
        let mut progress = Self::default();
        add_progress(plan, &mut progress);
        progress
    }
}

fn add_progress(plan: &Arc<dyn ExecutionPlan>, progress: &mut QueryProgress) {
    if let Some(scan) = plan.downcast_ref::<DeltaScanExec>() {
        let fetched = scan.fetched();
        progress.files_total += scan.figures().files_scanned as u64;
        progress.files_read += scan.data_files_read();
        progress.bytes_fetched += fetched.bytes;
        progress.bytes_from_cache += fetched.cached_bytes;
        progress.fetch_requests += fetched.requests;
        return;
    }
    for child in plan.children() {
        add_progress(child, progress);
    }
}

/// A query's result with what it cost.
#[derive(Debug, Clone)]
pub struct QueryProfile {
    /// The result rows.
    pub batches: Vec<RecordBatch>,
    /// One entry per Delta scan in the plan.
    pub scans: Vec<ScanProfile>,
    /// The executed plan with its metrics, as `EXPLAIN ANALYZE` prints it.
    pub plan: String,
}

impl QueryProfile {
    /// Profiles `plan` after it ran; `batches` is what it returned.
    pub fn of(plan: &Arc<dyn ExecutionPlan>, batches: Vec<RecordBatch>) -> Self {
        let mut scans = Vec::new();
        collect_scans(plan, &mut scans);
        Self {
            batches,
            scans,
            plan: DisplayableExecutionPlan::with_metrics(plan.as_ref())
                .indent(true)
                .to_string(),
        }
    }

    /// The figures of all scans added up.
    pub fn total(&self) -> ScanProfile {
        self.scans
            .iter()
            .fold(ScanProfile::default(), |a, b| ScanProfile {
                files_total: a.files_total + b.files_total,
                files_pruned: a.files_pruned + b.files_pruned,
                files_scanned: a.files_scanned + b.files_scanned,
                files_with_deletion_vectors: a.files_with_deletion_vectors
                    + b.files_with_deletion_vectors,
                deletion_vector_rows_removed: a.deletion_vector_rows_removed
                    + b.deletion_vector_rows_removed,
                row_groups_total: a.row_groups_total + b.row_groups_total,
                row_groups_pruned: a.row_groups_pruned + b.row_groups_pruned,
                pages_pruned: a.pages_pruned + b.pages_pruned,
                page_rows_pruned: a.page_rows_pruned + b.page_rows_pruned,
                output_rows: a.output_rows + b.output_rows,
                fetch_requests: a.fetch_requests + b.fetch_requests,
                bytes_fetched: a.bytes_fetched + b.bytes_fetched,
                bytes_from_cache: a.bytes_from_cache + b.bytes_from_cache,
                hot_chunks_hit: a.hot_chunks_hit + b.hot_chunks_hit,
                hot_chunks_missed: a.hot_chunks_missed + b.hot_chunks_missed,
                hot_bytes_saved: a.hot_bytes_saved + b.hot_bytes_saved,
                dynamic_filter_rows_removed: a.dynamic_filter_rows_removed
                    + b.dynamic_filter_rows_removed,
            })
    }
}

fn collect_scans(plan: &Arc<dyn ExecutionPlan>, out: &mut Vec<ScanProfile>) {
    if let Some(scan) = plan.downcast_ref::<DeltaScanExec>() {
        out.push(scan_profile(scan));
        return;
    }
    for child in plan.children() {
        collect_scans(child, out);
    }
}

fn scan_profile(scan: &DeltaScanExec) -> ScanProfile {
    let figures = scan.figures();
    let fetched = scan.fetched();
    let mut profile = ScanProfile {
        files_total: figures.files_total as u64,
        files_pruned: figures.files_pruned as u64,
        files_scanned: figures.files_scanned as u64,
        files_with_deletion_vectors: figures.files_with_deletion_vectors as u64,
        deletion_vector_rows_removed: figures.rows_removed_by_deletion_vectors,
        fetch_requests: fetched.requests,
        bytes_fetched: fetched.bytes,
        bytes_from_cache: fetched.cached_bytes,
        ..ScanProfile::default()
    };
    if let Some(metrics) = scan.input().metrics() {
        add_parquet_metrics(&metrics, &mut profile);
    }
    if let Some(metrics) = scan.metrics() {
        profile.dynamic_filter_rows_removed = metrics
            .sum_by_name("dynamic_filter_rows_removed")
            .map_or(0, |value| value.as_usize() as u64);
    }
    profile
}

fn add_parquet_metrics(metrics: &MetricsSet, profile: &mut ScanProfile) {
    for metric in metrics.iter() {
        match metric.value() {
            MetricValue::PruningMetrics {
                name,
                pruning_metrics,
            } => {
                let pruned = pruning_metrics.pruned() as u64;
                let matched = pruning_metrics.matched() as u64;
                match name.as_ref() {
                    "row_groups_pruned_statistics" => {
                        profile.row_groups_total += pruned + matched;
                        profile.row_groups_pruned += pruned;
                    }
                    "row_groups_pruned_bloom_filter" | "limit_pruned_row_groups" => {
                        profile.row_groups_pruned += pruned;
                    }
                    "page_index_pages_pruned" => profile.pages_pruned += pruned,
                    "page_index_rows_pruned" => profile.page_rows_pruned += pruned,
                    _ => {}
                }
            }
            MetricValue::OutputRows(count) => profile.output_rows += count.value() as u64,
            MetricValue::Count { name, count } => {
                let value = count.value() as u64;
                match name.as_ref() {
                    "hot_chunks_hit" => profile.hot_chunks_hit += value,
                    "hot_chunks_missed" => profile.hot_chunks_missed += value,
                    "hot_bytes_saved" => profile.hot_bytes_saved += value,
                    _ => {}
                }
            }
            _ => {}
        }
    }
}
