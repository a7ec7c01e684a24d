//! Results of repeated queries (a dashboard refreshing), kept in a byte
//! budget and answered again without running the query.
//!
//! A result is kept under the statement's text, its plan, and the state of
//! every table it reads: location, table id, version and that version's
//! commit time. A Delta version never changes once committed, so a result
//! stays right for as long as its tables are at those versions; a commit
//! makes a new key, never a stale answer, and the budget is the only
//! reason anything leaves. A query is not kept when its answer could
//! change with nothing committed ([`NotCacheable`]): it calls a function
//! that is not immutable (`now()`, `random()`), reads anything but a Delta
//! table (metadata tables, `information_schema`, a command's rows), or
//! reads a table whose buffered rows are not yet committed.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use quick_cache::Weighter;

use crate::scan::DeltaTableProvider;

/// Why a query's result is not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotCacheable {
    /// The plan is no query (DDL, DML, `EXPLAIN`, a session statement).
    NotAQuery,
    /// The query calls a function whose answer may differ between runs.
    Unstable {
        /// The function's name.
        function: String,
    },
    /// The query reads something other than a Delta table.
    NotADeltaTable {
        /// The name the plan gives it.
        table: String,
    },
    /// A table the query reads has rows beyond its snapshot (buffered and
    /// not yet committed), or the scan reads row ids or some files only.
    NotItsSnapshot {
        /// The name the plan gives it.
        table: String,
    },
}

impl fmt::Display for NotCacheable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAQuery => write!(f, "the statement is not a query"),
            Self::Unstable { function } => {
                write!(f, "{function}() may answer differently each time")
            }
            Self::NotADeltaTable { table } => write!(f, "{table} is not a Delta table"),
            Self::NotItsSnapshot { table } => {
                write!(f, "{table} has rows not yet committed")
            }
        }
    }
}

/// The state of one table a result was read from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TableState {
    location: String,
    table_id: String,
    version: i64,
    committed_at: Option<i64>,
}

/// What a result depends on: the statement's text, its plan (with the
/// types of its columns) and its tables' states.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ResultKey {
    sql: String,
    plan: String,
    tables: Vec<TableState>,
}

/// A query whose result may be kept: its key, and the tables it reads, to
/// check again once it has run that nothing arrived in them meanwhile.
#[derive(Debug)]
pub struct CacheableQuery {
    key: ResultKey,
    tables: Vec<Arc<dyn TableProvider>>,
}

impl CacheableQuery {
    /// The query `sql` planned as `plan` (before optimization), or why its
    /// result may not be kept.
    pub fn of(sql: &str, plan: &LogicalPlan) -> Result<Self, NotCacheable> {
        if !is_query(plan) {
            return Err(NotCacheable::NotAQuery);
        }
        if let Some(function) = first_unstable_function(plan) {
            return Err(NotCacheable::Unstable { function });
        }
        let mut tables = Vec::new();
        let mut states = Vec::new();
        let mut refused = None;
        let _ = plan.apply_with_subqueries(|node| {
            match node {
                LogicalPlan::TableScan(scan) => {
                    let table = scan.table_name.to_string();
                    let provider = source_as_provider(&scan.source).ok();
                    let delta = provider
                        .as_ref()
                        .and_then(|p| p.as_ref().downcast_ref::<DeltaTableProvider>());
                    match (delta, provider.clone()) {
                        (Some(delta), Some(provider)) if delta.reads_only_its_snapshot() => {
                            states.push(table_state(delta));
                            tables.push(provider);
                        }
                        (Some(_), _) => refused = Some(NotCacheable::NotItsSnapshot { table }),
                        _ => refused = Some(NotCacheable::NotADeltaTable { table }),
                    }
                }
                other if !is_query(other) => refused = Some(NotCacheable::NotAQuery),
                _ => {}
            }
            Ok(if refused.is_some() {
                TreeNodeRecursion::Stop
            } else {
                TreeNodeRecursion::Continue
            })
        });
        if let Some(refused) = refused {
            return Err(refused);
        }
        Ok(Self {
            key: ResultKey {
                sql: sql.to_owned(),
                plan: plan.display_indent_schema().to_string(),
                tables: states,
            },
            tables,
        })
    }

