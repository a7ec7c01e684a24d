//! Reading tables a Delta Sharing server shares: the protocol's messages
//! ([`protocol`], IO-free) and an HTTP client for them ([`client`]).

#[cfg(feature = "http")]
pub mod client;
pub mod protocol;

#[cfg(feature = "http")]
pub use client::{QueryOptions, SharingClient};
pub use protocol::{SharedFiles, SharedTableName, SharingProfile, parse_query_response};

#[cfg(feature = "http")]
pub use open::open_shared_table;

#[cfg(feature = "http")]
mod open {
    use std::sync::Arc;

    use super::{QueryOptions, SharedTableName, SharingClient};
    use crate::storage::{HttpStorage, StorageRef, UrlMapStorage};
    use crate::{Result, Snapshot};

    /// A shared table as a snapshot and the storage its presigned file URLs
    /// are read from, ready for [`crate::Engine::register_snapshot`].
    pub async fn open_shared_table(
        client: &SharingClient,
        table: &SharedTableName,
        options: &QueryOptions,
    ) -> Result<(Snapshot, StorageRef)> {
        let shared = client.query(table, options).await?;
        let location = client.table_url(table, "")?;
        let reader: StorageRef = Arc::new(HttpStorage::new(client.endpoint().as_str())?);
        let storage: StorageRef =
            Arc::new(UrlMapStorage::new(location.as_str(), shared.urls, reader));
        let snapshot = Snapshot::try_new(shared.state, location)?;
        Ok((snapshot, storage))
    }
}
