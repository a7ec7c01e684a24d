//! A storage that, from a seed, fails, delays and loses the answers of
//! reads and writes: the faults a real store shows (timeouts, throttling,
//! connections cut after a request was applied), for fault-injection
//! campaigns against the engine's writers and readers.
//!
//! Writes to a real store are atomic (an object is all there or not at
//! all; a local write is linked or renamed into place), so a fault never
//! leaves a partial file at its path: it strikes before the write (the
//! write never happened) or after it (the write happened, the caller is
//! told it failed, or, for a put-if-absent, that the file exists: what a
//! retried S3 PUT whose first answer was lost gets).

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wavelake_engine::storage::{FileMeta, Storage, StorageRef};
use wavelake_engine::{Error, Result};

/// How often each fault strikes, as probabilities per call.
#[derive(Debug, Clone, Copy)]
pub struct FaultRates {
    /// A read (`get`, ranges, `list`, `size`) fails.
    pub read_failure: f64,
    /// A write fails before it is applied.
    pub write_failure: f64,
    /// A write is applied and the caller told it failed (a put-if-absent:
    /// told the file exists).
    pub lost_answer: f64,
    /// A call waits up to this long first (uniformly).
    pub max_delay: Duration,
}

/// What the faults did, counted.
#[derive(Debug, Default)]
pub struct FaultCounts {
    /// Calls made.
    pub calls: AtomicU64,
    /// Reads failed.
    pub read_failures: AtomicU64,
    /// Writes failed before they were applied.
    pub write_failures: AtomicU64,
    /// Writes applied whose answer was lost.
    pub lost_answers: AtomicU64,
}

impl FaultCounts {
    /// Faults injected in all.
    pub fn injected(&self) -> u64 {
        self.read_failures.load(Ordering::Relaxed)
            + self.write_failures.load(Ordering::Relaxed)
            + self.lost_answers.load(Ordering::Relaxed)
    }
}

/// [`Storage`] over `inner` with seeded faults.
#[derive(Debug)]
pub struct FaultyStorage {
    inner: StorageRef,
    rates: FaultRates,
    rng: Mutex<StdRng>,
    /// What was injected so far.
    pub counts: FaultCounts,
}

/// The error an injected fault returns.
fn injected(path: &str, what: &str) -> Error {
    Error::Storage {
        path: path.to_owned(),
        message: format!("injected fault: {what}"),
    }
}

impl FaultyStorage {
    /// Faults at `rates` over `inner`, drawn from `seed`.
    pub fn new(inner: StorageRef, rates: FaultRates, seed: u64) -> Self {
        Self {
            inner,
            rates,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            counts: FaultCounts::default(),
        }
    }

    /// Draws whether a fault with probability `p` strikes, and a delay.
    fn draw(&self, p: f64) -> (bool, Duration) {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let strikes = rng.random_bool(p.clamp(0.0, 1.0));
        let max = self.rates.max_delay.as_micros() as u64;
        let delay = Duration::from_micros(if max == 0 {
            0
        } else {
            rng.random_range(0..=max)
        });
        (strikes, delay)
    }

    async fn before_read(&self, path: &str) -> Result<()> {
        self.counts.calls.fetch_add(1, Ordering::Relaxed);
        let (fails, delay) = self.draw(self.rates.read_failure);
        tokio::time::sleep(delay).await;
        if fails {
            self.counts.read_failures.fetch_add(1, Ordering::Relaxed);
            return Err(injected(path, "read failed"));
        }
        Ok(())
    }

    /// Before a write: fails it, or says whether to lose its answer.
    async fn before_write(&self, path: &str) -> Result<bool> {
        self.counts.calls.fetch_add(1, Ordering::Relaxed);
        let (fails, delay) = self.draw(self.rates.write_failure);
        tokio::time::sleep(delay).await;
        if fails {
            self.counts.write_failures.fetch_add(1, Ordering::Relaxed);
            return Err(injected(path, "write failed"));
        }
        let (lose, _) = self.draw(self.rates.lost_answer);
        if lose {
            self.counts.lost_answers.fetch_add(1, Ordering::Relaxed);
        }
        Ok(lose)
    }
}

#[async_trait]
impl Storage for FaultyStorage {
    fn location(&self) -> String {
        self.inner.location()
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        self.before_read(path).await?;
        self.inner.get(path).await
    }

    async fn get_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.before_read(path).await?;
        self.inner.get_ranges(path, ranges).await
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>) -> Result<Option<Vec<FileMeta>>> {
        self.before_read(prefix).await?;
        self.inner.list(prefix, start_after).await
    }

    async fn list_directories(&self, prefix: &str) -> Result<Vec<String>> {
        self.before_read(prefix).await?;
        self.inner.list_directories(prefix).await
    }

    async fn size(&self, path: &str) -> Result<u64> {
        self.before_read(path).await?;
        self.inner.size(path).await
    }

    async fn put(&self, path: &str, bytes: Bytes) -> Result<()> {
        let lose = self.before_write(path).await?;
        self.inner.put(path, bytes).await?;
        if lose {
            return Err(injected(path, "the answer to a write was lost"));
        }
        Ok(())
    }

    async fn put_if_absent(&self, path: &str, bytes: Bytes) -> Result<()> {
        let lose = self.before_write(path).await?;
        self.inner.put_if_absent(path, bytes).await?;
        if lose {
            // The retry of a request that was applied.
            return Err(Error::AlreadyExists {
                path: path.to_owned(),
            });
        }
        Ok(())
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let lose = self.before_write(path).await?;
        self.inner.delete(path).await?;
        if lose {
            return Err(injected(path, "the answer to a delete was lost"));
        }
        Ok(())
    }
}
