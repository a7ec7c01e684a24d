//! Bearer tokens with scopes. Tokens are random, shown once when issued,
//! and stored only as SHA-256 hashes in `ROOT/_wavelake/tokens/` (a
//! [`Document`] every server on the root shares and syncs).
//! A token may be admin, may read or write namespaces (tenants), and may
//! read shares (Delta Sharing recipients).

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use anyhow::Result;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use wavelake_engine::storage::StorageRef;

use crate::document::Document;

/// Where the token store lives, relative to the root.
pub const TOKENS_DIR: &str = "_wavelake/tokens/";

/// The single file tokens were kept in before [`TOKENS_DIR`].
const LEGACY_TOKENS_PATH: &str = "_wavelake/tokens.json";

/// What a token may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    /// Everything.
    Admin,
    /// Read (and with `write`, change) the tables of one namespace.
    Namespace {
        /// The namespace.
        name: String,
        /// Whether writes are allowed.
        write: bool,
    },
    /// Read the tables of the shares granted to one recipient.
    Recipient {
        /// The recipient.
        name: String,
    },
}

/// A stored token: its hash and what it may do.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id (for listing and revoking).
    pub id: String,
    /// SHA-256 of the token, hex.
    pub hash: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// A human label.
    pub label: String,
    /// When it was issued, ms since the epoch.
    pub created_ms: i64,
}

/// Who is calling, after authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    /// Which token this is (its public id; `admin` for the admin token):
    /// what per-caller limits count by.
    pub id: String,
    /// May do everything.
    pub admin: bool,
    /// Namespaces and whether each may be written.
    pub namespaces: BTreeMap<String, bool>,
    /// The recipient, for Delta Sharing tokens.
    pub recipient: Option<String>,
}

impl Principal {
    fn of(id: &str, scopes: &[Scope]) -> Self {
        let mut principal = Self {
            id: id.to_owned(),
            ..Self::default()
        };
        for scope in scopes {
            match scope {
                Scope::Admin => principal.admin = true,
                Scope::Namespace { name, write } => {
                    let entry = principal.namespaces.entry(name.clone()).or_default();
                    *entry |= *write;
                }
                Scope::Recipient { name } => principal.recipient = Some(name.clone()),
            }
        }
        principal
    }

    /// Whether the caller may read `namespace`.
    pub fn can_read(&self, namespace: &str) -> bool {
        self.admin || self.namespaces.contains_key(namespace)
    }

    /// The recipient, for a token that is only a Delta Sharing
    /// recipient's (neither an admin's nor a namespace's).
    pub fn recipient_only(&self) -> Option<&str> {
        let only = !self.admin && self.namespaces.is_empty();
        self.recipient.as_deref().filter(|_| only)
    }

    /// Whether the caller may change `namespace`.
    pub fn can_write(&self, namespace: &str) -> bool {
        self.admin || self.namespaces.get(namespace).copied().unwrap_or(false)
    }
}

/// SHA-256 of a token, hex.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh random token: `wl_` and 32 random bytes, base64url.
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(format!(
        "wl_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The tokens the server accepts.
pub struct TokenStore {
    stored: Document<Vec<TokenRecord>>,
    /// The stored tokens by hash, as last loaded, synced or changed.
    by_hash: RwLock<HashMap<String, TokenRecord>>,
    admin_hash: Option<String>,
    /// Tokens from the configuration file (by hash), never stored.
    configured: RwLock<HashMap<String, Vec<Scope>>>,
}

impl std::fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenStore").finish_non_exhaustive()
    }
}

impl TokenStore {
    /// Loads the stored tokens from the root's storage. `admin_token`, when
    /// given, is accepted as admin without being stored.
    pub async fn load(storage: StorageRef, admin_token: Option<&str>) -> Result<Self> {
        let stored = Document::load(storage, TOKENS_DIR, LEGACY_TOKENS_PATH).await?;
        let store = Self {
            stored,
            by_hash: RwLock::default(),
            admin_hash: admin_token.map(hash_token),
            configured: RwLock::new(HashMap::new()),
        };
        store.index(store.stored.current().await);
        Ok(store)
    }

    /// Makes `records` the tokens accepted.
    fn index(&self, records: Vec<TokenRecord>) {
        if let Ok(mut map) = self.by_hash.write() {
            *map = records.into_iter().map(|r| (r.hash.clone(), r)).collect();
        }
    }

