//! The app: the sign-in form until connected, then the table list, the SQL
//! editor and the result grid.

use std::rc::Rc;

use dioxus::prelude::*;

use crate::connect::ConnectForm;
use crate::grid::ResultGrid;
use crate::result_table::ResultTable;
use crate::session::{Connection, Session};

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
    let mut result = use_signal(|| None::<ResultTable>);
    let mut error = use_signal(|| None::<String>);
    let mut running = use_signal(|| false);
    let run_session = session.clone();
    let run = use_callback(move |()| {
        if running() {
            return;
        }
        running.set(true);
        error.set(None);
        let session = run_session.clone();
        let sql = query();
        spawn(async move {
            match session.run(&sql).await {
                Ok(table) => result.set(Some(table)),
                Err(why) => error.set(Some(why)),
            }
            running.set(false);
        });
    });
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
                button { class: "run", disabled: running(), onclick: move |_| run.call(()),
                    if running() { "Running…" } else { "Run (Ctrl+Enter)" }
                }
                if let Some(why) = error() {
                    div { class: "error", role: "alert", "{why}" }
                }
                if let Some(table) = result() {
                    ResultGrid { table }
                }
            }
        }
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
