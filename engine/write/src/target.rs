//! What a writer needs to know about a table: its schemas (logical and
//! physical), partition columns and how its data files are to be written.

use arrow::datatypes::SchemaRef;

use crate::data_file::DataFileOptions;
use crate::protocol::Metadata;
use crate::schema::{ColumnMappingMode, DataType, StructField, StructType, TableSchemas};
use crate::{Error, Result};

/// Table property: data file size to aim for, in bytes (Delta's name).
pub const TARGET_FILE_SIZE_PROPERTY: &str = "delta.targetFileSize";
/// Table property: Parquet codec of new data files (`snappy`, `zstd`).
pub const COMPRESSION_PROPERTY: &str = "wavelake.compression";
/// Table property: comma-separated columns that get Parquet bloom filters.
pub const BLOOM_FILTER_PROPERTY: &str = "wavelake.bloomFilterColumns";
/// Data file size aimed at when the table does not say.
pub const DEFAULT_TARGET_FILE_SIZE: usize = 128 * 1024 * 1024;
/// Column of change data files saying what each row is (`insert`,
/// `delete`, `update_preimage`, `update_postimage`).
pub const CHANGE_TYPE_COLUMN: &str = "_change_type";
/// Directory, under the table root, of change data files.
pub const CHANGE_DATA_DIR: &str = "_change_data/";

/// What kind of files a target's writer makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The table's data files (`part-….parquet`, described by `add`).
    Data,
    /// Change data files (`_change_data/cdc-….parquet`, described by
    /// `cdc`), with a [`CHANGE_TYPE_COLUMN`] after the table's columns.
    ChangeData,
}

/// A table as the write path sees it.
#[derive(Debug, Clone)]
pub struct WriteTarget {
    /// The Delta schema.
    pub schema: StructType,
    /// Logical and physical Arrow schemas.
    pub schemas: TableSchemas,
    /// How data files are written.
    pub file_options: DataFileOptions,
    /// Size at which a data file is closed and a new one started.
    pub target_file_size: usize,
    /// Data files or change data files.
    pub kind: FileKind,
    /// The CHECK constraints rows must pass (none for change data files).
    pub constraints: crate::constraints::CheckConstraints,
}

impl WriteTarget {
    /// The target described by a table's `metaData`.
    pub fn new(metadata: &Metadata) -> Result<Self> {
        let schema = StructType::parse(&metadata.schema_string)?;
        let mapping =
            ColumnMappingMode::from_property(metadata.property("delta.columnMapping.mode"))?;
        let schemas = TableSchemas::new(&schema, &metadata.partition_columns, mapping)?;
        let mut file_options = DataFileOptions::default();
        if let Some(codec) = metadata.property(COMPRESSION_PROPERTY) {
            file_options = file_options.with_codec(codec)?;
        }
        if let Some(columns) = metadata.property(BLOOM_FILTER_PROPERTY) {
            for logical in columns.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                let field = schema.field(logical).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "bloom filter column {logical:?} is not in the table"
                    ))
                })?;
                file_options
                    .bloom_filter_columns
                    .push(field.physical_name(mapping).to_owned());
            }
        }
        let target_file_size = match metadata.property(TARGET_FILE_SIZE_PROPERTY) {
            Some(text) => parse_size(text).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{TARGET_FILE_SIZE_PROPERTY} = {text:?} is not a size (bytes, or like 64mb)"
                ))
            })?,
            None => DEFAULT_TARGET_FILE_SIZE,
        };
        let constraints = crate::constraints::CheckConstraints::of(metadata, &schemas.logical)?;
        Ok(Self {
            schema,
            schemas,
            file_options,
            target_file_size,
            kind: FileKind::Data,
            constraints,
        })
    }

    /// The target of the change data files of the table `metadata`
    /// describes: its columns, then [`CHANGE_TYPE_COLUMN`] (stored under
    /// that name whatever the column mapping mode, as Delta's readers
    /// expect), partitioned like the table.
    pub fn change_data(metadata: &Metadata) -> Result<Self> {
        let mut target = Self::new(metadata)?;
        if target.schema.field(CHANGE_TYPE_COLUMN).is_some() {
            return Err(Error::SchemaMismatch(format!(
                "the table has a column named {CHANGE_TYPE_COLUMN}, which its change data \
                 files need for themselves"
            )));
        }
        target.schema.fields.push(StructField::new(
            CHANGE_TYPE_COLUMN,
            DataType::Primitive("string".into()),
            false,
        ));
        target.schemas = TableSchemas::new(
            &target.schema,
            &metadata.partition_columns,
            target.schemas.mapping,
        )?;
        target.kind = FileKind::ChangeData;
        // Deleted rows and preimages were the table's already.
        target.constraints = crate::constraints::CheckConstraints::default();
        Ok(target)
    }

    /// The logical Arrow schema rows are written in.
    pub fn logical(&self) -> &SchemaRef {
        &self.schemas.logical
    }
}

/// Parses `1048576`, `64mb`, `1g`, `512 KB` into bytes.
pub fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim().to_ascii_lowercase();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: usize = number.parse().ok()?;
    let scale: usize = match unit.trim().trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(scale).filter(|n| *n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("64mb"), Some(64 << 20));
        assert_eq!(parse_size("1 G"), Some(1 << 30));
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("12 parsecs"), None);
    }
}
