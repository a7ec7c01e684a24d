//! `POST /api/v1/sql`: one statement, any the engine runs (queries, DDL,
//! DML, maintenance), in a sandboxed session of the caller's namespace.
//! Results as JSON (default), CSV or an Arrow IPC stream by `Accept`, cut
//! at the row cap, within the time and memory limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use arrow::array::{RecordBatch, StringArray};
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;

use super::results::{Prefetched, ResultLimits, prefetch, respond, respond_streaming};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::placement::{Placement, Site};
use crate::state::AppState;
use wavelake_engine::result_cache::{CacheableQuery, CachedResult};
use wavelake_engine::{Access, SqlSession, Statement};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One SQL statement.
    pub sql: String,
    /// The namespace unqualified names resolve in.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The transaction the statement belongs to (what `BEGIN` answered).
    #[serde(default)]
    pub transaction: Option<String>,
}

/// Whether `statement` may run in `namespace`: a write needs `may_write`
/// (the caller's right, the store's safety) for the session's namespace
/// and the namespace of every table it names. The session of a principal that may not write is
/// read-only besides, so the plan that runs is checked again.
fn authorize(
    namespace: &str,
    statement: &Statement,
    may_write: impl Fn(&str) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    if statement.access() == Access::Read {
        return Ok(());
    }
    let namespaces = std::iter::once(namespace).chain(
        statement
            .writes()
            .iter()
            .map(|table| table.split_once('.').map_or(namespace, |(ns, _)| ns)),
    );
    for namespace in namespaces {
        may_write(namespace)?;
    }
    Ok(())
}

/// A statement authorized and ready to run, for every edge that runs SQL
/// (this API, Flight SQL): either answered already or a session to run
/// it in.
pub(crate) enum Started {
    /// A sharing statement or a buffered INSERT, answered.
    Answered(RecordBatch),
    /// The statement and the sandboxed session it runs in.
    Session(Box<SqlSession>, Statement),
}

/// Parses `sql` and does all that comes before running it for
/// `principal`: sharing statements (`CREATE SHARE …`) and buffered
/// INSERTs are answered; any other statement is authorized on what it is
/// (not its words) and gets its session, the buffers of the tables it
/// writes flushed first.
pub(crate) async fn start(
    state: &AppState,
    principal: &Principal,
    namespace: Option<&str>,
    sql: &str,
) -> Result<Started, ApiError> {
    if let Some(statement) = crate::sharing::sql::parse(sql) {
        let batch = crate::sharing::sql::run(state, principal, statement?).await?;
        return Ok(Started::Answered(batch));
    }
    start_parsed(state, principal, namespace, Statement::parse(sql)?).await
}

/// [`start`] for a statement parsed already (and not a sharing statement).
async fn start_parsed(
    state: &AppState,
    principal: &Principal,
    namespace: Option<&str>,
    statement: Statement,
) -> Result<Started, ApiError> {
    if state.config.ingest.buffer_inserts
        && statement.inserts()
        && principal.recipient_only().is_none()
        && let Some(batch) = buffered_insert(state, principal, namespace, &statement).await?
    {
        return Ok(Started::Answered(batch));
    }
    let engine = session_for(state, principal, namespace, &statement).await?;
    Ok(Started::Session(Box::new(engine), statement))
}

/// Runs `statement` in `engine` (DDL and DML commit here) and places the
/// frame it gives: on the cluster when one is configured and the query
/// reads enough, else here.
pub(crate) async fn execute(
    state: &AppState,
    engine: &SqlSession,
    statement: Statement,
) -> wavelake_engine::Result<(DataFrame, Option<Placement>)> {
    let writes = statement.access() == Access::Write;
    let written: Vec<String> = statement.writes().to_vec();
    let frame = engine.execute(statement).await?;
    if writes {
        // Buffers opened before the statement knew the table as it was.
        let namespace = engine.options().default_schema.clone().unwrap_or_default();
        for table in &written {
            let (namespace, table) = table.split_once('.').unwrap_or((&namespace, table));
            state.buffers.retire(namespace, table).await?;
        }
    }
    let placed = placed(&state.config.cluster, frame, writes).await;
    if writes && placed.is_ok() {
        metrics::counter!("wavelake_commits_total").increment(1);
    }
    placed
}

