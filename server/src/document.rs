//! A small JSON document shared by every server on one root (the tokens,
//! the shares), kept as numbered versions `DIR/NNNNNNNNNNNNNNNNNNNN.json`.
//! A change reads the latest version, applies itself and writes the next
//! with put-if-absent; a server that loses the race to another reloads and
//! applies its change again, so two servers changing the document at once
//! lose neither change (a whole-file overwrite would lose one). Servers
//! pick up each other's versions with [`Document::sync`].

use anyhow::{Context, Result};
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use wavelake_engine::storage::StorageRef;

/// Versions kept behind the latest (older ones are deleted).
const VERSIONS_KEPT: i64 = 16;

/// Lost races a change survives before it gives up.
const MAX_ATTEMPTS: usize = 32;

/// The document and its version.
#[derive(Debug, Clone)]
struct Versioned<T> {
    version: i64,
    value: T,
}

/// A document of type `T` under `dir` in the root's storage.
pub struct Document<T> {
    storage: StorageRef,
    dir: &'static str,
    state: tokio::sync::RwLock<Versioned<T>>,
}

impl<T> std::fmt::Debug for Document<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn version_path(dir: &str, version: i64) -> String {
    format!("{dir}{version:020}.json")
}

impl<T: Serialize + DeserializeOwned + Default + Clone + Send + Sync> Document<T> {
    /// Loads the latest version under `dir` (ending in `/`); with none yet,
    /// the single file `legacy` (the format before versions) when it
    /// exists, else `T::default()`.
    pub async fn load(storage: StorageRef, dir: &'static str, legacy: &str) -> Result<Self> {
        let latest = match latest(&storage, dir, 0).await? {
            Some(versioned) => versioned,
            None => Versioned {
                version: 0,
                value: match storage.get(legacy).await {
                    Ok(bytes) => serde_json::from_slice(&bytes)
                        .with_context(|| format!("{legacy} is not readable"))?,
                    Err(wavelake_engine::Error::NotFound { .. }) => T::default(),
                    Err(e) => return Err(e).with_context(|| format!("cannot read {legacy}")),
                },
            },
        };
        Ok(Self {
            storage,
            dir,
            state: tokio::sync::RwLock::new(latest),
        })
    }

    /// A copy of the document as this server last saw it.
    pub async fn current(&self) -> T {
        self.state.read().await.value.clone()
    }

    /// Reads versions other servers wrote since; whether anything changed.
    pub async fn sync(&self) -> Result<bool> {
        let seen = self.state.read().await.version;
        let Some(newer) = latest(&self.storage, self.dir, seen).await? else {
            return Ok(false);
        };
        let mut state = self.state.write().await;
        if newer.version > state.version {
            *state = newer;
            return Ok(true);
        }
        Ok(false)
    }

