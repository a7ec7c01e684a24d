//! Delta's JSON schema, its mapping to Arrow, and column mapping (logical
//! names in queries, physical names and field ids in data files).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{
    DataType as ArrowType, Field, FieldRef, Fields, Schema, SchemaRef, TimeUnit,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

mod convert;

/// Metadata key holding a column's physical name under column mapping.
pub const PHYSICAL_NAME_KEY: &str = "delta.columnMapping.physicalName";
/// Metadata key holding a column's field id under column mapping.
pub const FIELD_ID_KEY: &str = "delta.columnMapping.id";
/// Arrow field metadata key that the Parquet reader and writer use for field ids.
pub const PARQUET_FIELD_ID_KEY: &str = "PARQUET:field_id";

/// A Delta schema: the top-level struct of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructType {
    /// Always `struct`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The columns, in order.
    pub fields: Vec<StructField>,
}

/// One column (or nested field) of a Delta schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructField {
    /// The logical name.
    pub name: String,
    /// The type.
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// Whether nulls are allowed.
    #[serde(default = "default_true")]
    pub nullable: bool,
    /// Column metadata: column mapping, comments, generation expressions.
    #[serde(default)]
    pub metadata: HashMap<String, Value>,
}

fn default_true() -> bool {
    true
}

/// A Delta data type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DataType {
    /// A primitive named by a string (`long`, `decimal(10,2)`, ...).
    Primitive(String),
    /// A nested type.
    Nested(Box<NestedType>),
}

/// The nested Delta types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum NestedType {
    /// A struct of named fields.
    Struct {
        /// The fields.
        fields: Vec<StructField>,
    },
    /// A list.
    Array {
        /// The element type.
        #[serde(rename = "elementType")]
        element_type: DataType,
        /// Whether elements may be null.
        #[serde(rename = "containsNull", default = "default_true")]
        contains_null: bool,
    },
    /// A map.
    Map {
        /// The key type.
        #[serde(rename = "keyType")]
        key_type: DataType,
        /// The value type.
        #[serde(rename = "valueType")]
        value_type: DataType,
        /// Whether values may be null.
        #[serde(rename = "valueContainsNull", default = "default_true")]
        value_contains_null: bool,
    },
}

/// How column names in data files relate to the schema's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnMappingMode {
    /// Data files use the logical names.
    None,
    /// Data files use physical names (and field ids).
    Name,
    /// Data files are matched by field id (physical names also present).
    Id,
}

impl ColumnMappingMode {
    /// Reads the mode from the `delta.columnMapping.mode` table property.
    pub fn from_property(value: Option<&str>) -> Result<Self> {
        match value.map(str::to_ascii_lowercase).as_deref() {
            None | Some("none") => Ok(Self::None),
            Some("name") => Ok(Self::Name),
            Some("id") => Ok(Self::Id),
            Some(other) => Err(Error::UnsupportedFeature {
                feature: format!("column mapping mode {other:?}"),
            }),
        }
    }
}

impl StructType {
    /// Parses a `schemaString`.
    pub fn parse(schema_string: &str) -> Result<Self> {
        if schema_string.is_empty() {
            return Err(Error::invalid_table("metaData has no schemaString"));
        }
        let parsed: Self = serde_json::from_str(schema_string)
            .map_err(|e| Error::invalid_table(format!("schemaString does not parse: {e}")))?;
        if parsed.type_name != "struct" {
            return Err(Error::invalid_table(format!(
                "schema's top-level type is {:?}, not struct",
                parsed.type_name
            )));
        }
        Ok(parsed)
    }

    /// The field named `name` (exact match first, then case-insensitive).
    pub fn field(&self, name: &str) -> Option<&StructField> {
        self.fields.iter().find(|f| f.name == name).or_else(|| {
            self.fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
        })
    }

    /// The Arrow schema of the table as queries see it (logical names).
    pub fn to_arrow(&self) -> Result<Schema> {
        let fields = fields_to_arrow(&self.fields, ColumnMappingMode::None)?;
        Ok(Schema::new(fields))
    }

