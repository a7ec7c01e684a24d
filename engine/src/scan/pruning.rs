//! Which files may hold rows matching a predicate, by their partition
//! values and the statistics the log keeps for them: what a scan skips,
//! and what a writer that read with a predicate checks a concurrent
//! commit's new files against.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::catalog::Session;
use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::utils::conjunction;
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};

use crate::protocol::Add;
use crate::snapshot::Snapshot;
use crate::stats::FilesStatistics;

/// A predicate over a table's logical columns, ready to judge files.
#[derive(Debug, Clone)]
pub struct FilePruner {
    snapshot: Snapshot,
    predicate: Arc<PruningPredicate>,
    columns: HashSet<String>,
}

impl FilePruner {
    /// A pruner for the conjunction of `filters` over `snapshot`'s schema;
    /// `None` when there are none or they cannot prune (every file may
    /// match).
    pub fn new(snapshot: &Snapshot, state: &dyn Session, filters: &[Expr]) -> Option<Self> {
        // Filters of a query over views compare with view literals; the
        // log's statistics are in the declared types.
        let predicate =
            crate::string_views::with_declared_literals(conjunction(filters.iter().cloned())?)
                .ok()?;
        let schema = snapshot.arrow_schema();
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).ok()?;
        let physical = state
            .create_physical_expr(predicate.clone(), &df_schema)
            .ok()?;
        let pruning = PruningPredicateBuilder::new()
            .with_file_schema(schema)
            .build(physical)?;
        let columns = predicate
            .column_refs()
            .into_iter()
            .map(|c| c.name.clone())
            .collect();
        Some(Self {
            snapshot: snapshot.clone(),
            predicate: pruning,
            columns,
        })
    }

    /// For each file of the snapshot, whether it may hold matching rows.
    pub fn snapshot_files(&self) -> Vec<bool> {
        let all = vec![true; self.snapshot.files().len()];
        let Ok(stats) = self.snapshot.files_statistics(&self.columns) else {
            return all;
        };
        self.predicate.prune(stats.as_ref()).unwrap_or(all)
    }

    /// For each of `files` (of this table, not necessarily of the
    /// snapshot: a concurrent commit's), whether it may hold matching rows.
    pub fn files(&self, files: &[&Add]) -> Vec<bool> {
        let all = vec![true; files.len()];
        let Ok(partition_values) = files
            .iter()
            .map(|add| self.snapshot.partition_values(add))
            .collect::<crate::Result<Vec<_>>>()
        else {
            return all;
        };
        let stats = FilesStatistics::new(
            files,
            self.snapshot.schemas(),
            &partition_values,
            &self.columns,
        );
        self.predicate.prune(&stats).unwrap_or(all)
    }
}
