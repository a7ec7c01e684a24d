//! Schema evolution and table properties: `ALTER TABLE`. Renaming and
//! dropping columns go through column mapping (name mode): a table without
//! it is upgraded first, its existing columns keeping their names as
//! physical names, so no data file is rewritten.

use serde_json::{Value, json};

use super::create::{MAX_COLUMN_ID_PROPERTY, PhysicalNames, assign_column_mapping};
use super::now_ms;
use crate::command::TableChange;
use crate::properties::{check_property, with_writer_feature};
use crate::protocol::features::{ensure_writable, with_feature};
use crate::protocol::{Metadata, Protocol};
use crate::schema::{ColumnMappingMode, StructType};
use crate::table::Table;
use crate::transaction::Transaction;
use crate::{Error, Result};

const MAPPING_MODE_PROPERTY: &str = "delta.columnMapping.mode";

/// A table's protocol and metadata after an `ALTER TABLE`, and the
/// parameters its commit records.
#[derive(Debug, Clone, PartialEq)]
pub struct Evolved {
    /// The new protocol, when it changes.
    pub protocol: Option<Protocol>,
    /// The new metadata.
    pub metadata: Metadata,
    /// Operation parameters for the commit info.
    pub parameters: Vec<(&'static str, Value)>,
}

/// Applies `change` to a table's protocol and metadata (`has_rows`: whether
/// the table holds data, which forbids adding NOT NULL columns).
pub fn evolve(
    protocol: &Protocol,
    metadata: &Metadata,
    change: &TableChange,
    has_rows: bool,
) -> Result<Evolved> {
    let mut schema = StructType::parse(&metadata.schema_string)?;
    let mut metadata = metadata.clone();
    let mut protocol_now = protocol.clone();
    let mut parameters = Vec::new();
    let find = |schema: &StructType, name: &str| {
        schema
            .fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))
    };
    match change {
        TableChange::AddColumns(fields) => {
            let mut added = fields.clone();
            for field in &added {
                if find(&schema, &field.name).is_some() {
                    return Err(Error::Sql(format!("column {} already exists", field.name)));
                }
                if !field.nullable && has_rows {
                    return Err(Error::Sql(format!(
                        "cannot add NOT NULL column {}: the table already has rows, which \
                         would hold NULL there",
                        field.name
                    )));
                }
            }
            if mapping_mode(&metadata)? != ColumnMappingMode::None {
                let mut next_id = max_column_id(&metadata);
                assign_column_mapping(&mut added, &mut next_id, PhysicalNames::Fresh);
                set_property(&mut metadata, MAX_COLUMN_ID_PROPERTY, next_id.to_string());
            }
            if added.iter().any(|f| f.data_type.uses_timestamp_ntz()) {
                protocol_now = with_feature(&protocol_now, "timestampNtz", true);
            }
            parameters.push((
                "columns",
                Value::String(
                    json!(
                        added
                            .iter()
                            .map(|f| json!({"column": f}))
                            .collect::<Vec<_>>()
                    )
                    .to_string(),
                ),
            ));
            schema.fields.extend(added);
        }
        TableChange::RenameColumn { from, to } => {
            let at = find(&schema, from)
                .ok_or_else(|| Error::Sql(format!("column {from} does not exist")))?;
            if find(&schema, to).is_some_and(|other| other != at) {
                return Err(Error::Sql(format!("column {to} already exists")));
            }
            ensure_column_mapping(&mut protocol_now, &mut metadata, &mut schema)?;
            let old = std::mem::replace(&mut schema.fields[at].name, to.clone());
            for partition in &mut metadata.partition_columns {
                if *partition == old {
                    partition.clone_from(to);
                }
            }
            parameters.push(("oldColumnPath", Value::String(old)));
            parameters.push(("newColumnPath", Value::String(to.clone())));
        }
        TableChange::DropColumns { columns, if_exists } => {
            let mut dropped = Vec::new();
            for column in columns {
                match find(&schema, column) {
                    Some(at) => {
                        let name = schema.fields[at].name.clone();
                        if metadata.partition_columns.contains(&name) {
                            return Err(Error::Sql(format!("cannot drop partition column {name}")));
                        }
                        dropped.push(name);
                    }
                    None if *if_exists => {}
                    None => return Err(Error::Sql(format!("column {column} does not exist"))),
                }
            }
            let remaining = schema
                .fields
                .iter()
                .filter(|f| !dropped.contains(&f.name))
                .filter(|f| !metadata.partition_columns.contains(&f.name))
                .count();
            if remaining == 0 {
                return Err(Error::Sql(
                    "cannot drop every data column of a table".into(),
                ));
            }
            if !dropped.is_empty() {
                ensure_column_mapping(&mut protocol_now, &mut metadata, &mut schema)?;
                schema.fields.retain(|f| !dropped.contains(&f.name));
            }
            parameters.push(("columns", Value::String(json!(dropped).to_string())));
        }
        TableChange::SetProperties(properties) => {
            let mut keys: Vec<&String> = properties.keys().collect();
            keys.sort();
            for key in keys {
                let value = &properties[key];
                // Checked, with the feature it needs turned on.
                let checked = check_property(&protocol_now, key, value)?;
                protocol_now = checked.protocol;
                let Some(key) = checked.key else {
                    continue;
                };
                if key == MAPPING_MODE_PROPERTY {
                    match ColumnMappingMode::from_property(Some(value))? {
                        ColumnMappingMode::Name => {
                            ensure_column_mapping(&mut protocol_now, &mut metadata, &mut schema)?;
                        }
                        wanted if wanted == mapping_mode(&metadata)? => {}
                        _ => {
                            return Err(Error::Sql(format!(
                                "cannot change {MAPPING_MODE_PROPERTY} to {value}; only turning \
                                 name mode on is supported"
                            )));
                        }
                    }
                }
                set_property(&mut metadata, &key, checked.value);
            }
            parameters.push(("properties", Value::String(json!(properties).to_string())));
        }
        TableChange::AddConstraint { name, expression } => {
            let key = crate::constraints::property_key(name);
            if metadata.configuration.contains_key(&key) {
                return Err(Error::Sql(format!(
                    "the table already has a constraint named {name}"
                )));
            }
            crate::constraints::compile(
                name,
                expression,
                &std::sync::Arc::new(schema.to_arrow()?),
            )?;
            set_property(&mut metadata, &key, expression.clone());
            protocol_now = with_writer_feature(&protocol_now, "checkConstraints", Some(3));
            parameters.push(("name", Value::String(name.clone())));
            parameters.push(("expr", Value::String(expression.clone())));
        }
        TableChange::DropConstraint { name, if_exists } => {
            if metadata
                .configuration
                .remove(&crate::constraints::property_key(name))
                .is_none()
                && !if_exists
            {
                return Err(Error::Sql(format!(
                    "the table has no constraint named {name}"
                )));
            }
            parameters.push(("name", Value::String(name.clone())));
        }
        TableChange::UnsetProperties { keys, if_exists } => {
            for key in keys {
                if key == MAPPING_MODE_PROPERTY
                    && mapping_mode(&metadata)? != ColumnMappingMode::None
                {
                    return Err(Error::Sql(format!(
                        "cannot unset {MAPPING_MODE_PROPERTY}: the table's data files use \
                         physical column names"
                    )));
                }
                if metadata.configuration.remove(key).is_none() && !if_exists {
                    return Err(Error::Sql(format!("the table has no property {key}")));
                }
            }
            parameters.push(("properties", Value::String(json!(keys).to_string())));
            parameters.push(("ifExists", Value::Bool(*if_exists)));
        }
    }
    metadata.schema_string = schema.to_json()?;
    // A column a constraint reads cannot go away under it.
    crate::constraints::CheckConstraints::of(&metadata, &std::sync::Arc::new(schema.to_arrow()?))
        .map_err(|e| Error::Sql(format!("the change would break a CHECK constraint: {e}")))?;
    ensure_writable(&protocol_now, &metadata)?;
    Ok(Evolved {
        protocol: (protocol_now != *protocol).then_some(protocol_now),
        metadata,
        parameters,
    })
}