    /// The Arrow schema of the data files: physical names, with Parquet
    /// field ids when the table uses column mapping.
    pub fn to_physical_arrow(&self, mode: ColumnMappingMode) -> Result<Schema> {
        Ok(Schema::new(fields_to_arrow(&self.fields, mode)?))
    }
}

impl StructField {
    /// The name of this field in data files under `mode`.
    pub fn physical_name(&self, mode: ColumnMappingMode) -> &str {
        match mode {
            ColumnMappingMode::None => &self.name,
            ColumnMappingMode::Name | ColumnMappingMode::Id => self
                .metadata
                .get(PHYSICAL_NAME_KEY)
                .and_then(Value::as_str)
                .unwrap_or(&self.name),
        }
    }

    /// The column-mapping field id, if any.
    pub fn field_id(&self) -> Option<i64> {
        self.metadata.get(FIELD_ID_KEY).and_then(Value::as_i64)
    }

    /// The field as Arrow sees it under `mode` (logical names for `None`).
    pub fn to_arrow(&self, mode: ColumnMappingMode) -> Result<Field> {
        let data_type = self.data_type.to_arrow(mode)?;
        let mut field = Field::new(self.physical_name(mode), data_type, self.nullable);
        if mode != ColumnMappingMode::None
            && let Some(id) = self.field_id()
        {
            field = field.with_metadata(HashMap::from([(
                PARQUET_FIELD_ID_KEY.to_owned(),
                id.to_string(),
            )]));
        }
        Ok(field)
    }
}

fn fields_to_arrow(fields: &[StructField], mode: ColumnMappingMode) -> Result<Fields> {
    fields
        .iter()
        .map(|f| f.to_arrow(mode))
        .collect::<Result<Vec<_>>>()
        .map(Fields::from)
}

impl DataType {
    /// The Arrow type, with nested field names chosen by `mode`.
    pub fn to_arrow(&self, mode: ColumnMappingMode) -> Result<ArrowType> {
        match self {
            Self::Primitive(name) => primitive_to_arrow(name),
            Self::Nested(nested) => match nested.as_ref() {
                NestedType::Struct { fields } => {
                    Ok(ArrowType::Struct(fields_to_arrow(fields, mode)?))
                }
                NestedType::Array {
                    element_type,
                    contains_null,
                } => Ok(ArrowType::List(Arc::new(Field::new(
                    "element",
                    element_type.to_arrow(mode)?,
                    *contains_null,
                )))),
                NestedType::Map {
                    key_type,
                    value_type,
                    value_contains_null,
                } => {
                    let entries = Field::new(
                        "key_value",
                        ArrowType::Struct(Fields::from(vec![
                            Field::new("key", key_type.to_arrow(mode)?, false),
                            Field::new("value", value_type.to_arrow(mode)?, *value_contains_null),
                        ])),
                        false,
                    );
                    Ok(ArrowType::Map(Arc::new(entries), false))
                }
            },
        }
    }

    /// The primitive type's name, if this is a primitive.
    pub fn primitive_name(&self) -> Option<&str> {
        match self {
            Self::Primitive(name) => Some(name),
            Self::Nested(_) => None,
        }
    }
}

/// Maps a Delta primitive type name to Arrow.
pub fn primitive_to_arrow(name: &str) -> Result<ArrowType> {
    let ty = match name {
        "string" => ArrowType::Utf8,
        "long" => ArrowType::Int64,
        "integer" => ArrowType::Int32,
        "short" => ArrowType::Int16,
        "byte" => ArrowType::Int8,
        "float" => ArrowType::Float32,
        "double" => ArrowType::Float64,
        "boolean" => ArrowType::Boolean,
        "binary" => ArrowType::Binary,
        "date" => ArrowType::Date32,
        "timestamp" => ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "timestamp_ntz" => ArrowType::Timestamp(TimeUnit::Microsecond, None),
        "void" => ArrowType::Null,
        // Unshredded variant: the binary encoding as Spark stores it.
        "variant" => ArrowType::Struct(
            vec![
                Field::new("value", ArrowType::Binary, false),
                Field::new("metadata", ArrowType::Binary, false),
            ]
            .into(),
        ),
        other => {
            if let Some((precision, scale)) = parse_decimal(other) {
                ArrowType::Decimal128(precision, scale)
            } else {
                return Err(Error::UnsupportedFeature {
                    feature: format!("data type {other:?}"),
                });
            }
        }
    };
    Ok(ty)
}

