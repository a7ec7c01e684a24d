//! The statements a session hands the write path: DDL (`CREATE TABLE`,
//! `ALTER TABLE`), MERGE, and maintenance (`OPTIMIZE`, `VACUUM`,
//! `RESTORE`), run as Delta commits. Only builds with the `write` feature
//! have them; a read-only build refuses every such statement.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::RecordBatch;

use super::{SqlSession, parse_timestamp_millis};
use crate::table::Table;
use crate::{Error, Result};

/// A one-row `count` result.
fn count_batch(count: u64) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        crate::write::exec::count_schema(),
        vec![Arc::new(arrow::array::UInt64Array::from(vec![count]))],
    )?)
}

impl SqlSession {
    pub(super) async fn run_command(
        &self,
        command: crate::command::Command,
    ) -> Result<RecordBatch> {
        use crate::command::Command;
        match command {
            Command::Optimize {
                name,
                predicate,
                zorder_by,
            } => {
                let options = crate::write::optimize::OptimizeOptions {
                    predicate,
                    zorder_by,
                    progress: None,
                };
                let outcome = crate::write::optimize::optimize(
                    &self.table_named(&name)?,
                    &self.ctx.state(),
                    &options,
                )
                .await?;
                self.refresh_after_commit(&name).await;
                outcome.to_batch()
            }
            Command::Vacuum {
                name,
                retain_hours,
                dry_run,
            } => {
                let options = crate::write::vacuum::VacuumOptions {
                    retain_hours,
                    dry_run,
                    skip_retention_check: !self.retention_check.load(Ordering::Relaxed),
                    minimum_retention_ms: self.options.minimum_retention_ms,
                    progress: None,
                };
                let outcome =
                    crate::write::vacuum::vacuum(&self.table_named(&name)?, &options).await?;
                outcome.to_batch()
            }
            Command::Restore { name, target } => {
                let table = self.table_named(&name)?;
                let snapshot = match target {
                    crate::command::RestoreTarget::Version(version) => {
                        table.snapshot_at(Some(version)).await?
                    }
                    crate::command::RestoreTarget::Timestamp(text) => {
                        let ms = parse_timestamp_millis(&text).ok_or_else(|| {
                            Error::Sql(format!(
                                "RESTORE … TIMESTAMP AS OF needs a timestamp, not {text:?}"
                            ))
                        })?;
                        table.snapshot_at_timestamp(ms).await?
                    }
                };
                let outcome = crate::write::restore::restore(&table, &snapshot).await?;
                self.refresh_after_commit(&name).await;
                outcome.to_batch()
            }
            Command::RetentionCheck(enabled) => {
                if self.options.sandboxed && !enabled {
                    return Err(Error::NotAllowed(
                        "the VACUUM retention check stays on here".into(),
                    ));
                }
                self.retention_check.store(enabled, Ordering::Relaxed);
                count_batch(0)
            }
            other => count_batch(self.run_change(other).await?),
        }
    }

    fn table_named(&self, name: &str) -> Result<Table> {
        self.table(name).ok_or_else(|| Error::UnknownTable {
            name: name.to_owned(),
        })
    }

    async fn run_change(&self, command: crate::command::Command) -> Result<u64> {
        use crate::command::Command;
        match command {
            Command::CreateTable(create) => self.create_table(*create).await,
            Command::AlterTable { name, change } => {
                if let crate::command::TableChange::SetProperties(properties) = &change {
                    self.check_retention(properties)?;
                }
                let table = self.table(&name).ok_or_else(|| Error::UnknownTable {
                    name: name.to_owned(),
                })?;
                crate::write::alter::alter_table(&table, &change).await?;
                self.refresh_after_commit(&name).await;
                Ok(0)
            }
            Command::Merge(merge) => {
                let table = self
                    .table(&merge.target)
                    .ok_or_else(|| Error::UnknownTable {
                        name: merge.target.to_string(),
                    })?;
                let outcome = self.merge(&table, &merge).await;
                self.refresh_after_commit(&merge.target).await;
                Ok(outcome?.rows)
            }
            Command::DropTable { name, if_exists } => {
                let (Some(key), Some(table)) = (self.resolve_name(&name), self.table(&name)) else {
                    return if if_exists {
                        Ok(0)
                    } else {
                        Err(Error::UnknownTable {
                            name: name.to_owned(),
                        })
                    };
                };
                let managed_root = self.catalog.read().ok().and_then(|c| c.root.clone());
                let location = table.storage().location();
                let managed = managed_root.is_some_and(|root| {
                    let root = root.trim_start_matches("file://");
                    location.trim_start_matches("file://").trim_end_matches('/')
                        == format!("{}/{}", root.trim_end_matches('/'), key.replace('.', "/"))
                });
                if managed && let Some(files) = table.storage().list("", None).await? {
                    for file in files.iter().rev() {
                        table.storage().delete(&file.path).await?;
                    }
                }
                if let Some(cache) = &self.options.snapshot_cache {
                    cache.forget(&table);
                }
                self.ctx.deregister_table(self.table_reference(&key)?)?;
                if let Ok(mut tables) = self.tables.write() {
                    tables.remove(&key);
                }
                Ok(0)
            }
            maintenance => Err(Error::Sql(format!(
                "{maintenance:?} has a result of its own, not a count"
            ))),
        }
    }

