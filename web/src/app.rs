//! The app: the sign-in form until connected, then the table list, the SQL
//! editor and the result grid.

use std::collections::BTreeMap;
use std::rc::Rc;

use dioxus::core::Task;
use dioxus::prelude::*;
use futures::StreamExt;

use wavelake_engine::QueryProgress;

use crate::chart::ChartView;
use crate::completion::Completion;
use crate::connect::ConnectForm;
use crate::download;
use crate::explain::ExplainView;
use crate::grid::ResultGrid;
use crate::history;
use crate::session::{self, Answer, Connection, Session, megabytes, now_ms};
use crate::sidebar::TableTree;
use crate::table_page::TablePage;
use crate::write_panel::{UploadForm, is_write};
use wavelake_engine::server_sql::{DEFAULT_MAX_PAGE_BYTES, Decision};

/// The whole app; `origin` is the page's origin.
#[component]
pub fn App(origin: String) -> Element {
    let mut session = use_signal(|| None::<Rc<Session>>);
    let mut busy = use_signal(|| false);
    let mut error = use_signal(|| None::<String>);
    let connect = move |connection: Connection| {
        busy.set(true);
        error.set(None);
        spawn(async move {
            match Session::connect(connection).await {
                Ok(connected) => session.set(Some(Rc::new(connected))),
                Err(why) => error.set(Some(why)),
            }
            busy.set(false);
        });
    };
    let current = session();
    rsx! {
        main { class: "app",
            if let Some(why) = error() {
                div { class: "error", role: "alert", "{why}" }
            }
            match current {
                None => rsx! { ConnectForm { origin, busy: busy(), on_connect: connect } },
                Some(connected) => rsx! { Workspace { session: SessionHandle(connected) } },
            }
        }
    }
}

/// A connected session, compared by identity (a new connection is a new
/// session).
#[derive(Debug, Clone)]
pub struct SessionHandle(pub Rc<Session>);

impl PartialEq for SessionHandle {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// What the main area shows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Page {
    /// The SQL editor and its result.
    Query,
    /// A table's page.
    Table(String),
    /// The upload form.
    Upload,
}

/// How a result is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResultView {
    Rows,
    Chart,
    Explain,
}

/// What happens to a query that reads more than the page's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LargeQueries {
    /// Offer to send it to the server.
    Ask,
    /// Send it to the server.
    Send,
    /// Run it in the page anyway.
    Keep,
}

impl LargeQueries {
    const ALL: [(Self, &'static str, &'static str); 3] = [
        (
            Self::Ask,
            "ask",
            "Ask before sending large queries to the server",
        ),
        (Self::Send, "send", "Send large queries to the server"),
        (Self::Keep, "keep", "Run every query in this page"),
    ];

    fn from_value(value: &str) -> Self {
        Self::ALL
            .iter()
            .find(|(_, v, _)| *v == value)
            .map_or(Self::Ask, |(choice, _, _)| *choice)
    }
}

/// Where the user asked one query to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    /// As the setting for large queries says.
    BySize,
    /// On the server.
    Server,
    /// In this page.
    Page,
}

/// A query the page offers to send to the server, and why.
#[derive(Debug, Clone, PartialEq)]
struct Offer {
    sql: String,
    reason: String,
}