/// Parses `decimal(p,s)` (whitespace tolerated) into precision and scale.
fn parse_decimal(name: &str) -> Option<(u8, i8)> {
    let inner = name.strip_prefix("decimal")?.trim();
    let inner = inner.strip_prefix('(')?.strip_suffix(')')?;
    let (p, s) = inner.split_once(',')?;
    let precision: u8 = p.trim().parse().ok()?;
    let scale: i8 = s.trim().parse().ok()?;
    (1..=38).contains(&precision).then_some((precision, scale))
}

/// The logical and physical Arrow schemas of a table, with the partition
/// columns split off the way DataFusion's file scans expect.
#[derive(Debug, Clone)]
pub struct TableSchemas {
    /// All columns, logical names, in schema order.
    pub logical: SchemaRef,
    /// Data-file columns (no partition columns), physical names.
    pub file_physical: SchemaRef,
    /// Partition columns, logical names, in `partitionColumns` order.
    pub partition_logical: Vec<Field>,
    /// Physical names of the partition columns (keys of `partitionValues`).
    pub partition_physical_names: Vec<String>,
    /// The column mapping mode in force.
    pub mapping: ColumnMappingMode,
}

impl TableSchemas {
    /// Builds the schemas for `schema` partitioned by `partition_columns`.
    pub fn new(
        schema: &StructType,
        partition_columns: &[String],
        mapping: ColumnMappingMode,
    ) -> Result<Self> {
        let logical = Arc::new(schema.to_arrow()?);
        let mut file_fields = Vec::new();
        for field in &schema.fields {
            if !partition_columns.iter().any(|p| p == &field.name) {
                file_fields.push(field.to_arrow(mapping)?);
            }
        }
        let mut partition_logical = Vec::new();
        let mut partition_physical_names = Vec::new();
        for name in partition_columns {
            let field = schema.field(name).ok_or_else(|| {
                Error::invalid_table(format!("partition column {name:?} is not in the schema"))
            })?;
            partition_logical.push(field.to_arrow(ColumnMappingMode::None)?);
            partition_physical_names.push(field.physical_name(mapping).to_owned());
        }
        Ok(Self {
            logical,
            file_physical: Arc::new(Schema::new(file_fields)),
            partition_logical,
            partition_physical_names,
            mapping,
        })
    }

    /// The same schemas with the data files' top-level strings and binaries
    /// as views (`Utf8View`, `BinaryView`): what a query engine decodes
    /// Parquet into without copying each value into one buffer, and
    /// compares, hashes and filters without following offsets. Partition
    /// columns keep their types (their values come from the log).
    pub fn with_string_views(&self) -> Self {
        let partitioned = |name: &str| self.partition_logical.iter().any(|p| p.name() == name);
        let logical = self
            .logical
            .fields()
            .iter()
            .map(|field| match partitioned(field.name()) {
                true => field.clone(),
                false => as_view(field),
            })
            .collect::<Vec<_>>();
        let file_physical = self
            .file_physical
            .fields()
            .iter()
            .map(as_view)
            .collect::<Vec<_>>();
        Self {
            logical: Arc::new(Schema::new_with_metadata(
                logical,
                self.logical.metadata().clone(),
            )),
            file_physical: Arc::new(Schema::new_with_metadata(
                file_physical,
                self.file_physical.metadata().clone(),
            )),
            ..self.clone()
        }
    }
}