    /// Whether the tables still hold exactly their snapshots: no rows were
    /// buffered for them while the query ran (a result read with such rows
    /// is not kept under the snapshots' versions).
    fn unchanged(&self) -> bool {
        self.tables.iter().all(|provider| {
            provider
                .as_ref()
                .downcast_ref::<DeltaTableProvider>()
                .is_some_and(DeltaTableProvider::reads_only_its_snapshot)
        })
    }
}

/// The state `delta`'s snapshot is of.
fn table_state(delta: &DeltaTableProvider) -> TableState {
    let snapshot = delta.snapshot();
    TableState {
        location: delta.location(),
        table_id: snapshot.metadata().id.clone(),
        version: snapshot.version(),
        committed_at: snapshot.timestamp(),
    }
}

/// Whether `plan`'s node is part of a query (not a statement, DDL, DML,
/// `EXPLAIN`, `COPY` or an extension whose inputs are not all visible).
fn is_query(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::DescribeTable(_)
            | LogicalPlan::Extension(_)
    )
}

/// The first function `plan` calls that is not immutable (so its answer
/// may differ between runs: `random()`, `now()`, `current_date`).
fn first_unstable_function(plan: &LogicalPlan) -> Option<String> {
    let mut found = None;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                let unstable = match e {
                    Expr::ScalarFunction(f) => (f.func.signature().volatility
                        != Volatility::Immutable)
                        .then(|| f.func.name()),
                    Expr::AggregateFunction(f) => (f.func.signature().volatility
                        != Volatility::Immutable)
                        .then(|| f.func.name()),
                    Expr::WindowFunction(w) => (w.fun.signature().volatility
                        != Volatility::Immutable)
                        .then(|| w.fun.name()),
                    _ => None,
                };
                Ok(match unstable {
                    Some(name) => {
                        found = Some(name.to_owned());
                        TreeNodeRecursion::Stop
                    }
                    None => TreeNodeRecursion::Continue,
                })
            })
        })
    });
    found
}

/// A kept result: its columns and rows.
#[derive(Debug, Clone)]
pub struct CachedResult {
    /// Its columns.
    pub schema: SchemaRef,
    /// Its rows.
    pub batches: Vec<RecordBatch>,
}

impl CachedResult {
    /// The rows as a stream, for an edge that sends them as it sends a
    /// query's (row caps and all).
    pub fn into_stream(self) -> SendableRecordBatchStream {
        let rows = futures::stream::iter(self.batches.into_iter().map(Ok));
        Box::pin(RecordBatchStreamAdapter::new(self.schema, rows))
    }

    /// Memory the rows take.
    fn bytes(&self) -> u64 {
        self.batches
            .iter()
            .map(|b| b.get_array_memory_size() as u64)
            .sum()
    }
}

#[derive(Debug, Clone, Copy)]
struct ResultWeight;

impl Weighter<ResultKey, CachedResult> for ResultWeight {
    fn weight(&self, key: &ResultKey, result: &CachedResult) -> u64 {
        let key_bytes = key.sql.len()
            + key.plan.len()
            + key
                .tables
                .iter()
                .map(|t| t.location.len() + t.table_id.len() + 32)
                .sum::<usize>();
        result.bytes() + key_bytes as u64 + 128
    }
}

/// What the result cache has done since it was made, and holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ResultCacheFigures {
    /// Queries answered from a kept result.
    pub hits: u64,
    /// Queries that could have been and were not (then ran).
    pub misses: u64,
    /// Queries whose results may not be kept ([`NotCacheable`]).
    pub bypassed: u64,
    /// Bytes of results answered from memory.
    pub bytes_served: u64,
    /// Bytes held now.
    pub bytes_held: u64,
    /// Results held now.
    pub entries_held: u64,
    /// The byte budget.
    pub budget: u64,
}

