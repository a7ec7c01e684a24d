//! Writing, when the token allows it: uploads of CSV or Parquet files that
//! create or append to a table, and which statements must go to the
//! server (writes and maintenance) rather than run in the page.

use dioxus::prelude::*;

use crate::app::SessionHandle;
use crate::server_api::UploadFormat;

/// Whether `sql` changes tables, as the engine's statement classifier
/// says: such statements run on the server, everything else in the page.
/// A statement that does not parse runs in the page, which explains why.
pub fn is_write(sql: &str) -> bool {
    wavelake_engine::Statement::parse(sql)
        .is_ok_and(|statement| statement.access() == wavelake_engine::Access::Write)
}

/// A table name from a file name: its stem, lowercased, with anything but
/// letters, digits and `_` turned into `_`.
pub fn table_name_for(file: &str) -> String {
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) || name.is_empty() {
        format!("t_{name}")
    } else {
        name
    }
}

/// The upload form: a CSV or Parquet file into `namespace.table`, created
/// when missing. `on_changed` hears what was done.
#[component]
pub fn UploadForm(session: SessionHandle, on_changed: EventHandler<String>) -> Element {
    let access = session.0.access().clone();
    let mut namespace = use_signal(|| {
        access
            .writable
            .first()
            .cloned()
            .unwrap_or_else(|| "default".into())
    });
    let mut table = use_signal(String::new);
    let mut file = use_signal(|| None::<dioxus::html::FileData>);
    let mut status = use_signal(|| None::<Result<String, String>>);
    let mut busy = use_signal(|| false);
    let mut upload = move |_| {
        let Some(chosen) = file() else {
            status.set(Some(Err("Choose a CSV or Parquet file first.".into())));
            return;
        };
        let Some(format) = UploadFormat::of_file(&chosen.name()) else {
            status.set(Some(Err(format!(
                "{} is neither .csv nor .parquet.",
                chosen.name()
            ))));
            return;
        };
        let Some(api) = session.0.api().cloned() else {
            status.set(Some(Err(
                "Uploads go to a Wavelake server; this is not one.".into(),
            )));
            return;
        };
        let (target_namespace, target_table) = (namespace(), table());
        busy.set(true);
        status.set(None);
        spawn(async move {
            let outcome = match chosen.read_bytes().await {
                Ok(bytes) => {
                    api.upload(&target_namespace, &target_table, format, bytes.to_vec())
                        .await
                }
                Err(why) => Err(format!("The file cannot be read: {why}")),
            };
            if let Ok(done) = &outcome {
                on_changed.call(done.clone());
            }
            status.set(Some(outcome));
            busy.set(false);
        });
    };
    rsx! {
        form { class: "upload",
            onsubmit: move |event| {
                event.prevent_default();
                upload(());
            },
            h3 { "Upload a CSV or Parquet file" }
            input { r#type: "file", name: "upload-file", accept: ".csv,.parquet",
                onchange: move |e| {
                    let chosen = e.files().into_iter().next();
                    if let Some(chosen) = &chosen && table().is_empty() {
                        table.set(table_name_for(&chosen.name()));
                    }
                    file.set(chosen);
                }
            }
            label { "Namespace"
                input { name: "upload-namespace", value: "{namespace}", list: "writable-namespaces",
                    oninput: move |e| namespace.set(e.value()) }
                datalist { id: "writable-namespaces",
                    for name in access.writable.iter() {
                        option { key: "{name}", value: "{name}" }
                    }
                }
            }
            label { "Table"
                input { name: "upload-table", value: "{table}", placeholder: "created when missing",
                    oninput: move |e| table.set(e.value()) }
            }
            button { r#type: "submit", disabled: busy(), if busy() { "Uploading…" } else { "Upload" } }
            match status() {
                Some(Ok(done)) => rsx! { p { class: "done", role: "status", "{done}" } },
                Some(Err(why)) => rsx! { div { class: "error", role: "alert", "{why}" } },
                None => rsx! {},
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_told_from_reads_by_the_engines_classifier() {
        for sql in [
            "UPDATE t SET a = 1",
            "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
            "EXPLAIN ANALYZE DELETE FROM t",
            "  -- fix\n delete from t",
            "/* nightly */ OPTIMIZE t ZORDER BY (a)",
            "insert into t values (1)",
        ] {
            assert!(is_write(sql), "{sql}");
        }
        for sql in [
            "SELECT * FROM t",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "EXPLAIN SELECT 1",
            "",
        ] {
            assert!(!is_write(sql), "{sql}");
        }
    }

    #[test]
    fn file_names_become_table_names() {
        assert_eq!(table_name_for("City Trips 2026.csv"), "city_trips_2026");
        assert_eq!(table_name_for("2026.parquet"), "t_2026");
    }
}
