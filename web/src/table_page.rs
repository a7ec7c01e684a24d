//! A table's page: its schema, its history as a timeline (choosing a
//! version time-travels every view, queries included), its active files
//! and a preview of its rows. Everything is read in the page.

use dioxus::prelude::*;
use futures::StreamExt;

use crate::app::SessionHandle;
use crate::grid::ResultGrid;
use crate::session::{self, Commit, TableSnapshot};

/// Rows the preview shows.
pub const PREVIEW_ROWS: usize = 20;

/// The page of table `name` at `version` (latest when `None`);
/// `on_version` is told when the user picks another version, `on_query`
/// when they ask to query the table.
#[component]
pub fn TablePage(
    session: SessionHandle,
    name: String,
    version: Option<i64>,
    on_version: EventHandler<Option<i64>>,
    on_query: EventHandler<String>,
) -> Element {
    // Live: every commit of the table reads it again.
    let mut live = use_signal(|| false);
    let mut commits_seen = use_signal(|| 0u64);
    let mut live_note = use_signal(|| None::<String>);
    let follower = session.clone();
    let followed = name.clone();
    let _following = use_resource(use_reactive!(|(followed, version)| {
        let session = follower.0.clone();
        let wanted = live() && version.is_none();
        async move {
            if !wanted {
                live_note.set(None);
                return;
            }
            live_note.set(Some("Connecting…".into()));
            match crate::live::commits(&session, std::slice::from_ref(&followed)).await {
                Ok(mut commits) => {
                    live_note.set(Some("Live: updated on every commit".into()));
                    while let Some(commit) = commits.next().await {
                        match commit {
                            Ok(_) => commits_seen += 1,
                            Err(why) => {
                                live_note.set(Some(why));
                                return;
                            }
                        }
                    }
                }
                Err(why) => live_note.set(Some(why)),
            }
        }
    }));
    let opener = session.clone();
    let table = name.clone();
    let opened = use_resource(use_reactive!(|(table, version)| {
        let session = opener.0.clone();
        let _ = commits_seen();
        async move {
            let snapshot = session.open_table(&table, version).await?;
            let planned = session
                .prepare(&format!("SELECT * FROM {table} LIMIT {PREVIEW_ROWS}"))
                .await?;
            let preview =
                session::run(&planned, session::previewed(), session::now_ms(), |_| {}).await?;
            Ok::<_, String>((snapshot, preview.table))
        }
    }));
    let historian = session.clone();
    let listed = name.clone();
    let history = use_resource(use_reactive!(|listed| {
        let session = historian.0.clone();
        let _ = commits_seen();
        async move { session.history(&listed).await }
    }));
    let query_name = name.clone();
    rsx! {
        article { class: "table-page",
            header { class: "table-header",
                h2 { "{name}" }
                button { class: "query-table",
                    onclick: move |_| on_query.call(format!("SELECT * FROM {query_name} LIMIT 100")),
                    "Query this table"
                }
                label { class: "live",
                    input { r#type: "checkbox", name: "live-table", checked: live(),
                        disabled: version.is_some(),
                        onchange: move |e| live.set(e.checked()),
                    }
                    " Live"
                }
                if let Some(note) = live_note() {
                    span { class: "live-status", "{note}" }
                }
            }
            match &*opened.read() {
                None => rsx! { p { class: "loading", "Reading the table's log…" } },
                Some(Err(why)) => rsx! { div { class: "error", role: "alert", "{why}" } },
                Some(Ok((snapshot, preview))) => rsx! {
                    VersionBanner { snapshot: snapshot.clone(), on_version }
                    section { class: "table-schema",
                        h3 { "Schema" }
                        p { class: "facts",
                            "Partitioned by: "
                            if snapshot.partition_columns.is_empty() { "nothing" } else { "{snapshot.partition_columns.join(\", \")}" }
                            " · column mapping: {snapshot.column_mapping}"
                            if let Some(rows) = snapshot.rows { " · {rows} rows" }
                        }
                        ResultGrid { table: snapshot.schema.clone() }
                    }
                    section { class: "table-preview",
                        h3 { "Preview" }
                        ResultGrid { table: preview.clone() }
                    }
                    section { class: "table-files",
                        h3 { "Active files ({snapshot.files.rows.len()})" }
                        ResultGrid { table: snapshot.files.clone() }
                    }
                },
            }
            section { class: "table-history",
                h3 { "History" }
                match &*history.read() {
                    None => rsx! { p { class: "loading", "Reading the history…" } },
                    Some(Err(why)) => rsx! { p { class: "note", "{why}" } },
                    Some(Ok(commits)) => rsx! {
                        Timeline {
                            commits: commits.clone(),
                            shown: opened.read().as_ref().and_then(|o| o.as_ref().ok()).map(|(s, _)| s.version),
                            on_version,
                        }
                    },
                }
            }
        }
    }
}

