//! Reading tables a Delta Sharing server shares: an HTTP client
//! ([`client`]) for the protocol's messages, which are the
//! `wavelake-sharing` crate's wire types (re-exported here as [`protocol`];
//! the server writes the same types).

#[cfg(feature = "http")]
mod catalog;
#[cfg(feature = "http")]
pub mod client;
#[cfg(feature = "http")]
pub mod subscription;
pub use wavelake_sharing as protocol;

#[cfg(feature = "http")]
pub use catalog::SharedCatalog;
#[cfg(feature = "http")]
pub use client::{QueryOptions, SharingClient};
pub use wavelake_sharing::{
    EndStream, ErrorResponse, HistoryItem, Page, SchemaItem, ShareItem, ShareResponse, SharedFiles,
    SharedTableName, SharingProfile, deletion_vector_key, parse_query_response,
};

#[cfg(feature = "http")]
pub use open::{SharedTableVersions, open_shared_table};

#[cfg(feature = "http")]
mod open {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;

    use super::{QueryOptions, SharedTableName, SharingClient};
    use crate::storage::{HttpStorage, StorageRef, UrlMapStorage, UrlRefresh};
    use crate::versions::TableVersions;
    use crate::{CommitEntry, Error, Result, Snapshot};

    /// A shared table as a snapshot and the storage its presigned file URLs
    /// are read from, ready for [`crate::SqlSession::register_snapshot`]. URLs
    /// that expire while the table is in use are refreshed: with the
    /// server's refresh token when it gave one, else by asking for the
    /// same version again.
    pub async fn open_shared_table(
        client: &SharingClient,
        table: &SharedTableName,
        options: &QueryOptions,
    ) -> Result<(Snapshot, StorageRef)> {
        let asked = QueryOptions {
            include_refresh_token: true,
            ..options.clone()
        };
        let shared = client.query(table, &asked).await?;
        let location = client.table_url(table, "")?;
        let reader: StorageRef = Arc::new(HttpStorage::new(client.endpoint().as_str())?);
        let refresh = SharedUrlRefresh {
            client: client.clone(),
            table: table.clone(),
            options: QueryOptions {
                version: Some(shared.state.version),
                timestamp: None,
                ..asked
            },
            token: Mutex::new(shared.refresh_token),
        };
        let storage = UrlMapStorage::new(location.as_str(), shared.urls, reader)
            .with_refresh(Arc::new(refresh));
        let snapshot = Snapshot::try_new(shared.state, location)?;
        Ok((snapshot, Arc::new(storage)))
    }

    /// The versions of a shared table, as its server answers for them: a
    /// version or a timestamp is one `query`, the history Wavelake's
    /// `history` extension (servers without it answer
    /// [`Error::TableNotFound`]).
    #[derive(Debug, Clone)]
    pub struct SharedTableVersions {
        client: SharingClient,
        table: SharedTableName,
    }

    impl SharedTableVersions {
        /// The versions of `table`, asked of `client`'s server.
        pub fn new(client: SharingClient, table: SharedTableName) -> Self {
            Self { client, table }
        }
    }

    #[async_trait]
    impl TableVersions for SharedTableVersions {
        async fn version(&self, version: Option<i64>) -> Result<(Snapshot, StorageRef)> {
            let options = QueryOptions {
                version,
                ..QueryOptions::default()
            };
            open_shared_table(&self.client, &self.table, &options).await
        }

        async fn version_at_timestamp(&self, timestamp_ms: i64) -> Result<(Snapshot, StorageRef)> {
            let at = chrono::DateTime::from_timestamp_millis(timestamp_ms).ok_or_else(|| {
                Error::InvalidArgument(format!("timestamp {timestamp_ms} ms is out of range"))
            })?;
            let options = QueryOptions {
                timestamp: Some(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
                ..QueryOptions::default()
            };
            open_shared_table(&self.client, &self.table, &options).await
        }

        async fn history(&self) -> Result<Vec<CommitEntry>> {
            self.client.history(&self.table).await
        }
    }

    /// Fresh URLs for a shared table's files at one version.
    #[derive(Debug)]
    struct SharedUrlRefresh {
        client: SharingClient,
        table: SharedTableName,
        /// The first query's options, pinned to the version it returned.
        options: QueryOptions,
        /// The latest refresh token, when the server hands them out.
        token: Mutex<Option<String>>,
    }

    impl SharedUrlRefresh {
        fn token(&self) -> Option<String> {
            match self.token.lock() {
                Ok(token) => token.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            }
        }
    }

    #[async_trait]
    impl UrlRefresh for SharedUrlRefresh {
        async fn refresh(&self) -> Result<HashMap<String, String>> {
            let pinned = self.options.version;
            let options = match self.token() {
                // A refresh token stands for the version itself.
                Some(token) => QueryOptions {
                    version: None,
                    refresh_token: Some(token),
                    ..self.options.clone()
                },
                None => self.options.clone(),
            };
            let fresh = self.client.query(&self.table, &options).await?;
            if Some(fresh.state.version) != pinned {
                return Err(Error::InvalidArgument(format!(
                    "{} answered a refresh with version {} instead of {pinned:?}",
                    self.table.qualified(),
                    fresh.state.version
                )));
            }
            if let Some(token) = fresh.refresh_token {
                match self.token.lock() {
                    Ok(mut slot) => *slot = Some(token),
                    Err(poisoned) => *poisoned.into_inner() = Some(token),
                }
            }
            Ok(fresh.urls)
        }
    }
}
