//! Whether a store really makes commits exclusive. A Delta commit is a
//! put-if-absent of the next version's file; a store that silently accepts
//! a second put of the same key (an S3-compatible server without
//! conditional writes, a misconfigured gateway) lets two writers both take
//! one version, and one commit is lost without anyone being told.

use bytes::Bytes;

use super::Storage;
use crate::{Error, Result};

/// Writes a probe file under `dir` twice with put-if-absent and checks that
/// the second write is refused and the first one kept, then deletes it.
/// [`Error::UnsafeStorage`] says what went wrong when the store cannot be
/// trusted with commits.
pub async fn check_exclusive_commits(storage: &dyn Storage, dir: &str) -> Result<()> {
    let path = format!("{dir}put-if-absent-probe-{}", uuid::Uuid::new_v4());
    let unsafe_storage = |reason: String| Error::UnsafeStorage {
        location: storage.location(),
        reason,
    };
    let first = Bytes::from_static(b"first");
    if let Err(e) = storage.put_if_absent(&path, first.clone()).await {
        return Err(unsafe_storage(format!(
            "a put-if-absent of a new key failed: {e}"
        )));
    }
    let second = storage
        .put_if_absent(&path, Bytes::from_static(b"second"))
        .await;
    let kept = storage.get(&path).await;
    if let Err(e) = storage.delete(&path).await {
        tracing::warn!(path, error = %e, "could not delete the put-if-absent probe");
    }
    match second {
        Err(Error::AlreadyExists { .. }) => {}
        Ok(()) => {
            return Err(unsafe_storage(
                "it accepted a second put-if-absent of the same key".into(),
            ));
        }
        Err(e) => {
            return Err(unsafe_storage(format!(
                "a second put-if-absent of the same key failed without saying it exists: {e}"
            )));
        }
    }
    match kept {
        Ok(bytes) if bytes == first => Ok(()),
        Ok(_) => Err(unsafe_storage(
            "the refused second write replaced the first".into(),
        )),
        Err(e) => Err(unsafe_storage(format!(
            "the probe file cannot be read back: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use async_trait::async_trait;

    use super::*;
    use crate::storage::{FileMeta, MemoryStorage};

    fn memory() -> MemoryStorage {
        MemoryStorage::new("memory:///root/")
    }

    /// A store whose put-if-absent is a plain put (no condition) or,
    /// when `read_only`, which cannot write at all (the trait's defaults).
    #[derive(Debug)]
    struct Faulty {
        inner: MemoryStorage,
        read_only: bool,
    }

    #[async_trait]
    impl Storage for Faulty {
        fn location(&self) -> String {
            self.inner.location()
        }
        async fn get(&self, path: &str) -> Result<Bytes> {
            self.inner.get(path).await
        }
        async fn get_ranges(&self, path: &str, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
            self.inner.get_ranges(path, ranges).await
        }
        async fn list(
            &self,
            prefix: &str,
            start_after: Option<&str>,
        ) -> Result<Option<Vec<FileMeta>>> {
            self.inner.list(prefix, start_after).await
        }
        async fn put_if_absent(&self, path: &str, bytes: Bytes) -> Result<()> {
            if self.read_only {
                return Err(Error::ReadOnly {
                    location: self.location(),
                });
            }
            self.inner.put(path, bytes).await
        }
        async fn delete(&self, path: &str) -> Result<()> {
            self.inner.delete(path).await
        }
    }

    #[tokio::test]
    async fn a_store_with_conditional_puts_passes_and_keeps_nothing() {
        let storage = memory();
        check_exclusive_commits(&storage, "_wavelake/")
            .await
            .expect("exclusive");
        let left = storage.list("_wavelake/", None).await.expect("lists");
        assert_eq!(left, Some(vec![]));
    }

    #[tokio::test]
    async fn a_store_that_overwrites_is_unsafe() {
        let storage = Faulty {
            inner: memory(),
            read_only: false,
        };
        let err = check_exclusive_commits(&storage, "_wavelake/")
            .await
            .expect_err("unsafe");
        assert!(
            matches!(&err, Error::UnsafeStorage { reason, .. }
            if reason.contains("accepted a second put-if-absent")),
            "{err}"
        );
        assert!(err.to_string().contains("writes are refused"), "{err}");
    }

    #[tokio::test]
    async fn a_read_only_store_is_unsafe_for_commits() {
        let err = check_exclusive_commits(
            &Faulty {
                inner: memory(),
                read_only: true,
            },
            "",
        )
        .await
        .expect_err("cannot commit");
        assert!(
            matches!(&err, Error::UnsafeStorage { reason, .. }
            if reason.contains("of a new key failed")),
            "{err}"
        );
    }
}
