//! Shares and recipients, kept in `ROOT/_wavelake/shares.json`. A share
//! names tables (`namespace.table`) under share schemas; a recipient has a
//! bearer token (a [`Scope::Recipient`](crate::auth::Scope) token) and the
//! shares granted to it.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use wavelake_engine::storage::StorageRef;

/// Where the shares live, relative to the root.
pub const SHARES_PATH: &str = "_wavelake/shares.json";

/// A table in a share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedTable {
    /// The share schema it is listed under.
    pub schema: String,
    /// Its name in the share.
    pub name: String,
    /// The namespace it lives in.
    pub namespace: String,
    /// Its name there.
    pub table: String,
}

/// A share.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    /// Its tables.
    pub tables: Vec<SharedTable>,
    /// A comment.
    #[serde(default)]
    pub comment: Option<String>,
}

/// A recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The shares granted to it.
    pub shares: BTreeSet<String>,
}

/// Every share and recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// Shares by name.
    pub shares: BTreeMap<String, Share>,
    /// Recipients by name.
    pub recipients: BTreeMap<String, Recipient>,
}

/// The shares store: an in-memory catalog saved on every change.
pub struct ShareStore {
    storage: StorageRef,
    catalog: tokio::sync::RwLock<Catalog>,
}

impl std::fmt::Debug for ShareStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareStore").finish_non_exhaustive()
    }
}

impl ShareStore {
    /// Loads the catalog from the root (empty on first start).
    pub async fn load(storage: StorageRef) -> Result<Self> {
        let catalog = match storage.get(SHARES_PATH).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{SHARES_PATH} is not a share catalog"))?,
            Err(wavelake_engine::Error::NotFound { .. }) => Catalog::default(),
            Err(e) => return Err(e).context("cannot read the shares"),
        };
        Ok(Self {
            storage,
            catalog: tokio::sync::RwLock::new(catalog),
        })
    }

    /// A copy of the catalog.
    pub async fn snapshot(&self) -> Catalog {
        self.catalog.read().await.clone()
    }

    /// Applies `change` to the catalog and saves it; nothing changes when
    /// `change` fails.
    pub async fn update<T>(
        &self,
        change: impl FnOnce(&mut Catalog) -> Result<T, String>,
    ) -> Result<Result<T, String>> {
        let mut guard = self.catalog.write().await;
        let mut next = guard.clone();
        let outcome = match change(&mut next) {
            Ok(outcome) => outcome,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let text = serde_json::to_vec_pretty(&next)?;
        self.storage
            .put(SHARES_PATH, Bytes::from(text))
            .await
            .context("cannot save the shares")?;
        crate::secrets::restrict(self.storage.as_ref(), SHARES_PATH);
        *guard = next;
        Ok(Ok(outcome))
    }
}

/// Merges the shares and recipients of the configuration file into the
/// store (they win over same-named ones made in SQL) and accepts the
/// recipients' tokens.
pub async fn apply_config(
    store: &ShareStore,
    tokens: &crate::auth::TokenStore,
    config: &crate::config::SharingConfig,
) -> Result<()> {
    let mut shares = Vec::new();
    for share in &config.shares {
        let mut tables = Vec::new();
        for spec in &share.tables {
            let (source, alias) = match spec.split_once(" as ").or_else(|| spec.split_once(" AS "))
            {
                Some((source, alias)) => (source.trim(), alias.trim()),
                None => (spec.trim(), spec.trim()),
            };
            let split = |text: &str| -> Result<(String, String)> {
                let (a, b) = text.split_once('.').with_context(|| {
                    format!("share {}: {text:?} is not namespace.table", share.name)
                })?;
                Ok((a.to_owned(), b.to_owned()))
            };
            let (namespace, table) = split(source)?;
            let (schema, name) = split(alias)?;
            tables.push(SharedTable {
                schema,
                name,
                namespace,
                table,
            });
        }
        shares.push((share.name.clone(), tables));
    }
    let recipients: Vec<(String, BTreeSet<String>)> = config
        .recipients
        .iter()
        .map(|r| (r.name.clone(), r.shares.iter().cloned().collect()))
        .collect();
    if !shares.is_empty() || !recipients.is_empty() {
        store
            .update(|catalog| {
                for (name, tables) in shares {
                    catalog.shares.insert(
                        name,
                        Share {
                            tables,
                            comment: Some("from the configuration file".into()),
                        },
                    );
                }
                for (name, granted) in recipients {
                    catalog
                        .recipients
                        .insert(name, Recipient { shares: granted });
                }
                Ok(())
            })
            .await?
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    for recipient in &config.recipients {
        tokens.accept_configured(
            &recipient.token_sha256,
            vec![crate::auth::Scope::Recipient {
                name: recipient.name.clone(),
            }],
        );
    }
    Ok(())
}

impl Catalog {
    /// The shares `recipient` may read (all for `None`: an admin).
    pub fn visible_shares(&self, recipient: Option<&str>) -> Vec<String> {
        match recipient {
            None => self.shares.keys().cloned().collect(),
            Some(name) => self
                .recipients
                .get(name)
                .map(|r| {
                    r.shares
                        .iter()
                        .filter(|s| self.shares.contains_key(*s))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The shared table `share.schema.name`, if `recipient` may read it.
    pub fn table(
        &self,
        recipient: Option<&str>,
        share: &str,
        schema: &str,
        name: &str,
    ) -> Option<SharedTable> {
        if !self.visible_shares(recipient).iter().any(|s| s == share) {
            return None;
        }
        self.shares
            .get(share)?
            .tables
            .iter()
            .find(|t| t.schema == schema && t.name == name)
            .cloned()
    }
}