/// A connected session's screen.
#[component]
fn Workspace(session: SessionHandle) -> Element {
    let handle = session.clone();
    let session = session.0;
    // Bumped after a write, so that every view reads again.
    let mut generation = use_signal(|| 0u64);
    let _ = generation();
    let names = session.table_names();
    let mut page = use_signal(|| Page::Query);
    let mut pinned = use_signal(BTreeMap::<String, i64>::new);
    let mut query = use_signal(|| match names.first() {
        Some(name) => format!("SELECT * FROM {name} LIMIT 100"),
        None => String::new(),
    });
    let mut completion = use_signal(Completion::default);
    let mut result = use_signal(|| None::<Answer>);
    let mut view = use_signal(|| ResultView::Rows);
    let mut error = use_signal(|| None::<String>);
    let mut notice = use_signal(|| None::<String>);
    let mut running = use_signal(|| None::<Task>);
    let mut progress = use_signal(|| None::<QueryProgress>);
    let mut large = use_signal(|| LargeQueries::Ask);
    let mut max_page_mb = use_signal(|| DEFAULT_MAX_PAGE_BYTES / (1 << 20));
    let mut offer = use_signal(|| None::<Offer>);
    let mut past = use_signal(history::load);
    // Live results: the query shown runs again on every commit of a table
    // it reads.
    let mut live = use_signal(|| false);
    let mut live_note = use_signal(|| None::<String>);
    let mut shown_sql = use_signal(String::new);
    let refresher = session.clone();
    // After a write: list the tables again, read every table at its latest.
    let changed = use_callback(move |message: String| {
        let session = refresher.clone();
        notice.set(Some(message));
        pinned.set(BTreeMap::new());
        spawn(async move {
            if let Err(why) = session.refresh().await {
                error.set(Some(why));
            }
            generation += 1;
        });
    });
    let run_session = session.clone();
    let run = use_callback(move |choice: Choice| {
        if running().is_some() {
            return;
        }
        offer.set(None);
        error.set(None);
        notice.set(None);
        progress.set(None);
        view.set(ResultView::Rows);
        completion.set(Completion::default());
        let session = run_session.clone();
        let sql = query();
        let remembered = history::with_query(past(), &sql);
        history::store(&remembered);
        past.set(remembered);
        let (setting, limit) = (large(), max_page_mb().saturating_mul(1 << 20));
        let task = spawn(async move {
            let started = now_ms();
            let asked = |reason: &str| Decision {
                to_server: false,
                reason: reason.to_owned(),
                estimate: None,
            };
            let decision = match (choice, setting) {
                _ if is_write(&sql) => Ok(asked("")),
                (Choice::Page, _) => Ok(asked("you chose to run it in this page")),
                (Choice::Server, _) => Ok(Decision {
                    to_server: true,
                    ..asked("you chose to send it to the server")
                }),
                (Choice::BySize, LargeQueries::Keep) => {
                    Ok(asked("large queries are set to run in this page"))
                }
                (Choice::BySize, _) => session.placement(&sql, limit).await,
            };
            let outcome = match decision {
                _ if is_write(&sql) => session
                    .write_on_server(&sql)
                    .await
                    .inspect(|_| changed.call("The statement ran on the server.".into())),
                Err(why) => Err(why),
                Ok(decision)
                    if decision.to_server
                        && setting == LargeQueries::Ask
                        && choice == Choice::BySize =>
                {
                    offer.set(Some(Offer {
                        sql: sql.clone(),
                        reason: decision.reason,
                    }));
                    running.set(None);
                    return;
                }
                Ok(decision) if decision.to_server => {
                    session.run_on_server(&sql, decision.reason, started).await
                }
                Ok(decision) => match session.prepare(&sql).await {
                    // Show what the query has read while it runs.
                    Ok(planned) => {
                        session::run(&planned, decision, started, |now| {
                            let mut shown = progress;
                            shown.set(Some(now));
                        })
                        .await
                    }
                    Err(why) => Err(why),
                },
            };
            match outcome {
                Ok(answer) => {
                    shown_sql.set(sql.clone());
                    result.set(Some(answer));
                }
                Err(why) => error.set(Some(why)),
            }
            running.set(None);
        });
        running.set(Some(task));
    });
    let live_session = session.clone();
    let _following = use_resource(move || {
        let session = live_session.clone();
        let wanted = live();
        let sql = shown_sql();
        async move {
            if !wanted || sql.is_empty() || is_write(&sql) {
                live_note.set(None);
                return;
            }
            live_note.set(Some("Connecting…".into()));
            let names = session.tables_read(&sql);
            let mut commits = match crate::live::commits(&session, &names).await {
                Ok(commits) => commits,
                Err(why) => {
                    live_note.set(Some(why));
                    return;
                }
            };
            live_note.set(Some("Live: runs again on every commit".into()));
            while let Some(commit) = commits.next().await {
                if let Err(why) = commit {
                    live_note.set(Some(why));
                    return;
                }
                // Read every table at its latest, then the same query.
                if let Err(why) = session.refresh().await {
                    live_note.set(Some(why));
                    return;
                }
                if running().is_none() {
                    query.set(sql.clone());
                    run.call(Choice::BySize);
                }
            }
        }
    });
    let cancel = move |_| {
        if let Some(task) = running() {
            task.cancel();
            running.set(None);
            error.set(Some("Cancelled: the query was stopped.".into()));
        }
    };
    let complete_session = session.clone();
    let mut suggest = move |text: &str| {
        let cursor = editor_cursor().unwrap_or(text.len());
        completion.set(Completion::at(
            text,
            cursor,
            &complete_session.table_names(),
            &complete_session.columns(),
        ));
    };
    let can_write = session.access().can_write();
    let pins: Vec<(String, i64)> = pinned().into_iter().collect();
    rsx! {
        div { class: "workspace",
            nav { class: "sidebar",
                TableTree {
                    groups: session.table_tree(),
                    current: match page() { Page::Table(name) => Some(name), _ => None },
                    on_open: move |name: String| page.set(Page::Table(name)),
                }
                if can_write {
                    button { class: "upload-link", onclick: move |_| page.set(Page::Upload), "Upload a file" }
                }
                button { class: "clear-cache",
                    title: "Remove the table files this browser keeps between visits",
                    onclick: move |_| {
                        spawn(async move {
                            match crate::session::clear_persistent_cache().await {
                                Ok(()) => notice.set(Some("Cleared the table files kept in this browser.".into())),
                                Err(e) => error.set(Some(format!("Could not clear the cached files: {e}"))),
                            }
                        });
                    },
                    "Clear cached files"
                }
            }
            section { class: "main",
                div { class: "tabs",
                    button { class: if page() == Page::Query { "tab current" } else { "tab" },
                        onclick: move |_| page.set(Page::Query), "Query" }
                    if let Page::Table(name) = page() {
                        button { class: "tab current", "Table {name}" }
                    }
                    if page() == Page::Upload {
                        button { class: "tab current", "Upload" }
                    }
                }
                if !pins.is_empty() {
                    p { class: "pins",
                        "Reading earlier versions: "
                        for (name, version) in pins {
                            span { key: "{name}", class: "pin", "{name} at version {version} " }
                        }
                    }
                }
                if let Some(message) = notice() {
                    p { class: "done", role: "status", "{message}" }
                }
                match page() {
                    Page::Table(name) => rsx! {
                        TablePage {
                            key: "{name}-{generation}",
                            session: handle.clone(),
                            name: name.clone(),
                            version: pinned().get(&name).copied(),
                            on_version: {
                                let name = name.clone();
                                move |version: Option<i64>| {
                                    let mut pins = pinned();
                                    match version {
                                        Some(version) => pins.insert(name.clone(), version),
                                        None => pins.remove(&name),
                                    };
                                    pinned.set(pins);
                                }
                            },
                            on_query: move |sql: String| {
                                query.set(sql);
                                page.set(Page::Query);
                            },
                        }
                    },
                    Page::Upload => rsx! {
                        UploadForm { session: handle.clone(), on_changed: move |message: String| changed.call(message) }
                    },
                    Page::Query => rsx! {
                        div { class: "editor",
                            textarea { class: "sql", spellcheck: false, rows: 8, value: "{query}",
                                aria_label: "SQL",
                                oninput: move |e| {
                                    let text = e.value();
                                    suggest(&text);
                                    query.set(text);
                                },
                                onkeydown: move |e: KeyboardEvent| {
                                    let modifiers = e.modifiers();
                                    if e.key() == Key::Enter
                                        && (modifiers.contains(Modifiers::CONTROL) || modifiers.contains(Modifiers::META))
                                    {
                                        e.prevent_default();
                                        run.call(Choice::BySize);
                                    } else if e.key() == Key::Tab {
                                        let offered = completion();
                                        if let Some(first) = offered.names.first() {
                                            e.prevent_default();
                                            let (text, _) = offered.apply(&query(), first);
                                            query.set(text);
                                            completion.set(Completion::default());
                                        }
                                    } else if e.key() == Key::Escape {
                                        completion.set(Completion::default());
                                    }
                                },
                            }
                            if !completion().names.is_empty() {
                                ul { class: "completions", role: "listbox",
                                    for name in completion().names {
                                        li { key: "{name}",
                                            button { class: "completion",
                                                onclick: {
                                                    let name = name.clone();
                                                    move |_| {
                                                        let (text, _) = completion().apply(&query(), &name);
                                                        query.set(text);
                                                        completion.set(Completion::default());
                                                    }
                                                },
                                                "{name}"
                                            }
                                        }
                                    }
                                }
                            }
                            div { class: "actions",
                                button { class: "run", disabled: running().is_some(), onclick: move |_| run.call(Choice::BySize),
                                    if running().is_some() { "Running…" } else { "Run (Ctrl+Enter)" }
                                }
                                if running().is_some() {
                                    button { class: "cancel", onclick: cancel, "Cancel" }
                                }
                                select { class: "history", aria_label: "Query history",
                                    onchange: move |e| query.set(e.value()),
                                    option { value: "{query}", "History ({past.read().len()})" }
                                    for (index, past_query) in past().into_iter().enumerate() {
                                        option { key: "{index}", value: "{past_query}", "{past_query}" }
                                    }
                                }
                            }
                            div { class: "placement-settings",
                                select { name: "large-queries", aria_label: "Large queries",
                                    onchange: move |e| large.set(LargeQueries::from_value(&e.value())),
                                    for (choice, value, label) in LargeQueries::ALL {
                                        option { key: "{value}", value: "{value}", selected: large() == choice, "{label}" }
                                    }
                                }
                                label { "Page limit (MB) "
                                    input { name: "max-page-mb", r#type: "number", min: "0", value: "{max_page_mb}",
                                        oninput: move |e| {
                                            if let Ok(mb) = e.value().trim().parse::<u64>() {
                                                max_page_mb.set(mb);
                                            }
                                        },
                                    }
                                }
                            }
                            if let Some(offered) = offer() {
                                div { class: "offer", role: "alert",
                                    p { "This query is large for a page: {offered.reason}." }
                                    button { class: "send-to-server", onclick: move |_| run.call(Choice::Server), "Run on the server" }
                                    button { class: "run-here", onclick: move |_| run.call(Choice::Page), "Run in this page" }
                                }
                            }
                            if let Some(p) = progress() {
                                p { class: "progress",
                                    "{p.files_read} of {p.files_total} files · {megabytes(p.bytes_fetched)} MB fetched · {megabytes(p.bytes_from_cache)} MB from cache · {p.fetch_requests} requests"
                                }
                            }
                            if let Some(why) = error() {
                                div { class: "error", role: "alert", "{why}" }
                            }
                            if let Some(answer) = result() {
                                div { class: "views",
                                    label { class: "live",
                                        input { r#type: "checkbox", name: "live-result", checked: live(),
                                            onchange: move |e| live.set(e.checked()),
                                        }
                                        " Live"
                                    }
                                    if let Some(note) = live_note() {
                                        span { class: "live-status", "{note}" }
                                    }
                                    for (choice, label) in [(ResultView::Rows, "Rows"), (ResultView::Chart, "Chart"), (ResultView::Explain, "Explain")] {
                                        button { key: "{label}",
                                            class: if view() == choice { "view current" } else { "view" },
                                            onclick: move |_| view.set(choice), "{label}" }
                                    }
                                    button { class: "download",
                                        onclick: move |_| {
                                            let csv = result.read().as_ref().map(|a| a.table.to_csv()).unwrap_or_default();
                                            if let Err(why) = download::offer("result.csv", "text/csv", csv.as_bytes()) {
                                                error.set(Some(why));
                                            }
                                        },
                                        "Download CSV"
                                    }
                                    button { class: "download",
                                        onclick: move |_| {
                                            let bytes = result.read().as_ref().map(|a| download::parquet_bytes(&a.batches));
                                            let offered = bytes
                                                .unwrap_or_else(|| Err("There is no result.".into()))
                                                .and_then(|b| download::offer("result.parquet", "application/vnd.apache.parquet", &b));
                                            if let Err(why) = offered {
                                                error.set(Some(why));
                                            }
                                        },
                                        "Download Parquet"
                                    }
                                }
                                if let Some(ran) = &answer.ran {
                                    p { class: "ran", "{ran.summary()}" }
                                }
                                match view() {
                                    ResultView::Rows => rsx! { ResultGrid { table: answer.table } },
                                    ResultView::Chart => rsx! { ChartView { table: answer.table } },
                                    ResultView::Explain => rsx! { ExplainView { scans: answer.scans, plan: answer.plan } },
                                }
                            }
                        }
                    },
                }
            }
        }
    }
}

/// Where the cursor is in the SQL editor (a byte offset), in a browser.
fn editor_cursor() -> Option<usize> {
    #[cfg(target_arch = "wasm32")]
    {
        use wasm_bindgen::JsCast;
        let area: web_sys::HtmlTextAreaElement = web_sys::window()?
            .document()?
            .query_selector("textarea.sql")
            .ok()??
            .dyn_into()
            .ok()?;
        // The browser counts UTF-16 units; the completion works in bytes.
        let units = area.selection_start().ok()?? as usize;
        let text = area.value();
        let mut seen = 0;
        for (offset, c) in text.char_indices() {
            if seen >= units {
                return Some(offset);
            }
            seen += c.len_utf16();
        }
        Some(text.len())
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_app_starts_at_sign_in() {
        let html = dioxus_ssr::render_element(rsx! { App { origin: "http://h" } });
        assert!(html.contains("class=\"connect\""), "{html}");
        assert!(!html.contains("class=\"workspace\""), "{html}");
    }
}
