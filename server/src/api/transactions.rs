//! Transactions through the SQL API: `BEGIN` answers a transaction id;
//! statements sent with it (`"transaction": id`) change rows of one table
//! (INSERT, UPDATE, DELETE, MERGE) and read their own changes, which
//! nobody else sees; `COMMIT` makes them one Delta commit (refused with
//! `409 COMMIT_CONFLICT` when a concurrent commit changed what they
//! read: each statement's files and condition, the whole table for a
//! query); `ROLLBACK`, an idle timeout or a failed COMMIT leave the table
//! as it was, deleting the files they wrote.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, UInt64Array};
use axum::http::StatusCode;
use wavelake_engine::{Access, Statement, TransactionControl};
use wavelake_write::staged::StagedTransaction;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use crate::transactions::{IDLE_SECS, MAX_OPEN, Open, Shared};

/// Whether a request belongs to the transaction API: it names a
/// transaction, or it begins or ends one.
pub fn handles(transaction: Option<&str>, statement: &Statement) -> bool {
    transaction.is_some() || statement.transaction_control().is_some()
}

/// Runs a request of the transaction API; its result rows and whether
/// they were cut at the row cap.
pub async fn run(
    state: &AppState,
    principal: &Principal,
    namespace: Option<&str>,
    transaction: Option<&str>,
    statement: Statement,
) -> Result<(Vec<RecordBatch>, bool), ApiError> {
    state.transactions.expire().await;
    match (statement.transaction_control(), transaction) {
        (Some(TransactionControl::Begin), None) => begin(state, principal, namespace)
            .await
            .map(|b| (vec![b], false)),
        (Some(TransactionControl::Begin), Some(_)) => Err(ApiError::bad_request(
            "a transaction is open already: COMMIT or ROLLBACK it first",
        )),
        (Some(_), None) => Err(ApiError::bad_request(
            "no transaction is open: send COMMIT or ROLLBACK with the \"transaction\" BEGIN gave",
        )),
        (Some(control), Some(id)) => {
            let open = take(state, principal, id)?;
            let open = open.lock().await;
            let batch = match control {
                TransactionControl::Commit => commit(&open).await?,
                _ => {
                    if let Some((_, staged)) = &open.staged {
                        staged.rollback().await;
                    }
                    one_row("rolled_back", Arc::new(UInt64Array::from(vec![1u64])))?
                }
            };
            Ok((vec![batch], false))
        }
        (None, Some(id)) => within(state, principal, id, statement).await,
        (None, None) => Err(ApiError::internal("not a transaction request")),
    }
}

async fn begin(
    state: &AppState,
    principal: &Principal,
    namespace: Option<&str>,
) -> Result<RecordBatch, ApiError> {
    if principal.recipient_only().is_some() {
        return Err(ApiError::forbidden(
            "a Delta Sharing recipient's token may only read the tables shared with it",
        ));
    }
    let namespace = state.namespace_for(principal, namespace)?;
    let engine = state.session(principal, &namespace).await?;
    let id = random_id()?;
    let mut open = state.transactions.open();
    if open.len() >= MAX_OPEN {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            format!("the server holds its limit of {MAX_OPEN} open transactions"),
        ));
    }
    open.insert(
        id.clone(),
        Arc::new(tokio::sync::Mutex::new(Open {
            owner: principal.id.clone(),
            namespace,
            engine,
            staged: None,
            statements: Vec::new(),
            queried: false,
            last_used: Instant::now(),
        })),
    );
    one_row("transaction", Arc::new(StringArray::from(vec![id])))
}

/// The transaction `id`, if `principal` began it.
fn find(state: &AppState, principal: &Principal, id: &str) -> Result<Shared, ApiError> {
    let open = state.transactions.open();
    let transaction = open.get(id).cloned().ok_or_else(|| {
        ApiError::not_found(format!(
            "no open transaction {id} (it ended, or was rolled back after {IDLE_SECS} s idle)"
        ))
    })?;
    let owned = transaction
        .try_lock()
        .map(|t| t.owner == principal.id)
        .unwrap_or(true);
    if !owned {
        return Err(ApiError::not_found(format!("no open transaction {id}")));
    }
    Ok(transaction)
}