    /// Applies `change` to the latest version and writes the next; on a
    /// race lost to another server, reloads and applies it again. A
    /// refusal (`Err` from `change`) writes nothing. Returns the new
    /// document with the change's outcome.
    pub async fn update<R>(
        &self,
        mut change: impl FnMut(&mut T) -> Result<R, String>,
    ) -> Result<Result<(T, R), String>> {
        let mut state = self.state.write().await;
        for _ in 0..MAX_ATTEMPTS {
            let mut next = state.value.clone();
            let outcome = match change(&mut next) {
                Ok(outcome) => outcome,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let version = state.version + 1;
            let path = version_path(self.dir, version);
            let text = serde_json::to_vec_pretty(&next)?;
            match self.storage.put_if_absent(&path, Bytes::from(text)).await {
                Ok(()) => {
                    crate::secrets::restrict(self.storage.as_ref(), &path);
                    *state = Versioned {
                        version,
                        value: next.clone(),
                    };
                    self.forget_before(version - VERSIONS_KEPT).await;
                    return Ok(Ok((next, outcome)));
                }
                Err(wavelake_engine::Error::AlreadyExists { .. }) => {
                    if let Some(newer) = latest(&self.storage, self.dir, state.version).await? {
                        *state = newer;
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("cannot write {path}")),
            }
        }
        anyhow::bail!("{MAX_ATTEMPTS} changes to {} raced this one", self.dir)
    }

    /// Deletes versions up to `version` (best effort: a server reading
    /// one finds the next).
    async fn forget_before(&self, version: i64) {
        if version < 1 {
            return;
        }
        let listed = match self.storage.list(self.dir, None).await {
            Ok(Some(files)) => files,
            _ => return,
        };
        for file in listed {
            if parse_version(self.dir, &file.path).is_some_and(|v| v <= version) {
                let _ = self.storage.delete(&file.path).await;
            }
        }
    }
}

fn parse_version(dir: &str, path: &str) -> Option<i64> {
    let name = path.strip_prefix(dir)?.strip_suffix(".json")?;
    (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}

/// The latest version under `dir` newer than `after`, if any.
async fn latest<T: DeserializeOwned>(
    storage: &StorageRef,
    dir: &str,
    after: i64,
) -> Result<Option<Versioned<T>>> {
    // A version deleted between the listing and the read: list again.
    for _ in 0..3 {
        let start = (after > 0).then(|| version_path(dir, after));
        let listed = storage
            .list(dir, start.as_deref())
            .await
            .with_context(|| format!("cannot list {dir}"))?
            .unwrap_or_default();
        let Some((version, path)) = listed
            .iter()
            .filter_map(|f| parse_version(dir, &f.path).map(|v| (v, f.path.clone())))
            .filter(|(v, _)| *v > after)
            .max()
        else {
            return Ok(None);
        };
        match storage.get(&path).await {
            Ok(bytes) => {
                let value = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{path} is not readable"))?;
                return Ok(Some(Versioned { version, value }));
            }
            Err(wavelake_engine::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {path}")),
        }
    }
    anyhow::bail!("the versions under {dir} keep disappearing")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn storage(dir: &std::path::Path) -> StorageRef {
        Arc::new(
            wavelake_engine::storage::ObjectStoreStorage::open(dir.to_str().expect("utf-8"))
                .expect("storage"),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_servers_lose_no_change_and_see_each_other() {
        let dir = tempfile::tempdir().expect("tempdir");
        let servers: Vec<Arc<Document<Vec<u32>>>> =
            futures::future::join_all((0..4).map(|_| {
                Document::load(storage(dir.path()), "_wavelake/doc/", "_wavelake/doc.json")
            }))
            .await
            .into_iter()
            .map(|d| Arc::new(d.expect("loads")))
            .collect();
        let changes = servers.iter().enumerate().map(|(server, doc)| {
            let doc = doc.clone();
            tokio::spawn(async move {
                for i in 0..10u32 {
                    let item = server as u32 * 100 + i;
                    doc.update(|items| {
                        items.push(item);
                        Ok(())
                    })
                    .await
                    .expect("writes")
                    .expect("accepted");
                }
            })
        });
        for change in futures::future::join_all(changes).await {
            change.expect("joins");
        }
        for doc in &servers {
            doc.sync().await.expect("syncs");
            let mut items = doc.current().await;
            items.sort_unstable();
            let expected: Vec<u32> = (0..4)
                .flat_map(|s| (0..10).map(move |i| s * 100 + i))
                .collect();
            assert_eq!(items, expected, "every server sees every change once");
        }
        let kept = storage(dir.path())
            .list("_wavelake/doc/", None)
            .await
            .expect("lists")
            .expect("listable")
            .len() as i64;
        assert!(
            kept <= VERSIONS_KEPT + 4,
            "old versions are deleted: {kept}"
        );
    }

    #[tokio::test]
    async fn the_legacy_file_is_the_first_version_and_refusals_write_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = storage(dir.path());
        root.put("_wavelake/doc.json", Bytes::from_static(b"[7]"))
            .await
            .expect("legacy");
        let doc: Document<Vec<u32>> =
            Document::load(root.clone(), "_wavelake/doc/", "_wavelake/doc.json")
                .await
                .expect("loads");
        assert_eq!(doc.current().await, [7]);
        let refused = doc
            .update(|_| Err::<(), _>("no".to_owned()))
            .await
            .expect("runs");
        assert_eq!(refused.expect_err("refused"), "no");
        assert_eq!(
            root.list("_wavelake/doc/", None).await.expect("lists"),
            Some(vec![])
        );
        doc.update(|items| {
            items.push(8);
            Ok(())
        })
        .await
        .expect("writes")
        .expect("accepted");
        let again: Document<Vec<u32>> =
            Document::load(root, "_wavelake/doc/", "_wavelake/doc.json")
                .await
                .expect("loads");
        assert_eq!(again.current().await, [7, 8]);
    }
}
