//! The write path as a session's [`WritePath`]: the statements a session
//! hands it — DDL (`CREATE TABLE`, `ALTER TABLE`, `DROP TABLE`), MERGE and
//! maintenance (`OPTIMIZE`, `VACUUM`, `RESTORE`) — and INSERT, DELETE and
//! UPDATE from the table provider, each run as a Delta commit.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::Expr;
use futures::StreamExt;
use wavelake_engine::scan::write_exec::count_schema;
use wavelake_engine::session::parse_timestamp_millis;
use wavelake_engine::write_path::{InsertMode, WritePath};
use wavelake_engine::{SqlSession, SqlSessionOptions};

use crate::command::Command;
use crate::{Error, Result, SaveMode, Table, WriteOptions};

/// The write path of this crate, for [`SqlSessionOptions::write_path`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DeltaWriter;

/// A session that writes, with default options.
pub fn session() -> SqlSession {
    session_with(SqlSessionOptions::default())
}

/// A session with `options` that writes through [`DeltaWriter`].
pub fn session_with(options: SqlSessionOptions) -> SqlSession {
    SqlSession::with_options(SqlSessionOptions {
        write_path: Some(Arc::new(DeltaWriter)),
        ..options
    })
}

#[async_trait]
impl WritePath for DeltaWriter {
    async fn run_command(&self, session: &SqlSession, command: Command) -> Result<RecordBatch> {
        Statements { session }.run_command(command).await
    }

    async fn insert(
        &self,
        table: &Table,
        rows: SendableRecordBatchStream,
        mode: InsertMode,
    ) -> Result<u64> {
        let options = WriteOptions {
            mode: match mode {
                InsertMode::Append => SaveMode::Append,
                InsertMode::Overwrite => SaveMode::Overwrite,
            },
            ..WriteOptions::default()
        };
        let rows = rows.map(|batch| batch.map_err(Error::from));
        Ok(crate::write(table, rows, &options).await?.rows)
    }

    async fn delete(&self, table: &Table, state: &SessionState, filters: Vec<Expr>) -> Result<u64> {
        Ok(crate::dml::delete(table, state, filters).await?.rows)
    }

    async fn update(
        &self,
        table: &Table,
        state: &SessionState,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> Result<u64> {
        Ok(crate::dml::update(table, state, assignments, filters)
            .await?
            .rows)
    }
}

/// A one-row `count` result.
fn count_batch(count: u64) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        count_schema(),
        vec![Arc::new(arrow::array::UInt64Array::from(vec![count]))],
    )?)
}

/// Creates table `name` (`namespace.table`) under `session`'s table root
/// with the schema of `rows` and fills it with them, in one commit: when
/// `rows` fail, no table is left behind. Returns the rows written.
pub async fn create_table_from_stream(
    session: &SqlSession,
    name: &str,
    schema: &arrow::datatypes::Schema,
    rows: impl futures::Stream<Item = Result<RecordBatch>>,
) -> Result<u64> {
    let statements = Statements { session };
    if session.table(name).is_some() {
        return Err(Error::TableExists(name.to_owned()));
    }
    let location = statements.new_table_location(name, None)?;
    let storage = session.opener()?(&location)?;
    let table = crate::NewTable {
        schema: Some(crate::schema::StructType::from_arrow(schema)?),
        ..crate::NewTable::default()
    };
    let outcome = crate::create_table(storage.as_ref(), &table, Some(rows)).await?;
    session.register(name, storage).await?;
    Ok(outcome.rows)
}

/// The statements of one session.
struct Statements<'a> {
    session: &'a SqlSession,
}

