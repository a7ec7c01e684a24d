//! Shares and recipients in SQL, as Databricks users write them:
//! `CREATE SHARE s`, `ALTER SHARE s ADD TABLE ns.t [AS schema.name]`,
//! `ALTER SHARE s REMOVE TABLE schema.name`, `DROP SHARE s`, `SHOW SHARES`,
//! `SHOW ALL IN SHARE s`, `CREATE RECIPIENT r` (answers with the Delta
//! Sharing profile, token included, shown once), `DROP RECIPIENT r`,
//! `GRANT SELECT ON SHARE s TO RECIPIENT r`, `REVOKE SELECT ON SHARE s FROM
//! RECIPIENT r`, `SHOW RECIPIENTS`. Admin only.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use serde_json::json;

use crate::auth::{Principal, Scope};
use crate::error::ApiError;
use crate::names::check_name;
use crate::shares::{Catalog, Recipient, Share, SharedTable};
use crate::state::AppState;

/// A sharing statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `CREATE SHARE [IF NOT EXISTS] s [COMMENT '…']`.
    CreateShare {
        name: String,
        if_not_exists: bool,
        comment: Option<String>,
    },
    /// `DROP SHARE [IF EXISTS] s`.
    DropShare { name: String, if_exists: bool },
    /// `ALTER SHARE s ADD [TABLE] ns.t [AS schema.name]`.
    AddTable {
        share: String,
        namespace: String,
        table: String,
        schema: String,
        alias: String,
    },
    /// `ALTER SHARE s REMOVE [TABLE] schema.name`.
    RemoveTable {
        share: String,
        schema: String,
        name: String,
    },
    /// `SHOW SHARES`.
    ShowShares,
    /// `SHOW ALL IN SHARE s`.
    ShowShare { name: String },
    /// `CREATE RECIPIENT [IF NOT EXISTS] r`.
    CreateRecipient { name: String, if_not_exists: bool },
    /// `DROP RECIPIENT [IF EXISTS] r`.
    DropRecipient { name: String, if_exists: bool },
    /// `GRANT SELECT ON SHARE s TO RECIPIENT r`.
    Grant { share: String, recipient: String },
    /// `REVOKE SELECT ON SHARE s FROM RECIPIENT r`.
    Revoke { share: String, recipient: String },
    /// `SHOW RECIPIENTS`.
    ShowRecipients,
}

fn words(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = sql.trim().trim_end_matches(';').trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('\'') {
            let end = quoted.find('\'').unwrap_or(quoted.len());
            out.push(format!("'{}'", &quoted[..end]));
            rest = quoted.get(end + 1..).unwrap_or("").trim_start();
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        out.push(rest[..end].to_owned());
        rest = rest[end..].trim_start();
    }
    out
}

fn name(word: Option<&String>, kind: &str) -> Result<String, ApiError> {
    let word = word.ok_or_else(|| ApiError::bad_request(format!("a {kind} name is missing")))?;
    check_name(kind, word)?;
    Ok(word.clone())
}

fn dotted(word: Option<&String>, kind: &str) -> Result<(String, String), ApiError> {
    let word = word.ok_or_else(|| ApiError::bad_request(format!("a {kind} is missing")))?;
    let (first, second) = word
        .split_once('.')
        .ok_or_else(|| ApiError::bad_request(format!("{word}: write the {kind} as a.b")))?;
    check_name(kind, first)?;
    check_name(kind, second)?;
    Ok((first.to_owned(), second.to_owned()))
}