/// Runs `ALTER TABLE` on `table`; the version committed.
pub async fn alter_table(table: &Table, change: &TableChange) -> Result<i64> {
    let snapshot = table.snapshot().await?;
    ensure_writable(snapshot.protocol(), snapshot.metadata())?;
    let has_rows = !snapshot.files().is_empty();
    let evolved = evolve(snapshot.protocol(), snapshot.metadata(), change, has_rows)?;
    let mut transaction =
        Transaction::new(Some(snapshot.version()), change.operation()).metadata(evolved.metadata);
    if matches!(change, TableChange::AddConstraint { .. }) {
        // The caller checked the rows of this version: rows a concurrent
        // commit adds were not checked, so it conflicts.
        transaction = transaction
            .read(crate::transaction::ReadScope::WholeTable)
            .isolation(crate::transaction::IsolationLevel::Serializable);
    }
    if let Some(protocol) = evolved.protocol {
        transaction = transaction.protocol(protocol);
    }
    for (key, value) in evolved.parameters {
        transaction = transaction.parameter(key, value);
    }
    let committed = transaction
        .commit(table.storage().as_ref(), now_ms())
        .await?;
    Ok(committed.version)
}

fn mapping_mode(metadata: &Metadata) -> Result<ColumnMappingMode> {
    ColumnMappingMode::from_property(metadata.property(MAPPING_MODE_PROPERTY))
}

