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

use super::ApiError;
use super::results::{Prefetched, ResultLimits, prefetch, respond, respond_streaming};
use crate::auth::Principal;
use crate::state::AppState;
use wavelake_engine::{Access, Statement};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    /// One SQL statement.
    pub sql: String,
    /// The namespace unqualified names resolve in.
    #[serde(default)]
    pub namespace: Option<String>,
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
    let namespace = state.namespace_for(&principal, request.namespace.as_deref())?;
    let statement = Statement::parse(&request.sql)?;
    authorize(&namespace, &statement, |ns| state.may_write(&principal, ns))?;
    let writes = statement.access() == Access::Write;
    let engine = state.session(&principal, &namespace).await?;
    let limits = state.config.limits.clone();
    let started = Instant::now();
    let result_limits = ResultLimits {
        max_rows: limits.max_result_rows,
        deadline: tokio::time::Instant::now() + Duration::from_secs(limits.query_timeout_secs),
    };
    let cluster = state.config.cluster.clone();
    let work = async {
        let frame = engine.execute(statement).await?;
        let frame = placed(&cluster, frame, writes).await?;
        let stream = frame.execute_stream().await?;
        prefetch(stream, result_limits).await
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
    if writes {
        metrics::counter!("wavelake_commits_total").increment(1);
    }
    match prefetched {
        Prefetched::Whole {
            schema,
            batches,
            truncated,
        } => respond(&headers, &schema, &batches, truncated),
        Prefetched::Streaming { head, rest, rows } => {
            respond_streaming(&headers, head, rest, rows, result_limits)
        }
    }
}

/// `frame`, sent to the cluster when one is configured and the query
/// reads enough data there (a statement that wrote has run already). The
/// `EXPLAIN` of a query gains a `placement` row saying where the query
/// would run and why.
#[cfg(feature = "cluster")]
async fn placed(
    config: &crate::config::ClusterConfig,
    frame: datafusion::dataframe::DataFrame,
    wrote: bool,
) -> wavelake_engine::Result<datafusion::dataframe::DataFrame> {
    use crate::cluster::{Cluster, Placement};
    use datafusion::logical_expr::LogicalPlan;
    let Some(scheduler) = config.scheduler.as_deref().filter(|_| !wrote) else {
        metrics::counter!("wavelake_queries_total", "placement" => "server").increment(1);
        return Ok(frame);
    };
    let cluster = Cluster::new(scheduler, config.min_scan_bytes);
    let (session, plan) = frame.into_parts();
    let place = |plan: &LogicalPlan| match session.optimize(plan) {
        Ok(optimized) => cluster.place(&optimized, &session),
        Err(e) => Placement::Local(format!("the plan could not be optimized: {e}")),
    };
    if let LogicalPlan::Explain(explain) = &plan {
        let placement = place(&explain.plan);
        let text = format!("{}: {}", placement.label(), placement.reason());
        metrics::counter!("wavelake_queries_total", "placement" => "server").increment(1);
        let frame = datafusion::dataframe::DataFrame::new(session.clone(), plan);
        let mut batches = frame.collect().await?;
        let schema = match batches.first() {
            Some(batch) => batch.schema(),
            None => {
                return Ok(datafusion::prelude::SessionContext::new_with_state(session)
                    .read_batches(batches)?);
            }
        };
        let row = arrow::array::RecordBatch::try_new(
            schema,
            vec![
                std::sync::Arc::new(arrow::array::StringArray::from(vec!["placement"])),
                std::sync::Arc::new(arrow::array::StringArray::from(vec![text])),
            ],
        )?;
        batches.push(row);
        return Ok(
            datafusion::prelude::SessionContext::new_with_state(session).read_batches(batches)?
        );
    }
    let placement = place(&plan);
    metrics::counter!("wavelake_queries_total", "placement" => placement.label()).increment(1);
    tracing::debug!(
        placement = placement.label(),
        reason = placement.reason(),
        "query placed"
    );
    let frame = datafusion::dataframe::DataFrame::new(session, plan);
    match placement {
        Placement::Cluster(_) => cluster.distribute(frame).await,
        Placement::Local(_) => Ok(frame),
    }
}

/// `frame`: without the cluster feature every query runs here.
#[cfg(not(feature = "cluster"))]
async fn placed(
    _config: &crate::config::ClusterConfig,
    frame: datafusion::dataframe::DataFrame,
    _wrote: bool,
) -> wavelake_engine::Result<datafusion::dataframe::DataFrame> {
    metrics::counter!("wavelake_queries_total", "placement" => "server").increment(1);
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