/// Kept results in a byte budget, shared by every query of a server; the
/// least used leave first.
pub struct ResultCache {
    held: quick_cache::sync::Cache<ResultKey, CachedResult, ResultWeight>,
    budget: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    bypassed: AtomicU64,
    bytes_served: AtomicU64,
}

impl fmt::Debug for ResultCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultCache")
            .field("figures", &self.figures())
            .finish()
    }
}

impl ResultCache {
    /// A cache holding at most `budget` bytes of results; one result may
    /// take a quarter of it at most.
    pub fn new(budget: u64) -> Self {
        // One shard: a lookup per query contends with nothing, and a shard
        // of the whole budget can hold a large result.
        let options = quick_cache::OptionsBuilder::new()
            .shards(1)
            .estimated_items_capacity(1024)
            .weight_capacity(budget)
            .build();
        let held = match options {
            Ok(options) => quick_cache::sync::Cache::with_options(
                options,
                ResultWeight,
                Default::default(),
                Default::default(),
            ),
            Err(_) => quick_cache::sync::Cache::with_weighter(1024, budget, ResultWeight),
        };
        Self {
            held,
            budget,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bypassed: AtomicU64::new(0),
            bytes_served: AtomicU64::new(0),
        }
    }

    /// The kept result of `query`, counted as a hit or a miss.
    pub fn get(&self, query: &CacheableQuery) -> Option<CachedResult> {
        match self.held.get(&query.key) {
            Some(result) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                self.bytes_served
                    .fetch_add(result.bytes(), Ordering::Relaxed);
                Some(result)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Counts a query whose result may not be kept.
    pub fn bypass(&self) {
        self.bypassed.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps `result` of `query` once it has run, unless rows arrived in a
    /// table it read meanwhile or it is larger than a quarter of the
    /// budget. Returns whether it was kept.
    pub fn insert(&self, query: CacheableQuery, result: CachedResult) -> bool {
        if result.bytes() > self.budget / 4 || !query.unchanged() {
            return false;
        }
        self.held.insert(query.key, result);
        true
    }

    /// `stream`, the rows of `query`, keeping them as the result of
    /// `query` once the stream has ended with every row: not when it
    /// fails, is dropped before its end, or grows past a quarter of the
    /// budget (then nothing more is collected).
    pub fn keep_streamed(
        self: &Arc<Self>,
        query: CacheableQuery,
        stream: SendableRecordBatchStream,
    ) -> SendableRecordBatchStream {
        let schema = stream.schema();
        let cap = self.budget / 4;
        let collected = Arc::new(Mutex::new(Some((Vec::new(), 0u64))));
        let collecting = collected.clone();
        let rows = stream.inspect(move |item| {
            let Ok(mut guard) = collecting.lock() else {
                return;
            };
            match (item, guard.as_mut()) {
                (Ok(batch), Some((batches, bytes))) => {
                    *bytes += batch.get_array_memory_size() as u64;
                    batches.push(batch.clone());
                    if *bytes > cap {
                        *guard = None;
                    }
                }
                (Err(_), _) => *guard = None,
                (Ok(_), None) => {}
            }
        });
        let cache = self.clone();
        let result_schema = schema.clone();
        let finish = futures::stream::once(async move {
            let taken = collected.lock().ok().and_then(|mut guard| guard.take());
            if let Some((batches, _)) = taken {
                let result = CachedResult {
                    schema: result_schema,
                    batches,
                };
                cache.insert(query, result);
            }
        })
        .filter_map(|()| async { None });
        Box::pin(RecordBatchStreamAdapter::new(schema, rows.chain(finish)))
    }

    /// Drops every kept result (the counters stay).
    pub fn clear(&self) {
        self.held.clear();
    }

    /// The counters and what is held now.
    pub fn figures(&self) -> ResultCacheFigures {
        ResultCacheFigures {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bypassed: self.bypassed.load(Ordering::Relaxed),
            bytes_served: self.bytes_served.load(Ordering::Relaxed),
            bytes_held: self.held.weight(),
            entries_held: self.held.len() as u64,
            budget: self.budget,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::error::DataFusionError;
    use datafusion::prelude::SessionContext;

    /// A query of no table (always cacheable) and its key.
    async fn query(sql: &str) -> CacheableQuery {
        let frame = SessionContext::new().sql(sql).await.unwrap();
        CacheableQuery::of(sql, frame.logical_plan()).unwrap()
    }

    fn batch(values: Vec<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values))]).unwrap()
    }

    fn stream(items: Vec<datafusion::error::Result<RecordBatch>>) -> SendableRecordBatchStream {
        let schema = batch(vec![]).schema();
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(items),
        ))
    }

    #[tokio::test]
    async fn a_stream_read_to_its_end_is_kept_and_answered_again() {
        let cache = Arc::new(ResultCache::new(1 << 20));
        let sql = "SELECT 1 AS x";
        assert!(cache.get(&query(sql).await).is_none());
        let rows = cache.keep_streamed(
            query(sql).await,
            stream(vec![Ok(batch(vec![1, 2])), Ok(batch(vec![3]))]),
        );
        let read: Vec<_> = rows.collect().await;
        assert_eq!(read.len(), 2);
        let kept = cache.get(&query(sql).await).unwrap();
        let values: Vec<i64> = kept
            .batches
            .iter()
            .flat_map(|b| {
                let column = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                column.values().to_vec()
            })
            .collect();
        assert_eq!(values, vec![1, 2, 3]);
        let figures = cache.figures();
        assert_eq!(
            (figures.hits, figures.misses, figures.entries_held),
            (1, 1, 1)
        );
        // Another text is another query.
        assert!(cache.get(&query("SELECT 1  AS x").await).is_none());
    }

    #[tokio::test]
    async fn a_failed_cut_or_oversized_stream_is_not_kept() {
        let cache = Arc::new(ResultCache::new(1 << 20));
        let failed = cache.keep_streamed(
            query("SELECT 2 AS x").await,
            stream(vec![
                Ok(batch(vec![1])),
                Err(DataFusionError::Execution("disk gone".into())),
            ]),
        );
        let _: Vec<_> = failed.collect().await;
        assert!(cache.get(&query("SELECT 2 AS x").await).is_none());

        let mut cut = cache.keep_streamed(
            query("SELECT 3 AS x").await,
            stream(vec![Ok(batch(vec![1])), Ok(batch(vec![2]))]),
        );
        assert!(cut.next().await.is_some());
        drop(cut);
        assert!(cache.get(&query("SELECT 3 AS x").await).is_none());

        // 40,000 values of 8 bytes: more than a quarter of 1 MiB.
        let large = cache.keep_streamed(
            query("SELECT 4 AS x").await,
            stream(vec![Ok(batch((0..40_000).collect()))]),
        );
        let _: Vec<_> = large.collect().await;
        assert!(cache.get(&query("SELECT 4 AS x").await).is_none());
        assert_eq!(cache.figures().entries_held, 0);
    }

    #[tokio::test]
    async fn the_least_used_results_leave_beyond_the_budget() {
        let budget = 256 << 10;
        let cache = Arc::new(ResultCache::new(budget));
        for i in 0..40 {
            let sql = format!("SELECT {i} AS x");
            let rows = cache.keep_streamed(
                query(&sql).await,
                stream(vec![Ok(batch((0..2_000).collect()))]),
            );
            let _: Vec<_> = rows.collect().await;
        }
        let figures = cache.figures();
        assert!(figures.bytes_held <= budget, "{figures:?}");
        assert!(figures.entries_held >= 4, "{figures:?}");
        assert!(figures.entries_held < 40, "{figures:?}");
        assert!(cache.get(&query("SELECT 39 AS x").await).is_some());
    }
}
