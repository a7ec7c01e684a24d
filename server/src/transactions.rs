//! The transactions open through the SQL API (see `api::transactions`):
//! each with its owner, its session and, from its first change on, the
//! staged log of the one table it changes; rolled back when idle too long
//! or at shutdown.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wavelake_engine::SqlSession;
use wavelake_write::staged::StagedTransaction;

/// Seconds a transaction may sit idle before it is rolled back.
pub const IDLE_SECS: u64 = 300;
/// Transactions open at once, at most.
pub const MAX_OPEN: usize = 256;

/// One open transaction.
pub struct Open {
    /// The token that began it.
    pub owner: String,
    /// The namespace unqualified names resolve in.
    pub namespace: String,
    /// Its session.
    pub engine: SqlSession,
    /// The table it changes and its staged log, from its first change on.
    pub staged: Option<(String, StagedTransaction)>,
    /// The statements that changed the table, in order.
    pub statements: Vec<String>,
    /// Whether a query ran before its first change (and read the tables
    /// as they were at BEGIN).
    pub queried: bool,
    /// When it was last used.
    pub last_used: Instant,
}

/// An open transaction, locked while a statement of it runs.
pub type Shared = Arc<tokio::sync::Mutex<Open>>;

/// The open transactions of this server.
#[derive(Default)]
pub struct Transactions {
    open: Mutex<HashMap<String, Shared>>,
}

impl Transactions {
    /// The open transactions by id.
    pub fn open(&self) -> std::sync::MutexGuard<'_, HashMap<String, Shared>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Rolls back every transaction idle for longer than [`IDLE_SECS`].
    pub async fn expire(&self) {
        let expired: Vec<Shared> = {
            let mut open = self.open();
            let mut gone = Vec::new();
            open.retain(|_, transaction| {
                let idle = transaction
                    .try_lock()
                    .is_ok_and(|t| t.last_used.elapsed() > Duration::from_secs(IDLE_SECS));
                if idle {
                    gone.push(transaction.clone());
                }
                !idle
            });
            gone
        };
        for transaction in expired {
            if let Some((_, staged)) = &transaction.lock().await.staged {
                staged.rollback().await;
            }
        }
    }

    /// Rolls back every open transaction (shutdown).
    pub async fn close(&self) {
        let all: Vec<_> = self.open().drain().map(|(_, t)| t).collect();
        for transaction in all {
            if let Some((_, staged)) = &transaction.lock().await.staged {
                staged.rollback().await;
            }
        }
    }
}
