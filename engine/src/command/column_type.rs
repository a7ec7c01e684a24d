//! Delta types from SQL type names (for `CREATE TABLE` column lists), the
//! way Spark and Databricks name them.

use datafusion::sql::sqlparser::ast::{
    ArrayElemTypeDef, DataType as SqlType, ExactNumberInfo, TimezoneInfo,
};

use crate::schema::{DataType, NestedType, StructField};
use crate::{Error, Result};

/// The Delta type a SQL type name stands for, with Spark's meanings
/// (`TIMESTAMP` is zoned, `TIMESTAMP_NTZ` is not; `STRING`, `LONG`,
/// `STRUCT<a: INT>`, `MAP<K, V>`, `ARRAY<T>`).
pub fn delta_type(data_type: &SqlType) -> Result<DataType> {
    let unsupported = || Error::Sql(format!("unsupported column type {data_type}"));
    Ok(match data_type {
        SqlType::Boolean | SqlType::Bool => primitive("boolean"),
        SqlType::TinyInt(_) => primitive("byte"),
        SqlType::SmallInt(_) | SqlType::Int2(_) => primitive("short"),
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) => primitive("integer"),
        SqlType::BigInt(_) | SqlType::Int8(_) | SqlType::Int64 => primitive("long"),
        SqlType::Float(_) | SqlType::Real | SqlType::Float4 => primitive("float"),
        SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Float8 | SqlType::Float64 => {
            primitive("double")
        }
        SqlType::String(_)
        | SqlType::Varchar(_)
        | SqlType::Char(_)
        | SqlType::Text
        | SqlType::CharVarying(_)
        | SqlType::Character(_)
        | SqlType::CharacterVarying(_) => primitive("string"),
        SqlType::Binary(_) | SqlType::Varbinary(_) | SqlType::Bytea | SqlType::Blob(_) => {
            primitive("binary")
        }
        SqlType::Date => primitive("date"),
        SqlType::Timestamp(_, TimezoneInfo::WithoutTimeZone) | SqlType::TimestampNtz(_) => {
            primitive("timestamp_ntz")
        }
        SqlType::Timestamp(_, _) => primitive("timestamp"),
        SqlType::Decimal(info) | SqlType::Numeric(info) | SqlType::Dec(info) => {
            let (precision, scale) = match info {
                ExactNumberInfo::None => (10, 0),
                ExactNumberInfo::Precision(p) => (*p, 0),
                ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
            };
            if !(1..=38).contains(&precision) || scale < 0 || scale as u64 > precision {
                return Err(Error::Sql(format!(
                    "DECIMAL({precision},{scale}) is out of range (precision 1 to 38, 0 <= scale <= precision)"
                )));
            }
            DataType::Primitive(format!("decimal({precision},{scale})"))
        }
        SqlType::Array(ArrayElemTypeDef::AngleBracket(inner))
        | SqlType::Array(ArrayElemTypeDef::SquareBracket(inner, _))
        | SqlType::Array(ArrayElemTypeDef::Parenthesis(inner)) => {
            DataType::Nested(Box::new(NestedType::Array {
                element_type: delta_type(inner)?,
                contains_null: true,
            }))
        }
        SqlType::Map(key, value) => DataType::Nested(Box::new(NestedType::Map {
            key_type: delta_type(key)?,
            value_type: delta_type(value)?,
            value_contains_null: true,
        })),
        SqlType::Struct(fields, _) => DataType::Nested(Box::new(NestedType::Struct {
            fields: fields
                .iter()
                .map(|f| {
                    let name = f
                        .field_name
                        .as_ref()
                        .map(|n| n.value.clone())
                        .ok_or_else(|| Error::Sql("a STRUCT field needs a name".into()))?;
                    Ok(StructField::new(name, delta_type(&f.field_type)?, true))
                })
                .collect::<Result<_>>()?,
        })),
        SqlType::Custom(name, modifiers) if modifiers.is_empty() => {
            match name.to_string().to_ascii_lowercase().as_str() {
                "long" => primitive("long"),
                "short" => primitive("short"),
                "byte" => primitive("byte"),
                "timestamp_ntz" => primitive("timestamp_ntz"),
                "timestamp_ltz" => primitive("timestamp"),
                _ => return Err(unsupported()),
            }
        }
        _ => return Err(unsupported()),
    })
}

fn primitive(name: &str) -> DataType {
    DataType::Primitive(name.to_owned())
}
