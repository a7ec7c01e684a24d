//! The tables a Delta Sharing recipient can read, as SQL names
//! (`schema.table`) that open on first use: a query names a shared table,
//! and only then are its files asked for and registered in the session.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    QueryOptions, SharedTableName, SharedTableVersions, SharingClient, SharingProfile,
    open_shared_table,
};
use crate::{Error, Result, SqlSession};

/// Every table shared with one recipient, by SQL name.
#[derive(Debug, Clone)]
pub struct SharedCatalog {
    client: SharingClient,
    tables: BTreeMap<String, SharedTableName>,
}

impl SharedCatalog {
    /// Lists every table of every share the profile's recipient can read.
    pub async fn connect(profile: &SharingProfile) -> Result<Self> {
        let client = SharingClient::new(profile)?;
        let tables = client
            .all_tables()
            .await?
            .into_iter()
            .map(|table| (Self::sql_name(&table), table))
            .collect();
        Ok(Self { client, tables })
    }

    /// The SQL name a shared table is queried by: `schema.table`.
    pub fn sql_name(table: &SharedTableName) -> String {
        format!("{}.{}", table.schema, table.name)
    }

    /// The client the catalog reads through.
    pub fn client(&self) -> &SharingClient {
        &self.client
    }

    /// SQL names of every shared table, sorted.
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.tables.keys()
    }

    /// Every shared table with its SQL name, by SQL name.
    pub fn entries(&self) -> impl Iterator<Item = (&String, &SharedTableName)> {
        self.tables.iter()
    }

    /// The shared table behind a SQL name.
    pub fn table(&self, name: &str) -> Option<&SharedTableName> {
        self.tables.get(name)
    }

    /// Follows the commits of shared table `name` (`schema.table`).
    pub async fn subscribe(
        &self,
        name: &str,
        options: &super::subscription::SubscribeOptions,
    ) -> Result<super::subscription::Subscription> {
        let table = self.tables.get(name).ok_or_else(|| Error::UnknownTable {
            name: name.to_owned(),
        })?;
        self.client.subscribe(table, options).await
    }

    /// Lets `engine` time travel on every shared table and describe it
    /// (`FROM schema.table VERSION AS OF 3`, `delta_history('schema.table')`):
    /// each version is asked of the server when a query needs it.
    pub fn register_versions(&self, engine: &SqlSession) -> Result<()> {
        for (name, table) in &self.tables {
            let versions = SharedTableVersions::new(self.client.clone(), table.clone());
            engine.register_versions(name, Arc::new(versions))?;
        }
        Ok(())
    }

    /// Registers in `engine` the shared tables `query` names that it does
    /// not have yet (their files as presigned URLs, refreshed on expiry).
    pub async fn open_referenced(&self, engine: &SqlSession, query: &str) -> Result<()> {
        for name in engine.table_references(query) {
            let Some(table) = self.tables.get(&name) else {
                continue;
            };
            if engine.context().table_exist(name.as_str()).unwrap_or(false) {
                continue;
            }
            let (snapshot, storage) =
                open_shared_table(&self.client, table, &QueryOptions::default()).await?;
            engine.register_snapshot(&name, snapshot, storage)?;
        }
        Ok(())
    }
}