/// `field` with a view type in place of `Utf8` or `Binary` (others as
/// they are).
fn as_view(field: &FieldRef) -> FieldRef {
    let view = match field.data_type() {
        ArrowType::Utf8 => ArrowType::Utf8View,
        ArrowType::Binary => ArrowType::BinaryView,
        _ => return field.clone(),
    };
    Arc::new(field.as_ref().clone().with_data_type(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_maps_to_arrow() {
        let schema = StructType::parse(
            r#"{"type":"struct","fields":[
            {"name":"a","type":"long","nullable":true,"metadata":{}},
            {"name":"d","type":"decimal(10, 2)","nullable":true,"metadata":{}},
            {"name":"t","type":"timestamp_ntz","nullable":false,"metadata":{}},
            {"name":"arr","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}},
            {"name":"m","type":{"type":"map","keyType":"string","valueType":{"type":"struct","fields":[{"name":"x","type":"integer","nullable":true,"metadata":{}}]},"valueContainsNull":true},"nullable":true,"metadata":{}}
        ]}"#,
        )
        .expect("parses");
        let arrow = schema.to_arrow().expect("maps");
        assert_eq!(arrow.field(1).data_type(), &ArrowType::Decimal128(10, 2));
        assert_eq!(
            arrow.field(2).data_type(),
            &ArrowType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert!(!arrow.field(2).is_nullable());
        assert!(matches!(arrow.field(4).data_type(), ArrowType::Map(..)));
    }

    #[test]
    fn string_views_replace_file_strings_and_binaries_only() {
        let schema = StructType::parse(
            r#"{"type":"struct","fields":[
            {"name":"s","type":"string","nullable":true,"metadata":{}},
            {"name":"b","type":"binary","nullable":false,"metadata":{}},
            {"name":"n","type":"long","nullable":true,"metadata":{}},
            {"name":"arr","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}},
            {"name":"p","type":"string","nullable":true,"metadata":{}}
        ]}"#,
        )
        .expect("parses");
        let plain =
            TableSchemas::new(&schema, &["p".to_owned()], ColumnMappingMode::None).expect("maps");
        let views = plain.with_string_views();
        let types = |schema: &SchemaRef| -> Vec<ArrowType> {
            schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect()
        };
        let list = plain.logical.field(3).data_type().clone();
        assert_eq!(
            types(&views.logical),
            vec![
                ArrowType::Utf8View,
                ArrowType::BinaryView,
                ArrowType::Int64,
                list.clone(),
                ArrowType::Utf8
            ]
        );
        assert_eq!(
            types(&views.file_physical),
            vec![
                ArrowType::Utf8View,
                ArrowType::BinaryView,
                ArrowType::Int64,
                list
            ]
        );
        assert!(!views.logical.field(1).is_nullable());
        assert_eq!(views.partition_logical, plain.partition_logical);
    }

    #[test]
    fn physical_schema_uses_mapped_names_and_ids() {
        let schema = StructType::parse(
            r#"{"type":"struct","fields":[{"name":"a","type":"long","nullable":true,
            "metadata":{"delta.columnMapping.id":1,"delta.columnMapping.physicalName":"col-abc"}}]}"#,
        )
        .expect("parses");
        let physical = schema
            .to_physical_arrow(ColumnMappingMode::Name)
            .expect("maps");
        assert_eq!(physical.field(0).name(), "col-abc");
        assert_eq!(
            physical
                .field(0)
                .metadata()
                .get(PARQUET_FIELD_ID_KEY)
                .map(String::as_str),
            Some("1")
        );
    }

    #[test]
    fn unknown_type_is_named() {
        let schema = StructType::parse(
            r#"{"type":"struct","fields":[{"name":"g","type":"geometry","nullable":true,"metadata":{}}]}"#,
        )
        .expect("parses");
        let err = schema.to_arrow().expect_err("unsupported");
        assert!(err.to_string().contains("geometry"), "{err}");
    }
}
