//! A snapshot: one version of a table, ready to be queried.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use datafusion_common::ScalarValue;
use url::Url;

use crate::Result;
use crate::log::TableState;
use crate::partition::parse_partition_value;
use crate::protocol::{Add, DomainMetadata, Metadata, Protocol, Txn};
use crate::schema::{ColumnMappingMode, StructType, TableSchemas};
use crate::stats::FilesStatistics;
use crate::storage::resolve_data_path;

/// One version of a Delta table: protocol, metadata, schema and files.
#[derive(Debug, Clone)]
pub struct Snapshot {
    state: Arc<TableState>,
    schema: StructType,
    schemas: TableSchemas,
    root: Url,
    cache: Arc<ScanCache>,
}

/// What every scan of a snapshot would otherwise recompute: typed partition
/// values and the file statistics of the columns filters use (parsing the
/// JSON statistics of 300k files takes seconds).
#[derive(Debug, Default)]
struct ScanCache {
    partition_values: Mutex<Option<Arc<Vec<Vec<ScalarValue>>>>>,
    statistics: Mutex<HashMap<Vec<String>, Arc<FilesStatistics>>>,
}

/// Column sets whose statistics a snapshot keeps at most.
const CACHED_STATISTICS: usize = 32;

impl Snapshot {
    /// Builds a snapshot from replayed state, checking its schema.
    pub fn try_new(state: TableState, root: Url) -> Result<Self> {
        let schema = StructType::parse(&state.metadata.schema_string)?;
        let mapping =
            ColumnMappingMode::from_property(state.metadata.property("delta.columnMapping.mode"))?;
        let schemas = TableSchemas::new(&schema, &state.metadata.partition_columns, mapping)?;
        Ok(Self {
            state: Arc::new(state),
            schema,
            schemas,
            root,
            cache: Arc::default(),
        })
    }

    /// The replayed state underneath.
    pub fn state(&self) -> &TableState {
        &self.state
    }

    /// The version.
    pub fn version(&self) -> i64 {
        self.state.version
    }

    /// When the version was committed (milliseconds since the epoch), if known.
    pub fn timestamp(&self) -> Option<i64> {
        self.state.timestamp
    }

    /// The protocol.
    pub fn protocol(&self) -> &Protocol {
        &self.state.protocol
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.state.metadata
    }

    /// The Delta schema.
    pub fn schema(&self) -> &StructType {
        &self.schema
    }

    /// The Arrow schema queries see.
    pub fn arrow_schema(&self) -> SchemaRef {
        self.schemas.logical.clone()
    }

    /// Logical, physical and partition schemas.
    pub fn schemas(&self) -> &TableSchemas {
        &self.schemas
    }

    /// The column mapping mode.
    pub fn column_mapping(&self) -> ColumnMappingMode {
        self.schemas.mapping
    }

    /// The active data files.
    pub fn files(&self) -> &[Add] {
        &self.state.files
    }

    /// The latest transaction version of application `app_id`.
    pub fn txn(&self, app_id: &str) -> Option<&Txn> {
        self.state.txns.get(app_id)
    }

    /// All application transactions.
    pub fn txns(&self) -> &HashMap<String, Txn> {
        &self.state.txns
    }

    /// The configuration of metadata domain `domain`, if active.
    pub fn domain(&self, domain: &str) -> Option<&DomainMetadata> {
        self.state.domains.get(domain)
    }

    /// The table root.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The storage path of a data file.
    pub fn file_path(&self, add: &Add) -> String {
        resolve_data_path(&self.root, &add.path)
    }

    /// The typed partition values of every active file (in [`Self::files`]
    /// order), parsed once per snapshot.
    pub fn all_partition_values(&self) -> Result<Arc<Vec<Vec<ScalarValue>>>> {
        if let Some(values) = self
            .cache
            .partition_values
            .lock()
            .ok()
            .and_then(|c| c.clone())
        {
            return Ok(values);
        }
        let values = Arc::new(
            self.files()
                .iter()
                .map(|f| self.partition_values(f))
                .collect::<Result<Vec<_>>>()?,
        );
        if let Ok(mut cache) = self.cache.partition_values.lock() {
            *cache = Some(values.clone());
        }
        Ok(values)
    }

    /// Statistics of every active file for the logical `columns`, built once
    /// per snapshot and column set.
    pub fn files_statistics(&self, columns: &HashSet<String>) -> Result<Arc<FilesStatistics>> {
        let mut key: Vec<String> = columns.iter().cloned().collect();
        key.sort();
        if let Some(stats) = self
            .cache
            .statistics
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned())
        {
            return Ok(stats);
        }
        let files: Vec<&Add> = self.files().iter().collect();
        let partition_values = self.all_partition_values()?;
        let stats = Arc::new(FilesStatistics::new(
            &files,
            &self.schemas,
            &partition_values,
            columns,
        ));
        if let Ok(mut cache) = self.cache.statistics.lock() {
            if cache.len() >= CACHED_STATISTICS {
                cache.clear();
            }
            cache.insert(key, stats.clone());
        }
        Ok(stats)
    }

    /// The typed partition values of a file, in `partitionColumns` order.
    pub fn partition_values(&self, add: &Add) -> Result<Vec<ScalarValue>> {
        self.schemas
            .partition_logical
            .iter()
            .zip(&self.schemas.partition_physical_names)
            .map(|(field, physical)| {
                let raw = add
                    .partition_values
                    .get(physical)
                    .or_else(|| add.partition_values.get(field.name()))
                    .and_then(|v| v.as_deref());
                parse_partition_value(raw, field.data_type())
            })
            .collect()
    }
}