/// Runs the statement.
pub async fn run_sql(
    State(state): State<Arc<AppState>>,
    principal: Principal,
    headers: HeaderMap,
    Json(request): Json<SqlRequest>,
) -> Result<Response, ApiError> {
    if let Some(statement) = crate::sharing::sql::parse(&request.sql) {
        let batch = crate::sharing::sql::run(&state, &principal, statement?).await?;
        return respond(&headers, &batch.schema(), &[batch], false);
    }
    let statement = Statement::parse(&request.sql)?;
    if super::transactions::handles(request.transaction.as_deref(), &statement) {
        let (batches, truncated) = super::transactions::run(
            &state,
            &principal,
            request.namespace.as_deref(),
            request.transaction.as_deref(),
            statement,
        )
        .await?;
        let schema = batches.first().map_or_else(
            || Arc::new(arrow::datatypes::Schema::empty()),
            RecordBatch::schema,
        );
        return respond(&headers, &schema, &batches, truncated);
    }
    let (engine, statement) =
        match start_parsed(&state, &principal, request.namespace.as_deref(), statement).await? {
            Started::Answered(batch) => {
                return respond(&headers, &batch.schema(), &[batch], false);
            }
            Started::Session(engine, statement) => (engine, statement),
        };
    let limits = state.config.limits.clone();
    let started = Instant::now();
    let result_limits = ResultLimits {
        max_rows: limits.max_result_rows,
        deadline: tokio::time::Instant::now() + Duration::from_secs(limits.query_timeout_secs),
    };
    let work = async {
        let (frame, placement, kept) =
            match execute_recalling(&state, &engine, statement, &request.sql).await? {
                Recalled::Hit(result) => {
                    // Kept by an edge without a row cap (Flight SQL), it
                    // is cut here as a query's rows are.
                    let prefetched = prefetch(result.into_stream(), result_limits).await?;
                    let placement = Placement::server("answered from the result cache");
                    return Ok((prefetched, placement, Kept::Hit));
                }
                Recalled::Run {
                    frame,
                    placement,
                    kept,
                } => (*frame, placement, kept),
            };
        let task = Arc::new(frame.task_ctx());
        let plan = frame.create_physical_plan().await?;
        let placement = placement.unwrap_or_else(|| Placement::measured(&plan));
        let stream = datafusion::physical_plan::execute_stream(plan, task)?;
        let prefetched = prefetch(stream, result_limits).await?;
        Ok::<_, wavelake_engine::Error>((prefetched, placement, kept))
    };
    let outcome = tokio::time::timeout_at(result_limits.deadline, work).await;
    metrics::histogram!("wavelake_query_duration_seconds").record(started.elapsed().as_secs_f64());
    let prefetched = match outcome {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "QUERY_TIMEOUT",
                format!(
                    "the statement ran longer than the limit of {} s",
                    limits.query_timeout_secs
                ),
            ));
        }
        Ok(Err(e)) => {
            if matches!(e, wavelake_engine::Error::CommitConflict { .. }) {
                metrics::counter!("wavelake_commit_conflicts_total").increment(1);
            }
            return Err(e.into());
        }
        Ok(Ok(result)) => result,
    };
    let (prefetched, placement, kept) = prefetched;
    let label = kept.label();
    if let (
        Kept::Miss(query),
        Prefetched::Whole {
            schema,
            batches,
            truncated: false,
        },
        Some(cache),
    ) = (kept, &prefetched, &state.result_cache)
    {
        let result = CachedResult {
            schema: schema.clone(),
            batches: batches.clone(),
        };
        cache.insert(query, result);
    }
    let mut response = match prefetched {
        Prefetched::Whole {
            schema,
            batches,
            truncated,
        } => respond(&headers, &schema, &batches, truncated),
        Prefetched::Streaming { head, rest, rows } => {
            respond_streaming(&headers, head, rest, rows, result_limits)
        }
    }?;
    placement.write_headers(response.headers_mut());
    if let Some(label) = label {
        response.headers_mut().insert(
            RESULT_CACHE_HEADER,
            axum::http::HeaderValue::from_static(label),
        );
    }
    Ok(response)
}

/// The response header saying what the result cache did: `hit`, `miss`
/// (the result may be kept) or `bypass` (it may not); absent for a
/// statement that writes or a server without the cache.
pub const RESULT_CACHE_HEADER: &str = "x-wavelake-result-cache";

/// What the result cache did for a query, and what to keep its result
/// under after a miss.
pub(crate) enum Kept {
    /// Answered from the cache.
    Hit,
    /// Not in the cache; its result may be kept under this.
    Miss(CacheableQuery),
    /// Its result may not be kept.
    Bypass,
    /// No cache asked: a statement that writes, or no cache.
    NotAsked,
}

impl Kept {
    /// The value of [`RESULT_CACHE_HEADER`].
    fn label(&self) -> Option<&'static str> {
        match self {
            Self::Hit => Some("hit"),
            Self::Miss(_) => Some("miss"),
            Self::Bypass => Some("bypass"),
            Self::NotAsked => None,
        }
    }
}

/// What [`execute_recalling`] gave.
pub(crate) enum Recalled {
    /// The kept result of the same query over the same table versions.
    Hit(CachedResult),
    /// The frame to run, where, and what the cache did.
    Run {
        frame: Box<DataFrame>,
        placement: Option<Placement>,
        kept: Kept,
    },
}