/// Which version the page shows, and the way back to the latest.
#[component]
fn VersionBanner(snapshot: TableSnapshot, on_version: EventHandler<Option<i64>>) -> Element {
    rsx! {
        if snapshot.latest {
            p { class: "version", "Version {snapshot.version} (latest)" }
        } else {
            p { class: "version travelled",
                "Version {snapshot.version}: an earlier version. Every view and your queries read it. "
                button { class: "latest", onclick: move |_| on_version.call(None), "Back to latest" }
            }
        }
    }
}

/// The commits, newest first; choosing one time-travels to it.
#[component]
fn Timeline(
    commits: Vec<Commit>,
    shown: Option<i64>,
    on_version: EventHandler<Option<i64>>,
) -> Element {
    let latest = commits.first().map(|c| c.version);
    rsx! {
        ol { class: "timeline",
            for commit in commits {
                li { key: "{commit.version}",
                    class: if Some(commit.version) == shown { "commit current" } else { "commit" },
                    button { class: "version-pick",
                        onclick: move |_| on_version.call((Some(commit.version) != latest).then_some(commit.version)),
                        "v{commit.version}"
                    }
                    span { class: "operation", {commit.operation.clone().unwrap_or_else(|| "(no operation)".into())} }
                    span { class: "time", {commit.time.clone().unwrap_or_default()} }
                    if let Some(metrics) = &commit.metrics {
                        span { class: "metrics", {summarize_metrics(metrics)} }
                    }
                }
            }
        }
    }
}

/// A commit's metrics (JSON) as `name value` pairs, the few that matter
/// first.
pub fn summarize_metrics(json: &str) -> String {
    let Ok(serde_json::Value::Object(metrics)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = metrics
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        })
        .collect();
    let rank = |key: &str| {
        [
            "numOutputRows",
            "numAddedFiles",
            "numRemovedFiles",
            "numDeletedRows",
            "numUpdatedRows",
        ]
        .iter()
        .position(|k| *k == key)
        .unwrap_or(usize::MAX)
    };
    pairs.sort_by_key(|(k, _)| rank(k));
    pairs
        .into_iter()
        .take(4)
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_lead_with_rows_and_files() {
        let text = r#"{"executionTimeMs":"12","numOutputRows":"5","numAddedFiles":"1"}"#;
        assert_eq!(
            summarize_metrics(text),
            "numOutputRows 5 · numAddedFiles 1 · executionTimeMs 12"
        );
        assert_eq!(summarize_metrics("not json"), "");
    }

    #[test]
    fn the_timeline_marks_the_version_shown() {
        fn root() -> Element {
            let commits = vec![
                Commit {
                    version: 2,
                    time: Some("2026-11-02".into()),
                    operation: Some("DELETE".into()),
                    metrics: None,
                },
                Commit {
                    version: 1,
                    time: None,
                    operation: Some("WRITE".into()),
                    metrics: Some(r#"{"numOutputRows":"3"}"#.into()),
                },
            ];
            rsx! { Timeline { commits, shown: Some(1), on_version: move |_| {} } }
        }
        let html = crate::render_ssr(root);
        assert!(html.contains("class=\"commit current\""), "{html}");
        assert_eq!(html.matches("class=\"commit\"").count(), 1, "{html}");
        assert!(html.contains("numOutputRows 3"), "{html}");
        assert!(html.contains(">v2<") && html.contains("DELETE"), "{html}");
    }
}
