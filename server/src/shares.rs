//! Shares and recipients, kept in `ROOT/_wavelake/shares/` (a
//! [`Document`] every server on the root shares and syncs). A share
//! names tables (`namespace.table`) under share schemas; a recipient has a
//! bearer token (a [`Scope::Recipient`](crate::auth::Scope) token) and the
//! shares granted to it.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use wavelake_engine::storage::StorageRef;

use crate::document::Document;

/// Where the shares live, relative to the root.
pub const SHARES_DIR: &str = "_wavelake/shares/";

/// The single file shares were kept in before [`SHARES_DIR`].
const LEGACY_SHARES_PATH: &str = "_wavelake/shares.json";

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

/// The shares store: the catalog, saved as a new version on every change.
pub struct ShareStore {
    catalog: Document<Catalog>,
}

impl std::fmt::Debug for ShareStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareStore").finish_non_exhaustive()
    }
}

impl ShareStore {
    /// Loads the catalog from the root (empty on first start).
    pub async fn load(storage: StorageRef) -> Result<Self> {
        Ok(Self {
            catalog: Document::load(storage, SHARES_DIR, LEGACY_SHARES_PATH).await?,
        })
    }

    /// A copy of the catalog.
    pub async fn snapshot(&self) -> Catalog {
        self.catalog.current().await
    }

    /// Picks up changes other servers on the root made.
    pub async fn sync(&self) -> Result<()> {
        self.catalog.sync().await.map(|_| ())
    }

    /// Applies `change` to the latest catalog and saves it (applying it
    /// again if another server changed the catalog meanwhile); nothing
    /// changes when `change` fails.
    pub async fn update<T>(
        &self,
        change: impl FnMut(&mut Catalog) -> Result<T, String>,
    ) -> Result<Result<T, String>> {
        Ok(self
            .catalog
            .update(change)
            .await?
            .map(|(_, outcome)| outcome))
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
                for (name, tables) in &shares {
                    catalog.shares.insert(
                        name.clone(),
                        Share {
                            tables: tables.clone(),
                            comment: Some("from the configuration file".into()),
                        },
                    );
                }
                for (name, granted) in &recipients {
                    catalog.recipients.insert(
                        name.clone(),
                        Recipient {
                            shares: granted.clone(),
                        },
                    );
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
