//! A new table's first commit: its protocol (the lowest that holds the
//! features its schema and properties need) and metadata (with column
//! mapping ids and physical names assigned when the table asks for them).

use std::collections::HashMap;

use serde_json::Value;

use crate::properties::check_property;
use crate::protocol::features::with_feature;
use crate::protocol::{Format, Metadata, Protocol};
use crate::schema::{
    ColumnMappingMode, DataType, FIELD_ID_KEY, NestedType, PHYSICAL_NAME_KEY, StructField,
};
use crate::{Error, Result};

/// Table property holding the highest column id assigned so far.
pub const MAX_COLUMN_ID_PROPERTY: &str = "delta.columnMapping.maxColumnId";

pub use crate::command::NewTable;

/// What a new table's first commit holds.
pub trait NewTableActions {
    /// The protocol and metadata of version 0.
    fn actions(&self, now_ms: i64) -> Result<(Protocol, Metadata)>;
}

impl NewTableActions for NewTable {
    fn actions(&self, now_ms: i64) -> Result<(Protocol, Metadata)> {
        let mut schema = self
            .schema
            .clone()
            .ok_or_else(|| Error::Sql("a new table needs columns".into()))?;
        if schema.fields.is_empty() {
            return Err(Error::Sql("a table needs at least one column".into()));
        }
        check_names(&schema.fields)?;
        let mut partition_columns = Vec::new();
        for name in &self.partition_columns {
            let field = schema
                .fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    Error::Sql(format!("partition column {name} is not among the columns"))
                })?;
            match &field.data_type {
                DataType::Primitive(t) if t != "binary" && t != "variant" => {}
                other => {
                    return Err(Error::Sql(format!(
                        "column {} cannot be a partition column: its type is {}",
                        field.name,
                        serde_json::to_string(other).unwrap_or_default()
                    )));
                }
            }
            partition_columns.push(field.name.clone());
        }
        if partition_columns.len() == schema.fields.len() {
            return Err(Error::Sql(
                "at least one column must not be a partition column".into(),
            ));
        }
        let mut protocol = Protocol {
            min_reader_version: 1,
            min_writer_version: 2,
            reader_features: None,
            writer_features: None,
        };
        // Each property is checked, and turns on the feature it needs.
        let mut configuration: HashMap<String, Option<String>> = HashMap::new();
        let mut keys: Vec<&String> = self.properties.keys().collect();
        keys.sort();
        for key in keys {
            let checked = check_property(&protocol, key, &self.properties[key])?;
            protocol = checked.protocol;
            if let Some(key) = checked.key {
                configuration.insert(key, Some(checked.value));
            }
        }
        let mapping = ColumnMappingMode::from_property(
            configuration
                .get("delta.columnMapping.mode")
                .and_then(Option::as_deref),
        )?;
        if mapping != ColumnMappingMode::None {
            let mut next_id = 0;
            assign_column_mapping(&mut schema.fields, &mut next_id, PhysicalNames::Fresh);
            configuration.insert(MAX_COLUMN_ID_PROPERTY.into(), Some(next_id.to_string()));
            protocol = with_feature(&protocol, "columnMapping", true);
        }
        if schema
            .fields
            .iter()
            .any(|f| f.data_type.uses_timestamp_ntz())
        {
            protocol = with_feature(&protocol, "timestampNtz", true);
        }
        if configuration
            .get("delta.appendOnly")
            .and_then(Option::as_deref)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            && protocol.min_writer_version == 7
        {
            // Turned on before a later feature upgraded the protocol.
            protocol = with_feature(&protocol, "appendOnly", false);
        }
        let metadata = Metadata {
            id: uuid::Uuid::new_v4().to_string(),
            name: self.name.clone(),
            description: self.description.clone(),
            format: Format::default(),
            schema_string: schema.to_json()?,
            partition_columns,
            created_time: Some(now_ms),
            configuration,
        };
        Ok((protocol, metadata))
    }
}

