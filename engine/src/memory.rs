//! Memory shared by sessions: one pool for a whole process (a server's
//! budget for all its running queries and writes), with a cap for each
//! session on top, so that one query can neither take the whole budget
//! nor make the process run out of memory when many run at once.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::common::{Result, resources_datafusion_err};
pub use datafusion::execution::memory_pool::MemoryPool;
use datafusion::execution::memory_pool::{
    GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryReservation, TrackConsumersPool,
};

/// A pool of `bytes` for every session of the process that is given it;
/// a refusal names the largest consumers.
pub fn shared_pool(bytes: usize) -> Arc<dyn MemoryPool> {
    Arc::new(TrackConsumersPool::new(
        GreedyMemoryPool::new(bytes),
        NonZeroUsize::MIN.saturating_add(2),
    ))
}

/// One session's share of a shared pool: at most `cap` bytes of it.
#[derive(Debug)]
pub struct CappedPool {
    shared: Arc<dyn MemoryPool>,
    cap: usize,
    used: AtomicUsize,
}

impl CappedPool {
    /// At most `cap` bytes of `shared`.
    pub fn new(shared: Arc<dyn MemoryPool>, cap: usize) -> Self {
        Self {
            shared,
            cap,
            used: AtomicUsize::new(0),
        }
    }
}

impl fmt::Display for CappedPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at most {} bytes of {}", self.cap, self.shared)
    }
}

impl MemoryPool for CappedPool {
    fn name(&self) -> &str {
        "capped"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.shared.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.shared.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used.fetch_add(additional, Ordering::Relaxed);
        self.shared.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used.fetch_sub(shrink, Ordering::Relaxed);
        self.shared.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let before = self.used.fetch_add(additional, Ordering::Relaxed);
        if before.saturating_add(additional) > self.cap {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(resources_datafusion_err!(
                "the query needs more than its {} bytes of memory ({} held, {} more asked \
                 for by {})",
                self.cap,
                before,
                additional,
                reservation.consumer().name()
            ));
        }
        if let Err(e) = self.shared.try_grow(reservation, additional) {
            self.used.fetch_sub(additional, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_share_the_budget_and_each_stays_under_its_cap() {
        let shared = shared_pool(100);
        let first: Arc<dyn MemoryPool> = Arc::new(CappedPool::new(shared.clone(), 60));
        let second: Arc<dyn MemoryPool> = Arc::new(CappedPool::new(shared.clone(), 60));
        let a = MemoryConsumer::new("a").register(&first);
        let b = MemoryConsumer::new("b").register(&second);
        a.try_grow(50).expect("within the cap and the budget");
        let err = a.try_grow(20).expect_err("over the session's cap");
        assert!(err.to_string().contains("more than its 60 bytes"), "{err}");
        b.try_grow(40).expect("the budget has 50 left");
        let err = b.try_grow(20).expect_err("over the shared budget");
        assert!(!err.to_string().contains("more than its"), "{err}");
        assert_eq!(
            (first.reserved(), second.reserved(), shared.reserved()),
            (50, 40, 90)
        );
        drop(a);
        b.try_grow(20).expect("freed by the first session");
        assert_eq!((first.reserved(), shared.reserved()), (0, 60));
    }
}