    /// Creates table `name` (`namespace.table`) under the table root with
    /// the schema of `rows` and fills it with them, in one commit: when
    /// `rows` fail, no table is left behind. Returns the rows written.
    pub async fn create_table_from_stream(
        &self,
        name: &str,
        schema: &arrow::datatypes::Schema,
        rows: impl futures::Stream<Item = Result<RecordBatch>>,
    ) -> Result<u64> {
        if self.table(name).is_some() {
            return Err(Error::TableExists(name.to_owned()));
        }
        let location = self.new_table_location(name, None)?;
        let storage = self.opener()?(&location)?;
        let table = crate::write::NewTable {
            schema: Some(crate::schema::StructType::from_arrow(schema)?),
            ..crate::write::NewTable::default()
        };
        let outcome = crate::write::create_table(storage.as_ref(), &table, Some(rows)).await?;
        self.register(name, storage).await?;
        Ok(outcome.rows)
    }

    /// Where a new table goes: its `LOCATION`, else its name's directory
    /// under the table root.
    fn new_table_location(&self, name: &str, location: Option<&str>) -> Result<String> {
        let root = self.catalog.read().ok().and_then(|c| c.root.clone());
        match (location, root) {
            (Some(location), _) => Ok(location.to_owned()),
            (None, Some(root)) => Ok(format!("{root}/{}", name.replace('.', "/"))),
            (None, None) => Err(Error::Sql(format!(
                "CREATE TABLE {name} needs a LOCATION: no table root is set"
            ))),
        }
    }

    async fn create_table(&self, mut create: crate::command::CreateTable) -> Result<u64> {
        use futures::StreamExt;
        if self.options.sandboxed && create.location.is_some() {
            return Err(Error::NotAllowed(
                "CREATE TABLE … LOCATION is not allowed here: tables live under the server's \
                 root"
                    .into(),
            ));
        }
        self.check_retention(&create.table.properties)?;
        if !create.name.contains('.')
            && let Some(schema) = &self.options.default_schema
        {
            create.name = format!("{schema}.{}", create.name);
        }
        if self.options.confined
            && let Some((namespace, _)) = create.name.split_once('.')
            && Some(namespace) != self.options.default_schema.as_deref()
        {
            return Err(Error::NotAllowed(format!(
                "namespace {namespace} is not open to this session"
            )));
        }
        if self.table(&create.name).is_some() {
            return if create.if_not_exists {
                Ok(0)
            } else {
                Err(Error::TableExists(create.name))
            };
        }
        let location = self.new_table_location(&create.name, create.location.as_deref())?;
        let storage = self.opener()?(&location)?;
        let mut table = create.table;
        let outcome = match &create.query {
            Some(query) => {
                let frame = self.plan_query(query).await?;
                let schema = frame.schema().as_arrow().clone();
                table.schema = Some(crate::schema::StructType::from_arrow(&schema)?);
                let rows = frame
                    .execute_stream()
                    .await?
                    .map(|batch| batch.map_err(Error::from));
                crate::write::create_table(storage.as_ref(), &table, Some(rows)).await?
            }
            None => {
                let none: Option<futures::stream::Empty<Result<RecordBatch>>> = None;
                crate::write::create_table(storage.as_ref(), &table, none).await?
            }
        };
        self.register(&create.name, storage).await?;
        Ok(outcome.rows)
    }

    /// Runs `merge` against `table`: its join query is planned here, within
    /// the session's sandbox and with its time travel.
    async fn merge(
        &self,
        table: &Table,
        merge: &crate::command::Merge,
    ) -> Result<crate::write::dml::DmlOutcome> {
        let prepared = crate::write::merge::PreparedMerge::new(table, merge).await?;
        let name = prepared.target_name().to_owned();
        self.ctx.register_table(name.as_str(), prepared.target()?)?;
        let planned = self.plan_query(prepared.join_sql()).await;
        let _ = self.ctx.deregister_table(name.as_str());
        prepared.apply(&self.ctx.state(), planned?).await
    }

    /// Refuses retention properties that are no interval, or shorter than
    /// the session's minimum: VACUUM and log cleanup would then delete files
    /// that writers about to commit, or readers, still need.
    fn check_retention(&self, properties: &HashMap<String, String>) -> Result<()> {
        use crate::write::checkpoint::parse_interval_ms;
        let minimum = self
            .options
            .minimum_retention_ms
            .unwrap_or(crate::write::vacuum::SAFE_MINIMUM_RETENTION_MS);
        for key in [
            "delta.deletedFileRetentionDuration",
            "delta.logRetentionDuration",
        ] {
            let Some((_, text)) = properties.iter().find(|(k, _)| k.eq_ignore_ascii_case(key))
            else {
                continue;
            };
            let Some(ms) = parse_interval_ms(text) else {
                return Err(Error::InvalidArgument(format!(
                    "{key} = {text:?} is not a non-negative interval like 'interval 7 days'"
                )));
            };
            if ms < minimum {
                return Err(Error::NotAllowed(format!(
                    "{key} = {text:?} is shorter than the minimum retention of {} hours",
                    minimum as f64 / 3_600_000.0
                )));
            }
        }
        Ok(())
    }
}