fn max_column_id(metadata: &Metadata) -> i64 {
    metadata
        .property(MAX_COLUMN_ID_PROPERTY)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn set_property(metadata: &mut Metadata, key: &str, value: String) {
    metadata.configuration.insert(key.to_owned(), Some(value));
}

/// Turns column mapping (name mode) on if it is off: existing columns keep
/// their names as physical names.
fn ensure_column_mapping(
    protocol: &mut Protocol,
    metadata: &mut Metadata,
    schema: &mut StructType,
) -> Result<()> {
    if mapping_mode(metadata)? != ColumnMappingMode::None {
        return Ok(());
    }
    let mut next_id = max_column_id(metadata);
    assign_column_mapping(&mut schema.fields, &mut next_id, PhysicalNames::Current);
    set_property(metadata, MAX_COLUMN_ID_PROPERTY, next_id.to_string());
    set_property(metadata, MAPPING_MODE_PROPERTY, "name".into());
    *protocol = with_feature(protocol, "columnMapping", true);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, parse_alter};
    use crate::schema::{DataType, FIELD_ID_KEY, PHYSICAL_NAME_KEY, StructField};
    use crate::{NewTable, NewTableActions};

    /// The field of `schema` called `name` (any case).
    fn field_named<'a>(schema: &'a StructType, name: &str) -> Option<&'a StructField> {
        schema
            .fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    fn table() -> (Protocol, Metadata) {
        let schema = StructType {
            type_name: "struct".into(),
            fields: vec![
                StructField::new("id", DataType::Primitive("long".into()), false),
                StructField::new("name", DataType::Primitive("string".into()), true),
                StructField::new("day", DataType::Primitive("date".into()), true),
            ],
        };
        NewTable {
            schema: Some(schema),
            partition_columns: vec!["day".into()],
            ..NewTable::default()
        }
        .actions(0)
        .unwrap()
    }

    fn alter(protocol: &Protocol, metadata: &Metadata, sql: &str) -> Result<Evolved> {
        let Command::AlterTable { change, .. } = parse_alter(sql)? else {
            unreachable!()
        };
        evolve(protocol, metadata, &change, true)
    }

    #[test]
    fn renaming_turns_on_column_mapping_keeping_physical_names() {
        let (protocol, metadata) = table();
        let evolved = alter(
            &protocol,
            &metadata,
            "ALTER TABLE t RENAME COLUMN name TO label",
        )
        .unwrap();
        let upgraded = evolved.protocol.expect("protocol upgrade");
        assert!(upgraded.has_reader_feature("columnMapping"));
        assert_eq!(
            evolved.metadata.property(MAPPING_MODE_PROPERTY),
            Some("name")
        );
        let schema = StructType::parse(&evolved.metadata.schema_string).unwrap();
        let label = field_named(&schema, "label").unwrap();
        assert_eq!(label.metadata[PHYSICAL_NAME_KEY], "name");
        assert!(label.metadata.contains_key(FIELD_ID_KEY));
        let renamed_partition = alter(
            &upgraded,
            &evolved.metadata,
            "ALTER TABLE t RENAME COLUMN day TO d",
        )
        .unwrap();
        assert!(renamed_partition.protocol.is_none(), "already upgraded");
        assert_eq!(renamed_partition.metadata.partition_columns, vec!["d"]);
    }

    #[test]
    fn added_columns_get_fresh_ids_once_mapping_is_on() {
        let (protocol, metadata) = table();
        let renamed = alter(
            &protocol,
            &metadata,
            "ALTER TABLE t RENAME COLUMN name TO n",
        )
        .unwrap();
        let protocol = renamed.protocol.unwrap();
        let added = alter(
            &protocol,
            &renamed.metadata,
            "ALTER TABLE t ADD COLUMN extra INT",
        )
        .unwrap();
        let schema = StructType::parse(&added.metadata.schema_string).unwrap();
        let extra = field_named(&schema, "extra").unwrap();
        assert_eq!(extra.metadata[FIELD_ID_KEY], 4);
        assert!(
            extra.metadata[PHYSICAL_NAME_KEY]
                .as_str()
                .unwrap()
                .starts_with("col-")
        );
        assert_eq!(added.metadata.property(MAX_COLUMN_ID_PROPERTY), Some("4"));
    }

    #[test]
    fn impossible_changes_are_refused() {
        let (protocol, metadata) = table();
        for (sql, words) in [
            ("ALTER TABLE t ADD COLUMN id INT", "already exists"),
            ("ALTER TABLE t ADD COLUMN x INT NOT NULL", "NOT NULL"),
            ("ALTER TABLE t RENAME COLUMN nope TO x", "does not exist"),
            ("ALTER TABLE t RENAME COLUMN id TO name", "already exists"),
            ("ALTER TABLE t DROP COLUMN day", "partition column"),
            ("ALTER TABLE t DROP COLUMNS (id, name)", "every data column"),
            ("ALTER TABLE t DROP COLUMN nope", "does not exist"),
            ("ALTER TABLE t UNSET TBLPROPERTIES ('nope')", "no property"),
            (
                "ALTER TABLE t SET TBLPROPERTIES ('delta.columnMapping.mode' = 'id')",
                "only turning name mode on",
            ),
            (
                "ALTER TABLE t SET TBLPROPERTIES ('delta.enableInCommitTimestamps' = 'true')",
                "does not write",
            ),
            (
                "ALTER TABLE t SET TBLPROPERTIES ('delta.enableChangeDataFeed' = 'yes')",
                "true or false",
            ),
            (
                "ALTER TABLE t SET TBLPROPERTIES ('delta.enableChangDataFeed' = 'true')",
                "unknown Delta table property",
            ),
        ] {
            let err = alter(&protocol, &metadata, sql).expect_err(sql);
            assert!(err.to_string().contains(words), "{sql}: {err}");
        }
        assert!(
            alter(
                &protocol,
                &metadata,
                "ALTER TABLE t DROP COLUMN IF EXISTS nope"
            )
            .is_ok()
        );
    }
}
