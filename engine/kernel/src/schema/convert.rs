//! Delta types from Arrow types (for tables created from query results).

use std::collections::HashMap;

use arrow::datatypes::{DataType as ArrowType, Field, Schema};

use super::{DataType, NestedType, StructField, StructType};
use crate::{Error, Result};

impl StructType {
    /// The Delta schema of an Arrow schema.
    pub fn from_arrow(schema: &Schema) -> Result<Self> {
        Ok(Self {
            type_name: "struct".into(),
            fields: schema
                .fields()
                .iter()
                .map(|f| StructField::from_arrow(f))
                .collect::<Result<_>>()?,
        })
    }

    /// The schema as a `schemaString`.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|e| Error::InvalidArgument(format!("schema does not serialize: {e}")))
    }
}

impl StructField {
    /// A nullable column.
    pub fn new(name: impl Into<String>, data_type: DataType, nullable: bool) -> Self {
        Self {
            name: name.into(),
            data_type,
            nullable,
            metadata: HashMap::new(),
        }
    }

    /// The Delta field of an Arrow field.
    pub fn from_arrow(field: &Field) -> Result<Self> {
        let data_type = DataType::from_arrow(field.data_type()).map_err(|e| match e {
            Error::SchemaMismatch(why) => {
                Error::SchemaMismatch(format!("column {}: {why}", field.name()))
            }
            other => other,
        })?;
        Ok(Self::new(field.name(), data_type, field.is_nullable()))
    }
}

impl DataType {
    fn primitive(name: &str) -> Self {
        Self::Primitive(name.into())
    }

    /// The Delta type that holds values of an Arrow type without loss.
    pub fn from_arrow(data_type: &ArrowType) -> Result<Self> {
        Ok(match data_type {
            ArrowType::Boolean => Self::primitive("boolean"),
            ArrowType::Int8 => Self::primitive("byte"),
            ArrowType::Int16 | ArrowType::UInt8 => Self::primitive("short"),
            ArrowType::Int32 | ArrowType::UInt16 => Self::primitive("integer"),
            ArrowType::Int64 | ArrowType::UInt32 => Self::primitive("long"),
            ArrowType::UInt64 => Self::primitive("decimal(20,0)"),
            ArrowType::Float16 | ArrowType::Float32 => Self::primitive("float"),
            ArrowType::Float64 => Self::primitive("double"),
            ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => {
                Self::primitive("string")
            }
            ArrowType::Binary
            | ArrowType::LargeBinary
            | ArrowType::BinaryView
            | ArrowType::FixedSizeBinary(_) => Self::primitive("binary"),
            ArrowType::Date32 | ArrowType::Date64 => Self::primitive("date"),
            ArrowType::Timestamp(_, Some(_)) => Self::primitive("timestamp"),
            ArrowType::Timestamp(_, None) => Self::primitive("timestamp_ntz"),
            ArrowType::Decimal32(p, s)
            | ArrowType::Decimal64(p, s)
            | ArrowType::Decimal128(p, s)
                if *p <= 38 =>
            {
                Self::Primitive(format!("decimal({p},{s})"))
            }
            ArrowType::List(item)
            | ArrowType::LargeList(item)
            | ArrowType::ListView(item)
            | ArrowType::LargeListView(item)
            | ArrowType::FixedSizeList(item, _) => Self::Nested(Box::new(NestedType::Array {
                element_type: Self::from_arrow(item.data_type())?,
                contains_null: item.is_nullable(),
            })),
            ArrowType::Struct(fields) => Self::Nested(Box::new(NestedType::Struct {
                fields: fields
                    .iter()
                    .map(|f| StructField::from_arrow(f))
                    .collect::<Result<_>>()?,
            })),
            ArrowType::Map(entries, _) => {
                let ArrowType::Struct(kv) = entries.data_type() else {
                    return Err(Error::SchemaMismatch("a map without key and value".into()));
                };
                let (Some(key), Some(value)) = (kv.first(), kv.get(1)) else {
                    return Err(Error::SchemaMismatch("a map without key and value".into()));
                };
                Self::Nested(Box::new(NestedType::Map {
                    key_type: Self::from_arrow(key.data_type())?,
                    value_type: Self::from_arrow(value.data_type())?,
                    value_contains_null: value.is_nullable(),
                }))
            }
            ArrowType::Dictionary(_, value) => Self::from_arrow(value)?,
            ArrowType::Null => {
                return Err(Error::SchemaMismatch(
                    "NULL has no type a table can store; CAST it to one".into(),
                ));
            }
            other => {
                return Err(Error::SchemaMismatch(format!(
                    "type {other} has no Delta equivalent"
                )));
            }
        })
    }

    /// Whether values of this type need the `timestampNtz` table feature.
    pub fn uses_timestamp_ntz(&self) -> bool {
        match self {
            Self::Primitive(name) => name == "timestamp_ntz",
            Self::Nested(nested) => match nested.as_ref() {
                NestedType::Struct { fields } => {
                    fields.iter().any(|f| f.data_type.uses_timestamp_ntz())
                }
                NestedType::Array { element_type, .. } => element_type.uses_timestamp_ntz(),
                NestedType::Map {
                    key_type,
                    value_type,
                    ..
                } => key_type.uses_timestamp_ntz() || value_type.uses_timestamp_ntz(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::TimeUnit;

    use super::*;

    #[test]
    fn arrow_schemas_round_trip_through_delta() {
        let schema = Schema::new(vec![
            Field::new("id", ArrowType::Int64, false),
            Field::new("name", ArrowType::Utf8View, true),
            Field::new("price", ArrowType::Decimal128(12, 3), true),
            Field::new(
                "at",
                ArrowType::Timestamp(TimeUnit::Nanosecond, Some("+00:00".into())),
                true,
            ),
            Field::new(
                "local",
                ArrowType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Field::new(
                "tags",
                ArrowType::List(Arc::new(Field::new("item", ArrowType::Utf8, true))),
                true,
            ),
        ]);
        let delta = StructType::from_arrow(&schema).unwrap();
        let names: Vec<_> = delta
            .fields
            .iter()
            .map(|f| serde_json::to_string(&f.data_type).unwrap())
            .collect();
        assert_eq!(
            names[..5],
            [
                "\"long\"",
                "\"string\"",
                "\"decimal(12,3)\"",
                "\"timestamp\"",
                "\"timestamp_ntz\""
            ]
        );
        assert!(!delta.fields[0].nullable);
        let back = delta.to_arrow().unwrap();
        assert_eq!(back.field(1).data_type(), &ArrowType::Utf8);
        assert!(
            delta
                .fields
                .iter()
                .any(|f| f.data_type.uses_timestamp_ntz())
        );
        let typeless = Schema::new(vec![Field::new("x", ArrowType::Null, true)]);
        let err = StructType::from_arrow(&typeless).unwrap_err();
        assert!(err.to_string().contains("column x"), "{err}");
    }
}
