//! The app: the sign-in form until connected, then the table list, the SQL
//! editor and the result grid.

use std::rc::Rc;

use dioxus::core::Task;
use dioxus::prelude::*;

use wavelake_engine::QueryProgress;

use crate::connect::ConnectForm;
use crate::download;
use crate::explain::ExplainView;
use crate::grid::ResultGrid;
use crate::history;
use crate::session::{self, Answer, Connection, Session};

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

/// A connected session's screen.
#[component]
fn Workspace(session: SessionHandle) -> Element {
    let session = session.0;
    let names = session.table_names();
    let mut filter = use_signal(String::new);
    let mut query = use_signal(|| match names.first() {
        Some(name) => format!("SELECT * FROM {name} LIMIT 100"),
        None => String::new(),
    });
    let mut result = use_signal(|| None::<Answer>);
    let mut explaining = use_signal(|| false);
    let mut error = use_signal(|| None::<String>);
    let mut running = use_signal(|| None::<Task>);
    let mut progress = use_signal(|| None::<QueryProgress>);
    let mut past = use_signal(history::load);
    let run_session = session.clone();
    let run = use_callback(move |()| {
        if running().is_some() {
            return;
        }
        error.set(None);
        progress.set(None);
        let session = run_session.clone();
        let sql = query();
        let remembered = history::with_query(past(), &sql);
        history::store(&remembered);
        past.set(remembered);
        let task = spawn(async move {
            let outcome = match session.prepare(&sql).await {
                // Show what the query has read while it runs.
                Ok(planned) => {
                    session::run(&planned, |now| {
                        let mut shown = progress;
                        shown.set(Some(now));
                    })
                    .await
                }
                Err(why) => Err(why),
            };
            match outcome {
                Ok(answer) => result.set(Some(answer)),
                Err(why) => error.set(Some(why)),
            }
            running.set(None);
        });
        running.set(Some(task));
    });
    let cancel = move |_| {
        if let Some(task) = running() {
            task.cancel();
            running.set(None);
            error.set(Some("Cancelled: the query was stopped.".into()));
        }
    };
    let needle = filter().to_lowercase();
    let shown: Vec<String> = names
        .iter()
        .filter(|n| n.to_lowercase().contains(&needle))
        .cloned()
        .collect();
    rsx! {
        div { class: "workspace",
            nav { class: "sidebar",
                input { class: "search", placeholder: "Search tables", value: "{filter}",
                    oninput: move |e| filter.set(e.value()) }
                ul {
                    for name in shown {
                        li { key: "{name}",
                            button { class: "table-link",
                                onclick: {
                                    let name = name.clone();
                                    move |_| query.set(format!("SELECT * FROM {name} LIMIT 100"))
                                },
                                "{name}"
                            }
                        }
                    }
                }
            }
            section { class: "editor",
                textarea { class: "sql", spellcheck: false, rows: 8, value: "{query}",
                    oninput: move |e| query.set(e.value()),
                    onkeydown: move |e: KeyboardEvent| {
                        let modifiers = e.modifiers();
                        if e.key() == Key::Enter
                            && (modifiers.contains(Modifiers::CONTROL) || modifiers.contains(Modifiers::META))
                        {
                            e.prevent_default();
                            run.call(());
                        }
                    },
                }
                div { class: "actions",
                    button { class: "run", disabled: running().is_some(), onclick: move |_| run.call(()),
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
                        button { class: if explaining() { "view" } else { "view current" },
                            onclick: move |_| explaining.set(false), "Rows" }
                        button { class: if explaining() { "view current" } else { "view" },
                            onclick: move |_| explaining.set(true), "Explain" }
                        button { class: "download",
                            onclick: move |_| {
                                let csv = result.read().as_ref().map(|a| a.table.to_csv()).unwrap_or_default();
                                if let Err(why) = download::offer("result.csv", "text/csv", &csv) {
                                    error.set(Some(why));
                                }
                            },
                            "Download CSV"
                        }
                    }
                    if explaining() {
                        ExplainView { scans: answer.scans, plan: answer.plan }
                    } else {
                        ResultGrid { table: answer.table }
                    }
                }
            }
        }
    }
}

/// Bytes as megabytes with one decimal.
fn megabytes(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
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
