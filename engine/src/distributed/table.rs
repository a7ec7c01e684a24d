//! A Delta table known by location and version, opened on its first scan.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use tokio::sync::OnceCell;

use super::AllowedLocations;
use crate::scan::DeltaTableProvider;
use crate::table::Table;

/// A Delta table at one version, known by its location: what a scheduler
/// decodes from a client's plan. Its log is replayed when it is first
/// scanned, and its scans read deletion vectors when they run (on the
/// executors), not when they are planned.
#[derive(Debug)]
pub struct DeltaTableAtVersion {
    location: String,
    version: i64,
    schema: SchemaRef,
    locations: Arc<AllowedLocations>,
    cache: Option<Arc<crate::SnapshotCache>>,
    opened: OnceCell<DeltaTableProvider>,
}

impl DeltaTableAtVersion {
    /// Version `version` of the table at `location`, whose schema the
    /// sender saw as `schema`; opened through `locations`, with snapshots
    /// shared through `cache`.
    pub fn new(
        location: String,
        version: i64,
        schema: SchemaRef,
        locations: Arc<AllowedLocations>,
        cache: Option<Arc<crate::SnapshotCache>>,
    ) -> Self {
        Self {
            location,
            version,
            schema,
            locations,
            cache,
            opened: OnceCell::new(),
        }
    }

    /// The table's location.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The version scanned.
    pub fn version(&self) -> i64 {
        self.version
    }

    async fn open(&self) -> crate::Result<DeltaTableProvider> {
        let storage = self.locations.open(&self.location)?;
        let table = Table::new(storage)?.with_cache(self.cache.clone());
        let snapshot = table.snapshot_at(Some(self.version)).await?;
        let mut provider = DeltaTableProvider::new(snapshot, table.storage().clone())?
            .with_deferred_deletion_vectors();
        // A query session's tables serve strings as views.
        if provider.schema().fields() != self.schema.fields() {
            provider = provider.with_string_views();
        }
        if provider.schema().fields() != self.schema.fields() {
            return Err(crate::Error::InvalidArgument(format!(
                "version {} of {} does not have the schema the plan was made with",
                self.version, self.location
            )));
        }
        Ok(provider)
    }
}

#[async_trait]
impl TableProvider for DeltaTableAtVersion {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let provider = self
            .opened
            .get_or_try_init(|| self.open())
            .await
            .map_err(DataFusionError::from)?;
        provider.scan(state, projection, filters, limit).await
    }
}