impl Statements<'_> {
    async fn run_command(&self, command: Command) -> Result<RecordBatch> {
        match command {
            Command::Optimize {
                name,
                predicate,
                zorder_by,
            } => {
                let options = crate::optimize::OptimizeOptions {
                    predicate,
                    zorder_by,
                    progress: None,
                };
                let outcome = crate::optimize::optimize(
                    &self.table_named(&name)?,
                    &self.session.context().state(),
                    &options,
                )
                .await?;
                self.session.refresh_after_commit(&name).await;
                outcome.to_batch()
            }
            Command::Vacuum {
                name,
                retain_hours,
                dry_run,
            } => {
                let options = crate::vacuum::VacuumOptions {
                    retain_hours,
                    dry_run,
                    skip_retention_check: !self.session.retention_check(),
                    minimum_retention_ms: self.session.options().minimum_retention_ms,
                    progress: None,
                };
                let outcome = crate::vacuum::vacuum(&self.table_named(&name)?, &options).await?;
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
                let outcome = crate::restore::restore(&table, &snapshot).await?;
                self.session.refresh_after_commit(&name).await;
                outcome.to_batch()
            }
            Command::RetentionCheck(enabled) => {
                if self.session.options().sandboxed && !enabled {
                    return Err(Error::NotAllowed(
                        "the VACUUM retention check stays on here".into(),
                    ));
                }
                self.session.set_retention_check(enabled);
                count_batch(0)
            }
            other => count_batch(self.run_change(other).await?),
        }
    }

    fn table_named(&self, name: &str) -> Result<Table> {
        self.session.table(name).ok_or_else(|| Error::UnknownTable {
            name: name.to_owned(),
        })
    }

    async fn run_change(&self, command: Command) -> Result<u64> {
        match command {
            Command::CreateTable(create) => self.create_table(*create).await,
            Command::AlterTable { name, change } => {
                if let crate::command::TableChange::SetProperties(properties) = &change {
                    self.check_retention(properties)?;
                }
                if let crate::command::TableChange::AddConstraint {
                    name: constraint,
                    expression,
                } = &change
                {
                    self.check_existing_rows(&name, constraint, expression)
                        .await?;
                }
                let table = self
                    .session
                    .table(&name)
                    .ok_or_else(|| Error::UnknownTable {
                        name: name.to_owned(),
                    })?;
                crate::alter::alter_table(&table, &change).await?;
                self.session.refresh_after_commit(&name).await;
                Ok(0)
            }
            Command::Merge(merge) => {
                let table =
                    self.session
                        .table(&merge.target)
                        .ok_or_else(|| Error::UnknownTable {
                            name: merge.target.to_string(),
                        })?;
                let outcome = self.merge(&table, &merge).await;
                self.session.refresh_after_commit(&merge.target).await;
                Ok(outcome?.rows)
            }
            Command::DropTable { name, if_exists } => {
                let (Some(key), Some(table)) =
                    (self.session.resolve_name(&name), self.session.table(&name))
                else {
                    return if if_exists {
                        Ok(0)
                    } else {
                        Err(Error::UnknownTable {
                            name: name.to_owned(),
                        })
                    };
                };
                let managed_root = self.session.table_root();
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
                if let Some(cache) = &self.session.options().snapshot_cache {
                    cache.forget(&table);
                }
                self.session.unregister(&key)?;
                Ok(0)
            }
            maintenance => Err(Error::Sql(format!(
                "{maintenance:?} has a result of its own, not a count"
            ))),
        }
    }

    /// Where a new table goes: its `LOCATION`, else its name's directory
    /// under the table root.
    fn new_table_location(&self, name: &str, location: Option<&str>) -> Result<String> {
        let root = self.session.table_root();
        match (location, root) {
            (Some(location), _) => Ok(location.to_owned()),
            (None, Some(root)) => Ok(format!("{root}/{}", name.replace('.', "/"))),
            (None, None) => Err(Error::Sql(format!(
                "CREATE TABLE {name} needs a LOCATION: no table root is set"
            ))),
        }
    }

    async fn create_table(&self, mut create: crate::command::CreateTable) -> Result<u64> {
        if self.session.options().sandboxed && create.location.is_some() {
            return Err(Error::NotAllowed(
                "CREATE TABLE … LOCATION is not allowed here: tables live under the server's \
                 root"
                    .into(),
            ));
        }
        self.check_retention(&create.table.properties)?;
        if !create.name.contains('.')
            && let Some(schema) = &self.session.options().default_schema
        {
            create.name = format!("{schema}.{}", create.name);
        }
        if self.session.options().confined
            && let Some((namespace, _)) = create.name.split_once('.')
            && Some(namespace) != self.session.options().default_schema.as_deref()
        {
            return Err(Error::NotAllowed(format!(
                "namespace {namespace} is not open to this session"
            )));
        }
        if self.session.table(&create.name).is_some() {
            return if create.if_not_exists {
                Ok(0)
            } else {
                Err(Error::TableExists(create.name))
            };
        }
        let location = self.new_table_location(&create.name, create.location.as_deref())?;
        let storage = self.session.opener()?(&location)?;
        let mut table = create.table;
        let outcome = match &create.query {
            Some(query) => {
                let frame = self.session.plan_query(query).await?;
                let schema = frame.schema().as_arrow().clone();
                table.schema = Some(crate::schema::StructType::from_arrow(&schema)?);
                let rows = frame
                    .execute_stream()
                    .await?
                    .map(|batch| batch.map_err(Error::from));
                crate::create_table(storage.as_ref(), &table, Some(rows)).await?
            }
            None => {
                let none: Option<futures::stream::Empty<Result<RecordBatch>>> = None;
                crate::create_table(storage.as_ref(), &table, none).await?
            }
        };
        self.session.register(&create.name, storage).await?;
        Ok(outcome.rows)
    }

    /// Runs `merge` against `table`: its join query is planned here, within
    /// the session's sandbox and with its time travel.
    async fn merge(
        &self,
        table: &Table,
        merge: &crate::command::Merge,
    ) -> Result<crate::dml::DmlOutcome> {
        let prepared = crate::merge::PreparedMerge::new(table, merge).await?;
        let name = prepared.target_name().to_owned();
        self.session
            .context()
            .register_table(name.as_str(), prepared.target()?)?;
        let planned = self.session.plan_query(prepared.join_sql()).await;
        let _ = self.session.context().deregister_table(name.as_str());
        prepared
            .apply(&self.session.context().state(), planned?)
            .await
    }

    /// Refuses a new CHECK constraint that a row of the table breaks
    /// already, naming the row.
    async fn check_existing_rows(
        &self,
        table: &str,
        constraint: &str,
        expression: &str,
    ) -> Result<()> {
        use datafusion::functions::expr_fn::coalesce;
        use datafusion::logical_expr::{lit, not};
        let snapshot = self.table_named(table)?.snapshot().await?;
        if snapshot
            .metadata()
            .configuration
            .contains_key(&crate::constraints::property_key(constraint))
        {
            return Err(Error::Sql(format!(
                "the table already has a constraint named {constraint}"
            )));
        }
        crate::constraints::compile(constraint, expression, &snapshot.arrow_schema())?;
        let reference = self.session.table_reference(table)?;
        let frame = self.session.context().table(reference).await?;
        let condition = self
            .session
            .context()
            .parse_sql_expr(expression, frame.schema())
            .map_err(|e| {
                Error::Sql(format!("CHECK constraint {constraint} ({expression}): {e}"))
            })?;
        let failing = frame
            .filter(not(coalesce(vec![condition, lit(false)])))?
            .limit(0, Some(1))?
            .collect()
            .await?;
        match failing.iter().find(|batch| batch.num_rows() > 0) {
            Some(batch) => Err(Error::ConstraintViolation(format!(
                "CHECK constraint {constraint} ({expression}) is violated by a row the table \
                 holds: {}",
                crate::constraints::describe_row(batch, 0)
            ))),
            None => Ok(()),
        }
    }

    /// Refuses retention properties that are no interval, or shorter than
    /// the session's minimum: VACUUM and log cleanup would then delete files
    /// that writers about to commit, or readers, still need.
    fn check_retention(&self, properties: &HashMap<String, String>) -> Result<()> {
        use crate::checkpoint::parse_interval_ms;
        let minimum = self
            .session
            .options()
            .minimum_retention_ms
            .unwrap_or(crate::vacuum::SAFE_MINIMUM_RETENTION_MS);
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