/// Removes the transaction `id` to end it.
fn take(state: &AppState, principal: &Principal, id: &str) -> Result<Shared, ApiError> {
    let transaction = find(state, principal, id)?;
    state.transactions.open().remove(id);
    Ok(transaction)
}

/// Runs a statement inside transaction `id`.
async fn within(
    state: &AppState,
    principal: &Principal,
    id: &str,
    statement: Statement,
) -> Result<(Vec<RecordBatch>, bool), ApiError> {
    let transaction = find(state, principal, id)?;
    let mut open = transaction.lock().await;
    open.last_used = Instant::now();
    if statement.access() == Access::Write {
        if !statement.changes_rows_only() {
            return Err(ApiError::bad_request(
                "a transaction holds INSERT, UPDATE, DELETE and MERGE statements on one table \
                 (and queries); run other statements outside it",
            ));
        }
        let [table] = statement.writes() else {
            return Err(ApiError::bad_request(
                "a statement in a transaction changes exactly one table",
            ));
        };
        let (namespace, name) = table
            .split_once('.')
            .map_or((open.namespace.clone(), table.clone()), |(ns, t)| {
                (ns.to_owned(), t.to_owned())
            });
        state.may_write(principal, &namespace)?;
        let key = format!("{namespace}.{name}");
        match &open.staged {
            Some((staged_key, _)) if *staged_key != key => {
                return Err(ApiError::bad_request(format!(
                    "this transaction changes {staged_key}; a transaction changes one table"
                )));
            }
            Some(_) => {}
            None => {
                state.buffers.flush(&namespace, &name).await?;
                let table = state.table(&state.table_location(&namespace, &name))?;
                // Queries before the first change read the table as it was
                // at BEGIN: what changed since conflicts with them.
                let read_at = match open.queried {
                    true => open.engine.registered_version(&key).await,
                    false => None,
                };
                let staged = StagedTransaction::begin(&table, read_at).await?;
                open.engine.register_private(&key, staged.storage()).await?;
                open.staged = Some((key, staged));
            }
        }
        open.statements.push(statement.sql().to_owned());
    } else {
        // What the transaction writes may rest on what a query read.
        match &open.staged {
            Some((_, staged)) => staged.note_query(),
            None => open.queried = true,
        }
    }
    let limit = state.config.limits.max_result_rows;
    let work = async {
        let frame = open.engine.execute(statement).await?;
        let frame = frame.limit(0, Some(limit + 1))?;
        Ok::<_, wavelake_engine::Error>(frame.collect().await?)
    };
    let deadline = Duration::from_secs(state.config.limits.query_timeout_secs);
    let mut batches = tokio::time::timeout(deadline, work).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "QUERY_TIMEOUT",
            "the statement ran longer than the limit",
        )
    })??;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let truncated = rows > limit;
    if truncated {
        let mut room = limit;
        for batch in &mut batches {
            let keep = batch.num_rows().min(room);
            *batch = batch.slice(0, keep);
            room -= keep;
        }
    }
    Ok((batches, truncated))
}

async fn commit(open: &Open) -> Result<RecordBatch, ApiError> {
    let Some((_, staged)) = &open.staged else {
        return one_row("version", Arc::new(Int64Array::from(vec![None::<i64>])));
    };
    let outcome = staged
        .commit(&open.statements, chrono::Utc::now().timestamp_millis())
        .await?;
    if outcome.version.is_some() {
        metrics::counter!("wavelake_commits_total").increment(1);
    }
    one_row("version", Arc::new(Int64Array::from(vec![outcome.version])))
}

fn one_row(name: &str, column: ArrayRef) -> Result<RecordBatch, ApiError> {
    RecordBatch::try_from_iter([(name, column)]).map_err(ApiError::internal)
}

fn random_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(ApiError::internal)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