/// The sharing statement in `sql`, if it is one.
pub fn parse(sql: &str) -> Option<Result<Statement, ApiError>> {
    let all = words(sql);
    let upper: Vec<String> = all.iter().map(|w| w.to_ascii_uppercase()).collect();
    let keyword = |i: usize| upper.get(i).map(String::as_str);
    let statement = match (keyword(0), keyword(1)) {
        (Some("CREATE"), Some("SHARE")) => {
            let if_not_exists = upper
                .get(2..5)
                .is_some_and(|w| w == ["IF", "NOT", "EXISTS"]);
            let at = if if_not_exists { 5 } else { 2 };
            let comment = match (keyword(at + 1), all.get(at + 2)) {
                (Some("COMMENT"), Some(text)) => Some(text.trim_matches('\'').to_owned()),
                _ => None,
            };
            name(all.get(at), "share").map(|name| Statement::CreateShare {
                name,
                if_not_exists,
                comment,
            })
        }
        (Some("DROP"), Some("SHARE")) => {
            let if_exists = upper.get(2..4).is_some_and(|w| w == ["IF", "EXISTS"]);
            name(all.get(if if_exists { 4 } else { 2 }), "share")
                .map(|name| Statement::DropShare { name, if_exists })
        }
        (Some("ALTER"), Some("SHARE")) => (|| {
            let share = name(all.get(2), "share")?;
            let mut at = 4;
            if keyword(at) == Some("TABLE") {
                at += 1;
            }
            match keyword(3) {
                Some("ADD") => {
                    let (namespace, table) = dotted(all.get(at), "table")?;
                    let (schema, alias) = if keyword(at + 1) == Some("AS") {
                        dotted(all.get(at + 2), "shared table")?
                    } else {
                        (namespace.clone(), table.clone())
                    };
                    Ok(Statement::AddTable {
                        share,
                        namespace,
                        table,
                        schema,
                        alias,
                    })
                }
                Some("REMOVE") => {
                    let (schema, name) = dotted(all.get(at), "shared table")?;
                    Ok(Statement::RemoveTable {
                        share,
                        schema,
                        name,
                    })
                }
                _ => Err(ApiError::bad_request(
                    "ALTER SHARE s ADD TABLE ns.t | REMOVE TABLE schema.t",
                )),
            }
        })(),
        (Some("SHOW"), Some("SHARES")) => Ok(Statement::ShowShares),
        (Some("SHOW"), Some("ALL")) if keyword(2) == Some("IN") && keyword(3) == Some("SHARE") => {
            name(all.get(4), "share").map(|name| Statement::ShowShare { name })
        }
        (Some("CREATE"), Some("RECIPIENT")) => {
            let if_not_exists = upper
                .get(2..5)
                .is_some_and(|w| w == ["IF", "NOT", "EXISTS"]);
            name(all.get(if if_not_exists { 5 } else { 2 }), "recipient").map(|name| {
                Statement::CreateRecipient {
                    name,
                    if_not_exists,
                }
            })
        }
        (Some("DROP"), Some("RECIPIENT")) => {
            let if_exists = upper.get(2..4).is_some_and(|w| w == ["IF", "EXISTS"]);
            name(all.get(if if_exists { 4 } else { 2 }), "recipient")
                .map(|name| Statement::DropRecipient { name, if_exists })
        }
        (Some("SHOW"), Some("RECIPIENTS")) => Ok(Statement::ShowRecipients),
        (Some(verb @ ("GRANT" | "REVOKE")), Some("SELECT")) => (|| {
            let link = if verb == "GRANT" { "TO" } else { "FROM" };
            if upper.get(2..4).is_none_or(|w| w != ["ON", "SHARE"])
                || keyword(5) != Some(link)
                || keyword(6) != Some("RECIPIENT")
            {
                return Err(ApiError::bad_request(format!(
                    "{verb} SELECT ON SHARE s {link} RECIPIENT r"
                )));
            }
            let share = name(all.get(4), "share")?;
            let recipient = name(all.get(7), "recipient")?;
            Ok(if verb == "GRANT" {
                Statement::Grant { share, recipient }
            } else {
                Statement::Revoke { share, recipient }
            })
        })(),
        _ => return None,
    };
    Some(statement)
}

fn rows(columns: &[&str], values: Vec<Vec<String>>) -> Result<RecordBatch, ApiError> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let arrays = (0..columns.len())
        .map(|i| {
            Arc::new(StringArray::from(
                values.iter().map(|row| row[i].clone()).collect::<Vec<_>>(),
            )) as arrow::array::ArrayRef
        })
        .collect();
    RecordBatch::try_new(schema, arrays).map_err(ApiError::internal)
}

/// Applies `edit` to the share catalog and saves it; a refusal is a 400.
async fn change<T>(
    state: &AppState,
    edit: impl FnMut(&mut Catalog) -> Result<T, String>,
) -> Result<T, ApiError> {
    state
        .shares
        .update(edit)
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::bad_request)
}

