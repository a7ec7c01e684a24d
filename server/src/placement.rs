//! Where a query runs — in this server or on its cluster — decided from
//! what it would read, estimated from the Delta log before any data is
//! fetched, and told to the caller in response headers.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use wavelake_engine::ReadEstimate;
use wavelake_engine::scan::DeltaScanExec;
use wavelake_engine::server_sql::{
    RAN_ON_HEADER, READ_BYTES_HEADER, READ_FILES_HEADER, REASON_HEADER,
};

/// Where a statement runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// In this process.
    Server,
    /// On the Ballista cluster.
    Cluster,
}

impl Site {
    /// `server` or `cluster`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Cluster => "cluster",
        }
    }
}

/// Where a statement runs, why, and what it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Where.
    pub site: Site,
    /// Why, in words.
    pub reason: String,
    /// What the query reads, when it is one whose reads were estimated.
    pub reads: Option<ReadEstimate>,
}

impl Placement {
    /// Runs here, for `reason`.
    pub fn server(reason: impl Into<String>) -> Self {
        Self {
            site: Site::Server,
            reason: reason.into(),
            reads: None,
        }
    }

    /// Runs here because `plan` is a statement, not a query the cluster
    /// runs; `None` for a query.
    pub fn not_distributable(plan: &LogicalPlan) -> Option<Self> {
        if distributable(plan) {
            return None;
        }
        let kind = plan.display().to_string();
        let kind = kind.split(':').next().unwrap_or("this statement");
        Some(Self::server(format!("{kind} runs in the server")))
    }

    /// A query that runs here with no cluster configured, and what its
    /// Delta scans read as `plan` (the physical plan that runs) prunes them.
    pub fn measured(plan: &Arc<dyn ExecutionPlan>) -> Self {
        let mut reads = ReadEstimate::default();
        let _ = plan.apply(|node| {
            if let Some(scan) = node.downcast_ref::<DeltaScanExec>() {
                let figures = scan.figures();
                reads.scans += 1;
                reads.bytes = reads.bytes.saturating_add(figures.bytes_of_files_scanned);
                reads.files += figures.files_scanned;
                reads.files_pruned += figures.files_pruned;
            }
            Ok(TreeNodeRecursion::Continue)
        });
        let (bytes, files) = (reads.bytes, reads.files);
        let reason = if reads.scans == 0 {
            "it reads no table".to_owned()
        } else {
            format!("it reads {bytes} bytes in {files} files, and no cluster is configured")
        };
        Self {
            site: Site::Server,
            reason,
            reads: Some(reads),
        }
    }

    /// Where `plan` (optimized, so that its scans carry their filters)
    /// runs: on the cluster when one takes queries reading at least
    /// `cluster_threshold` bytes, the plan reads only Delta tables and it
    /// reads at least that much after partition and statistics pruning.
    pub fn of(plan: &LogicalPlan, state: &SessionState, cluster_threshold: Option<u64>) -> Self {
        if let Some(statement) = Self::not_distributable(plan) {
            return statement;
        }
        let estimate = ReadEstimate::of(plan, state);
        let (bytes, files) = (estimate.bytes, estimate.files);
        let (site, reason) = match (&estimate.other_source, cluster_threshold) {
            (Some(source), _) => (
                Site::Server,
                format!("{source} is not a Delta table the cluster can read"),
            ),
            (None, _) if estimate.scans == 0 => (Site::Server, "it reads no table".to_owned()),
            (None, None) => (
                Site::Server,
                format!("it reads {bytes} bytes in {files} files, and no cluster is configured"),
            ),
            (None, Some(threshold)) if bytes >= threshold => (
                Site::Cluster,
                format!(
                    "it reads {bytes} bytes in {files} files, at least the cluster threshold of \
                     {threshold} bytes"
                ),
            ),
            (None, Some(threshold)) => (
                Site::Server,
                format!(
                    "it reads {bytes} bytes in {files} files, under the cluster threshold of \
                     {threshold} bytes"
                ),
            ),
        };
        Self {
            site,
            reason,
            reads: Some(estimate),
        }
    }

    /// `server: why` or `cluster: why`, as `EXPLAIN`'s placement row.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.site.label(), self.reason)
    }

    /// Adds the placement headers to `headers`.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&header_text(&value)) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        set(RAN_ON_HEADER, self.site.label().to_owned());
        set(REASON_HEADER, self.reason.clone());
        if let Some(reads) = &self.reads {
            set(READ_BYTES_HEADER, reads.bytes.to_string());
            set(READ_FILES_HEADER, reads.files.to_string());
        }
    }
}

/// The plan kinds the cluster runs: queries, not statements.
fn distributable(plan: &LogicalPlan) -> bool {
    matches!(
        plan,
        LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Aggregate(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Join(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Window(_)
            | LogicalPlan::Distinct(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::TableScan(_)
    )
}

/// `text` as a header value can carry it: visible ASCII and spaces, other
/// characters as `?`.
fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_site_reason_and_reads() {
        let placement = Placement {
            site: Site::Cluster,
            reason: "it reads 9 bytes in 1 files — table é".into(),
            reads: Some(ReadEstimate {
                bytes: 9,
                files: 1,
                ..ReadEstimate::default()
            }),
        };
        let mut headers = HeaderMap::new();
        placement.write_headers(&mut headers);
        assert_eq!(headers[RAN_ON_HEADER], "cluster");
        assert_eq!(
            headers[REASON_HEADER],
            "it reads 9 bytes in 1 files ? table ?"
        );
        assert_eq!(headers[READ_BYTES_HEADER], "9");
        assert_eq!(headers[READ_FILES_HEADER], "1");
        let mut headers = HeaderMap::new();
        Placement::server("writes run here").write_headers(&mut headers);
        assert_eq!(headers[RAN_ON_HEADER], "server");
        assert!(!headers.contains_key(READ_BYTES_HEADER));
    }
}