/// Runs `statement` (the text `sql`) as [`execute`] does, asking the
/// result cache first when it only reads: its kept result when the same
/// query ran over the same versions of the same tables.
pub(crate) async fn execute_recalling(
    state: &AppState,
    engine: &SqlSession,
    statement: Statement,
    sql: &str,
) -> wavelake_engine::Result<Recalled> {
    let cache = match &state.result_cache {
        Some(cache) if statement.access() == Access::Read => cache,
        _ => {
            let (frame, placement) = execute(state, engine, statement).await?;
            let kept = Kept::NotAsked;
            return Ok(Recalled::Run {
                frame: Box::new(frame),
                placement,
                kept,
            });
        }
    };
    let frame = engine.execute(statement).await?;
    let kept = match CacheableQuery::of(sql, frame.logical_plan()) {
        Ok(query) => match cache.get(&query) {
            Some(result) => return Ok(Recalled::Hit(result)),
            None => Kept::Miss(query),
        },
        Err(reason) => {
            cache.bypass();
            tracing::debug!(%reason, "result not cached");
            Kept::Bypass
        }
    };
    let (frame, placement) = placed(&state.config.cluster, frame, false).await?;
    Ok(Recalled::Run {
        frame: Box::new(frame),
        placement,
        kept,
    })
}

/// `INSERT … VALUES` appended to the table's write buffer (`[ingest]
/// buffer_inserts`): authorized as any write, evaluated by the session,
/// acknowledged once in the write-ahead log, answered as an INSERT is
/// (`count`). `None` for an INSERT that reads tables, which commits.
async fn buffered_insert(
    state: &AppState,
    principal: &Principal,
    namespace: Option<&str>,
    statement: &Statement,
) -> Result<Option<arrow::array::RecordBatch>, ApiError> {
    let namespace = state.namespace_for(principal, namespace)?;
    authorize(&namespace, statement, |ns| state.may_write(principal, ns))?;
    let engine = state.session(principal, &namespace).await?;
    let Some((target, batches)) = engine.inserted_rows(statement).await? else {
        return Ok(None);
    };
    let (table_namespace, table) = target.split_once('.').unwrap_or((&namespace, &target));
    let buffer = state.buffer(table_namespace, table).await?;
    let mut rows = 0;
    if let Some(first) = batches.first() {
        let batch = arrow::compute::concat_batches(&first.schema(), &batches)
            .map_err(|e| wavelake_engine::Error::Arrow(Arc::new(e)))?;
        rows = buffer.append(&batch).await?.rows;
    }
    metrics::counter!("wavelake_buffered_rows_total").increment(rows as u64);
    let count = arrow::array::UInt64Array::from(vec![rows as u64]);
    let batch = arrow::array::RecordBatch::try_from_iter([(
        "count",
        Arc::new(count) as arrow::array::ArrayRef,
    )])
    .map_err(ApiError::internal)?;
    Ok(Some(batch))
}

/// The session `statement` runs in, once it is authorized: a Delta
/// Sharing recipient's token reads its shares' tables (named
/// `schema.table`, as sharing clients name them) and nothing else; other
/// tokens work in a namespace.
async fn session_for(
    state: &AppState,
    principal: &Principal,
    namespace: Option<&str>,
    statement: &Statement,
) -> Result<SqlSession, ApiError> {
    if let Some(recipient) = principal.recipient_only() {
        if statement.access() == Access::Write {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "NOT_ALLOWED",
                "a Delta Sharing recipient's token may only read the tables shared with it",
            ));
        }
        return state.recipient_session(recipient).await;
    }
    let namespace = state.namespace_for(principal, namespace)?;
    authorize(&namespace, statement, |ns| state.may_write(principal, ns))?;
    if statement.access() == Access::Write {
        flush_buffers(state, &namespace, statement).await?;
    }
    state.session(principal, &namespace).await
}

/// Commits the buffered rows of every table `statement` writes before it
/// runs, so that it sees them in the table (a DELETE removes them, an
/// INSERT … SELECT reads them) and none arrive after it.
async fn flush_buffers(
    state: &AppState,
    namespace: &str,
    statement: &Statement,
) -> Result<(), ApiError> {
    for table in statement.writes() {
        let (namespace, table) = table.split_once('.').unwrap_or((namespace, table));
        state.buffers.flush(namespace, table).await?;
    }
    Ok(())
}