    /// Picks up tokens issued and revoked by other servers on the root.
    pub async fn sync(&self) -> Result<()> {
        if self.stored.sync().await? {
            self.index(self.stored.current().await);
        }
        Ok(())
    }

    /// Whether any admin token exists (configured or stored).
    pub fn has_admin(&self) -> bool {
        self.admin_hash.is_some()
            || self
                .by_hash
                .read()
                .map(|m| m.values().any(|r| r.scopes.contains(&Scope::Admin)))
                .unwrap_or(false)
    }

    /// Who `token` is, if anyone.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let hash = hash_token(token);
        if self.admin_hash.as_deref() == Some(hash.as_str()) {
            return Some(Principal::of("admin", &[Scope::Admin]));
        }
        if let Some(scopes) = self.configured.read().ok()?.get(&hash) {
            return Some(Principal::of(&hash[..12], scopes));
        }
        let records = self.by_hash.read().ok()?;
        records.get(&hash).map(|r| Principal::of(&r.id, &r.scopes))
    }

    /// Accepts the token whose SHA-256 (hex) is `hash` with `scopes`, for
    /// this run only (tokens declared in the configuration file).
    pub fn accept_configured(&self, hash: &str, scopes: Vec<Scope>) {
        if let Ok(mut configured) = self.configured.write() {
            configured.insert(hash.to_ascii_lowercase(), scopes);
        }
    }

    /// Issues a new token with `scopes`; returns its id and the token
    /// itself (shown once: only its hash is kept).
    pub async fn issue(&self, label: &str, scopes: Vec<Scope>) -> Result<(String, String)> {
        let token = new_token()?;
        let record = TokenRecord {
            id: hash_token(&token)[..12].to_owned(),
            hash: hash_token(&token),
            scopes,
            label: label.to_owned(),
            created_ms: wavelake_write::now_ms(),
        };
        let id = record.id.clone();
        let (all, ()) = self
            .stored
            .update(|all| {
                all.push(record.clone());
                Ok(())
            })
            .await?
            .map_err(anyhow::Error::msg)?;
        self.index(all);
        Ok((id, token))
    }

    /// Revokes every token matching `doomed`; returns how many.
    pub async fn revoke_where(&self, doomed: impl Fn(&TokenRecord) -> bool) -> Result<usize> {
        let (all, removed) = self
            .stored
            .update(|all| {
                let before = all.len();
                all.retain(|r| !doomed(r));
                Ok(before - all.len())
            })
            .await?
            .map_err(anyhow::Error::msg)?;
        self.index(all);
        Ok(removed)
    }

    /// Every stored token (hashes, never tokens).
    pub fn records(&self) -> Vec<TokenRecord> {
        let mut all: Vec<TokenRecord> = self
            .by_hash
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        all.sort_by(|a, b| a.created_ms.cmp(&b.created_ms).then(a.id.cmp(&b.id)));
        all
    }
}

/// The bearer token of a request's `Authorization` header.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))?;
    Some(token.trim())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn tokens_are_stored_hashed_and_scoped() {
        let dir = tempfile::tempdir().unwrap();
        let open = || -> StorageRef {
            Arc::new(
                wavelake_engine::storage::ObjectStoreStorage::open(dir.path().to_str().unwrap())
                    .unwrap(),
            )
        };
        let store = TokenStore::load(open(), Some("configured-admin-token"))
            .await
            .unwrap();
        assert!(store.authenticate("configured-admin-token").unwrap().admin);
        let (_, token) = store
            .issue(
                "acme reader",
                vec![Scope::Namespace {
                    name: "acme".into(),
                    write: false,
                }],
            )
            .await
            .unwrap();
        let stored: String = wavelake_tests::files_under(&dir.path().join(TOKENS_DIR))
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        assert!(stored.contains(&hash_token(&token)), "{stored}");
        assert!(!stored.contains(&token), "only the hash is stored");
        let again = TokenStore::load(open(), None).await.unwrap();
        let who = again.authenticate(&token).unwrap();
        assert!(who.can_read("acme") && !who.can_write("acme") && !who.can_read("globex"));
        assert!(again.authenticate("wl_wrong").is_none());
        assert!(again.authenticate("configured-admin-token").is_none());
        let revoked = again
            .revoke_where(|r| r.label == "acme reader")
            .await
            .unwrap();
        assert_eq!(revoked, 1);
        assert!(again.authenticate(&token).is_none());
    }
}