/// Runs a sharing statement for an admin.
pub async fn run(
    state: &AppState,
    principal: &Principal,
    statement: Statement,
) -> Result<RecordBatch, ApiError> {
    if !principal.admin {
        return Err(ApiError::forbidden(
            "only an admin token manages shares and recipients",
        ));
    }
    let store = &state.shares;
    let done = |what: String| rows(&["result"], vec![vec![what]]);
    match statement {
        Statement::CreateShare {
            name,
            if_not_exists,
            comment,
        } => {
            change(state, |catalog| {
                if catalog.shares.contains_key(&name) {
                    return if if_not_exists {
                        Ok(())
                    } else {
                        Err(format!("share {name} already exists"))
                    };
                }
                catalog.shares.insert(
                    name.clone(),
                    Share {
                        tables: Vec::new(),
                        comment: comment.clone(),
                    },
                );
                Ok(())
            })
            .await?;
            done(format!("share {name} created"))
        }
        Statement::DropShare { name, if_exists } => {
            change(state, |catalog| {
                if catalog.shares.remove(&name).is_none() && !if_exists {
                    return Err(format!("share {name} does not exist"));
                }
                for recipient in catalog.recipients.values_mut() {
                    recipient.shares.remove(&name);
                }
                Ok(())
            })
            .await?;
            done(format!("share {name} dropped"))
        }
        Statement::AddTable {
            share,
            namespace,
            table,
            schema,
            alias,
        } => {
            let root = state.root_storage()?;
            let exists = root
                .list(&format!("{namespace}/{table}/_delta_log/"), None)
                .await?
                .is_some_and(|files| !files.is_empty());
            if !exists {
                return Err(ApiError::not_found(format!(
                    "table {namespace}.{table} does not exist"
                )));
            }
            change(state, |catalog| {
                let entry = catalog
                    .shares
                    .get_mut(&share)
                    .ok_or_else(|| format!("share {share} does not exist"))?;
                if entry
                    .tables
                    .iter()
                    .any(|t| t.schema == schema && t.name == alias)
                {
                    return Err(format!("share {share} already has {schema}.{alias}"));
                }
                entry.tables.push(SharedTable {
                    schema: schema.clone(),
                    name: alias.clone(),
                    namespace: namespace.clone(),
                    table: table.clone(),
                });
                Ok(())
            })
            .await?;
            done(format!(
                "{namespace}.{table} shared in {share} as {schema}.{alias}"
            ))
        }
        Statement::RemoveTable {
            share,
            schema,
            name,
        } => {
            change(state, |catalog| {
                let entry = catalog
                    .shares
                    .get_mut(&share)
                    .ok_or_else(|| format!("share {share} does not exist"))?;
                let before = entry.tables.len();
                entry
                    .tables
                    .retain(|t| !(t.schema == schema && t.name == name));
                if entry.tables.len() == before {
                    return Err(format!("share {share} has no table {schema}.{name}"));
                }
                Ok(())
            })
            .await?;
            done(format!("{schema}.{name} removed from {share}"))
        }
        Statement::ShowShares => {
            let catalog = store.snapshot().await;
            rows(
                &["share", "tables", "comment"],
                catalog
                    .shares
                    .iter()
                    .map(|(name, share)| {
                        vec![
                            name.clone(),
                            share.tables.len().to_string(),
                            share.comment.clone().unwrap_or_default(),
                        ]
                    })
                    .collect(),
            )
        }
        Statement::ShowShare { name } => {
            let catalog = store.snapshot().await;
            let share = catalog
                .shares
                .get(&name)
                .ok_or_else(|| ApiError::not_found(format!("share {name} does not exist")))?;
            rows(
                &["schema", "name", "source"],
                share
                    .tables
                    .iter()
                    .map(|t| {
                        vec![
                            t.schema.clone(),
                            t.name.clone(),
                            format!("{}.{}", t.namespace, t.table),
                        ]
                    })
                    .collect(),
            )
        }
        Statement::CreateRecipient {
            name,
            if_not_exists,
        } => {
            let exists = store.snapshot().await.recipients.contains_key(&name);
            if exists {
                if if_not_exists {
                    return done(format!("recipient {name} exists"));
                }
                return Err(ApiError::new(
                    axum::http::StatusCode::CONFLICT,
                    "RECIPIENT_EXISTS",
                    format!("recipient {name} already exists"),
                ));
            }
            change(state, |catalog| {
                catalog
                    .recipients
                    .insert(name.clone(), Recipient::default());
                Ok(())
            })
            .await?;
            let (_, token) = state
                .tokens
                .issue(
                    &format!("recipient {name}"),
                    vec![Scope::Recipient { name: name.clone() }],
                )
                .await
                .map_err(ApiError::internal)?;
            let profile = json!({
                "shareCredentialsVersion": 1,
                "endpoint": format!("{}/delta-sharing/", state.config.public_url()),
                "bearerToken": token,
            });
            rows(
                &["recipient", "profile"],
                vec![vec![name, profile.to_string()]],
            )
        }
        Statement::DropRecipient { name, if_exists } => {
            change(state, |catalog| {
                if catalog.recipients.remove(&name).is_none() && !if_exists {
                    return Err(format!("recipient {name} does not exist"));
                }
                Ok(())
            })
            .await?;
            let recipient = Scope::Recipient { name: name.clone() };
            state
                .tokens
                .revoke_where(|r| r.scopes.contains(&recipient))
                .await
                .map_err(ApiError::internal)?;
            done(format!("recipient {name} dropped"))
        }
        Statement::Grant { share, recipient } => {
            change(state, |catalog| {
                if !catalog.shares.contains_key(&share) {
                    return Err(format!("share {share} does not exist"));
                }
                let entry = catalog
                    .recipients
                    .get_mut(&recipient)
                    .ok_or_else(|| format!("recipient {recipient} does not exist"))?;
                entry.shares.insert(share.clone());
                Ok(())
            })
            .await?;
            done(format!("{recipient} may read {share}"))
        }
        Statement::Revoke { share, recipient } => {
            change(state, |catalog| {
                let entry = catalog
                    .recipients
                    .get_mut(&recipient)
                    .ok_or_else(|| format!("recipient {recipient} does not exist"))?;
                entry.shares.remove(&share);
                Ok(())
            })
            .await?;
            done(format!("{recipient} may no longer read {share}"))
        }
        Statement::ShowRecipients => {
            let catalog = store.snapshot().await;
            rows(
                &["recipient", "shares"],
                catalog
                    .recipients
                    .iter()
                    .map(|(name, r)| {
                        vec![
                            name.clone(),
                            r.shares.iter().cloned().collect::<Vec<_>>().join(","),
                        ]
                    })
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databricks_sharing_statements_parse() {
        let parsed = |sql: &str| parse(sql).expect("a sharing statement").expect(sql);
        assert_eq!(
            parsed("CREATE SHARE IF NOT EXISTS sales COMMENT 'for partners'"),
            Statement::CreateShare {
                name: "sales".into(),
                if_not_exists: true,
                comment: Some("for partners".into())
            }
        );
        assert_eq!(
            parsed("alter share sales add table acme.orders as retail.orders"),
            Statement::AddTable {
                share: "sales".into(),
                namespace: "acme".into(),
                table: "orders".into(),
                schema: "retail".into(),
                alias: "orders".into()
            }
        );
        assert_eq!(
            parsed("ALTER SHARE sales ADD TABLE acme.orders;"),
            Statement::AddTable {
                share: "sales".into(),
                namespace: "acme".into(),
                table: "orders".into(),
                schema: "acme".into(),
                alias: "orders".into()
            }
        );
        assert_eq!(
            parsed("GRANT SELECT ON SHARE sales TO RECIPIENT bob"),
            Statement::Grant {
                share: "sales".into(),
                recipient: "bob".into()
            }
        );
        assert_eq!(
            parsed("REVOKE SELECT ON SHARE sales FROM RECIPIENT bob"),
            Statement::Revoke {
                share: "sales".into(),
                recipient: "bob".into()
            }
        );
        assert_eq!(
            parsed("SHOW ALL IN SHARE sales"),
            Statement::ShowShare {
                name: "sales".into()
            }
        );
        assert!(parse("SELECT 1").is_none());
        assert!(parse("CREATE TABLE t (a INT)").is_none());
        assert!(
            parse("ALTER SHARE sales ADD TABLE orders")
                .unwrap()
                .is_err()
        );
        assert!(
            parse("GRANT SELECT ON SHARE sales TO bob")
                .unwrap()
                .is_err()
        );
        assert!(parse("CREATE SHARE ../x").unwrap().is_err());
    }
}