/// `frame`, sent to the cluster when one is configured and the query
/// reads enough data there (a statement that wrote has run already), with
/// where it runs and why; `None` for a query that runs here without a
/// decision to make, whose reads the plan that runs it tells
/// ([`Placement::measured`]), so they are not estimated twice. The
/// `EXPLAIN` of a query gains a `placement` row saying where the query
/// would run and why.
async fn placed(
    config: &crate::config::ClusterConfig,
    frame: DataFrame,
    wrote: bool,
) -> wavelake_engine::Result<(DataFrame, Option<Placement>)> {
    if wrote {
        metrics::counter!("wavelake_queries_total", "placement" => "server").increment(1);
        return Ok((frame, Some(Placement::server("writes run on the server"))));
    }
    let threshold = cluster_threshold(config);
    if threshold.is_none() && !matches!(frame.logical_plan(), LogicalPlan::Explain(_)) {
        metrics::counter!("wavelake_queries_total", "placement" => "server").increment(1);
        let placement = Placement::not_distributable(frame.logical_plan());
        return Ok((frame, placement));
    }
    let (session, plan) = frame.into_parts();
    let place = |plan: &LogicalPlan| match session.optimize(plan) {
        Ok(optimized) => Placement::of(&optimized, &session, threshold),
        Err(e) => Placement::server(format!("the plan could not be optimized: {e}")),
    };
    if let LogicalPlan::Explain(explain) = &plan {
        let row = place(&explain.plan).describe();
        metrics::counter!("wavelake_queries_total", "placement" => "server").increment(1);
        let frame = with_placement_row(session, plan, row).await?;
        return Ok((frame, Some(Placement::server("EXPLAIN runs on the server"))));
    }
    let placement = place(&plan);
    metrics::counter!("wavelake_queries_total", "placement" => placement.site.label()).increment(1);
    tracing::debug!(
        placement = placement.site.label(),
        reason = placement.reason,
        "query placed"
    );
    let frame = DataFrame::new(session, plan);
    match placement.site {
        Site::Cluster => Ok((distribute(config, frame).await?, Some(placement))),
        Site::Server => Ok((frame, Some(placement))),
    }
}

/// The result of `EXPLAIN` (`plan`) with a last row `placement | row`.
async fn with_placement_row(
    session: SessionState,
    plan: LogicalPlan,
    row: String,
) -> wavelake_engine::Result<DataFrame> {
    let context = SessionContext::new_with_state(session.clone());
    let mut batches = DataFrame::new(session, plan).collect().await?;
    let Some(schema) = batches.first().map(RecordBatch::schema) else {
        return Ok(context.read_batches(batches)?);
    };
    let placement = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["placement"])),
            Arc::new(StringArray::from(vec![row])),
        ],
    )?;
    batches.push(placement);
    Ok(context.read_batches(batches)?)
}

/// The bytes a query must read to go to the cluster, when one is
/// configured (and this build can reach it).
fn cluster_threshold(config: &crate::config::ClusterConfig) -> Option<u64> {
    let configured = config.scheduler.is_some().then_some(config.min_scan_bytes);
    configured.filter(|_| cfg!(feature = "cluster"))
}

/// `frame` as a frame that runs on the cluster.
#[cfg(feature = "cluster")]
async fn distribute(
    config: &crate::config::ClusterConfig,
    frame: DataFrame,
) -> wavelake_engine::Result<DataFrame> {
    match config.scheduler.as_deref() {
        Some(scheduler) => {
            crate::cluster::Cluster::new(scheduler)
                .distribute(frame)
                .await
        }
        None => Ok(frame),
    }
}

/// `frame`: without the cluster feature every query runs here.
#[cfg(not(feature = "cluster"))]
async fn distribute(
    _config: &crate::config::ClusterConfig,
    frame: DataFrame,
) -> wavelake_engine::Result<DataFrame> {
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> Principal {
        let mut principal = Principal::default();
        principal.namespaces.insert("acme".into(), false);
        principal.namespaces.insert("mine".into(), true);
        principal
    }

    #[test]
    fn writes_need_the_right_to_write_every_namespace_they_name() {
        let principal = reader();
        let check = |namespace: &str, sql: &str| {
            authorize(namespace, &Statement::parse(sql).unwrap(), |ns| {
                if principal.can_write(ns) {
                    Ok(())
                } else {
                    Err(ApiError::forbidden(ns))
                }
            })
        };
        assert!(check("acme", "SELECT * FROM t").is_ok());
        assert!(check("acme", "/* hi */ INSERT INTO t VALUES (1)").is_err());
        assert!(check("acme", "EXPLAIN ANALYZE DELETE FROM t").is_err());
        assert!(check("acme", "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x").is_err());
        assert!(check("mine", "INSERT INTO t VALUES (1)").is_ok());
        assert!(check("mine", "INSERT INTO acme.t VALUES (1)").is_err());
        assert!(
            check(
                "mine",
                "MERGE INTO acme.t USING s ON t.k = s.k WHEN MATCHED THEN DELETE"
            )
            .is_err()
        );
    }
}
