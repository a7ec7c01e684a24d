//! Admission of the requests that run statements (SQL, uploads, Delta
//! Sharing queries): at most so many at once in all and per caller, so
//! that one client cannot take every worker, connection and byte of memory
//! from the others. The excess is refused at once with `429 Too Many
//! Requests` and a `Retry-After`, never queued without bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::response::Response;

use crate::auth::{TokenStore, bearer_token};

/// Seconds a refused client is told to wait before trying again.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Counts the statements running, in all and per caller.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_caller: usize,
    running: Mutex<Running>,
}

#[derive(Debug, Default)]
struct Running {
    total: usize,
    by_caller: HashMap<String, usize>,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server runs as many statements as it allows in all.
    ServerBusy {
        /// The limit.
        limit: usize,
    },
    /// This caller runs as many statements as one caller may.
    CallerBusy {
        /// The limit.
        limit: usize,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ServerBusy { limit } => write!(
                f,
                "the server is running its limit of {limit} statements; retry shortly"
            ),
            Self::CallerBusy { limit } => write!(
                f,
                "this token is running its limit of {limit} statements at once; wait for one \
                 to finish"
            ),
        }
    }
}

/// A running statement's place; freed when dropped.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    caller: String,
}

impl Admission {
    /// At most `max_total` statements at once, `max_per_caller` of them
    /// for one caller.
    pub fn new(max_total: usize, max_per_caller: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_caller,
            running: Mutex::default(),
        })
    }

    /// A place for one more statement of `caller`, or why there is none.
    pub fn admit(self: &Arc<Self>, caller: &str) -> Result<Admitted, Refusal> {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = running.by_caller.get(caller).copied().unwrap_or(0);
        if mine >= self.max_per_caller {
            return Err(Refusal::CallerBusy {
                limit: self.max_per_caller,
            });
        }
        if running.total >= self.max_total {
            return Err(Refusal::ServerBusy {
                limit: self.max_total,
            });
        }
        running.total += 1;
        running.by_caller.insert(caller.to_owned(), mine + 1);
        metrics::gauge!("wavelake_running_statements").set(running.total as f64);
        Ok(Admitted {
            admission: self.clone(),
            caller: caller.to_owned(),
        })
    }

    /// How many statements run now.
    #[cfg(test)]
    fn running(&self) -> usize {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .total
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut running = self
            .admission
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        running.total = running.total.saturating_sub(1);
        if let Some(mine) = running.by_caller.get_mut(&self.caller) {
            *mine -= 1;
            if *mine == 0 {
                running.by_caller.remove(&self.caller);
            }
        }
        metrics::gauge!("wavelake_running_statements").set(running.total as f64);
    }
}

/// A place for the caller the request's bearer token names (callers
/// without a valid token share one count; they are refused soon anyway).
/// The principal found is kept in the request, so the handler's
/// `Principal` extractor does not authenticate the token again.
pub fn admission_for(
    tokens: &TokenStore,
    admission: &Arc<Admission>,
    request: &mut axum::extract::Request,
) -> Result<Admitted, Refusal> {
    let principal = bearer_token(request.headers()).and_then(|token| tokens.authenticate(token));
    let caller = principal
        .as_ref()
        .map_or_else(|| "anonymous".to_owned(), |p| p.id.clone());
    if let Some(principal) = principal {
        request.extensions_mut().insert(principal);
    }
    admission.admit(&caller)
}

/// `response`, whose body keeps `admitted` until it has been sent.
pub fn hold_until_sent(response: Response, admitted: Admitted) -> Response {
    response.map(|body| axum::body::Body::new(HeldBody { body, admitted }))
}

/// A response body holding its statement's admission.
struct HeldBody {
    body: axum::body::Body,
    #[allow(dead_code)] // held, never read
    admitted: Admitted,
}

impl http_body::Body for HeldBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_per_caller_and_in_all_and_free_on_drop() {
        let admission = Admission::new(3, 2);
        let a1 = admission.admit("a").expect("first");
        let a2 = admission.admit("a").expect("second");
        assert_eq!(
            admission.admit("a").expect_err("third of a"),
            Refusal::CallerBusy { limit: 2 }
        );
        let b1 = admission.admit("b").expect("b has room");
        assert_eq!(
            admission.admit("c").expect_err("server full"),
            Refusal::ServerBusy { limit: 3 }
        );
        drop(a1);
        let c1 = admission.admit("c").expect("room again");
        assert_eq!(admission.running(), 3);
        drop((a2, b1, c1));
        assert_eq!(admission.running(), 0);
        assert!(admission.running.lock().unwrap().by_caller.is_empty());
    }
}