fn check_names(fields: &[StructField]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for field in fields {
        if field.name.is_empty() {
            return Err(Error::Sql("a column needs a name".into()));
        }
        if !seen.insert(field.name.to_ascii_lowercase()) {
            return Err(Error::Sql(format!("column {} appears twice", field.name)));
        }
    }
    Ok(())
}

/// How fields that have none get their physical name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhysicalNames {
    /// A fresh `col-<uuid>` (new columns).
    Fresh,
    /// The current name (existing columns of a table turning column
    /// mapping on: its data files already use those names).
    Current,
}

/// Gives every field (nested ones too, inside arrays and maps as well) an
/// id above `next_id` and a physical name, where it has none.
pub fn assign_column_mapping(fields: &mut [StructField], next_id: &mut i64, names: PhysicalNames) {
    for field in fields {
        if let Some(id) = field.metadata.get(FIELD_ID_KEY).and_then(Value::as_i64) {
            *next_id = (*next_id).max(id);
        } else {
            *next_id += 1;
            field
                .metadata
                .insert(FIELD_ID_KEY.into(), Value::from(*next_id));
        }
        let current = field.name.clone();
        field
            .metadata
            .entry(PHYSICAL_NAME_KEY.into())
            .or_insert_with(|| match names {
                PhysicalNames::Fresh => Value::from(format!("col-{}", uuid::Uuid::new_v4())),
                PhysicalNames::Current => Value::from(current),
            });
        assign_nested(&mut field.data_type, next_id, names);
    }
}

fn assign_nested(data_type: &mut DataType, next_id: &mut i64, names: PhysicalNames) {
    let DataType::Nested(nested) = data_type else {
        return;
    };
    match nested.as_mut() {
        NestedType::Struct { fields } => assign_column_mapping(fields, next_id, names),
        NestedType::Array { element_type, .. } => assign_nested(element_type, next_id, names),
        NestedType::Map {
            key_type,
            value_type,
            ..
        } => {
            assign_nested(key_type, next_id, names);
            assign_nested(value_type, next_id, names);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::StructType;

    fn table(properties: &[(&str, &str)]) -> NewTable {
        NewTable {
            schema: Some(StructType {
                type_name: "struct".into(),
                fields: vec![
                    StructField::new("id", DataType::Primitive("long".into()), false),
                    StructField::new("day", DataType::Primitive("date".into()), true),
                ],
            }),
            partition_columns: vec!["DAY".into()],
            properties: properties
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..NewTable::default()
        }
    }

    #[test]
    fn plain_tables_get_the_oldest_protocol() {
        let (protocol, metadata) = table(&[]).actions(1).unwrap();
        assert_eq!(
            (protocol.min_reader_version, protocol.min_writer_version),
            (1, 2)
        );
        assert_eq!(metadata.partition_columns, vec!["day"]);
    }

    #[test]
    fn features_follow_properties() {
        let (protocol, metadata) = table(&[
            ("delta.enableDeletionVectors", "true"),
            ("delta.columnMapping.mode", "name"),
        ])
        .actions(1)
        .unwrap();
        assert!(protocol.has_reader_feature("deletionVectors"));
        assert!(protocol.has_reader_feature("columnMapping"));
        assert_eq!(metadata.property(MAX_COLUMN_ID_PROPERTY), Some("2"));
        let schema = StructType::parse(&metadata.schema_string).unwrap();
        assert!(schema.fields[0].metadata.contains_key(PHYSICAL_NAME_KEY));
    }

    #[test]
    fn bad_partitions_are_refused() {
        let mut t = table(&[]);
        t.partition_columns = vec!["nope".into()];
        assert!(t.actions(1).unwrap_err().to_string().contains("nope"));
        t.partition_columns = vec!["id".into(), "day".into()];
        assert!(t.actions(1).is_err());
    }
}
