//! The sign-in form: the server the app was served from (a token), another
//! Delta Sharing endpoint (a profile's endpoint and token), or one table on
//! a static host (its URL).

use dioxus::prelude::*;

use crate::session::Connection;

/// Which kind of source the form is filling in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// The server the page came from.
    ThisServer,
    /// Any Delta Sharing endpoint.
    SharingEndpoint,
    /// A table's base URL.
    StaticTable,
}

/// Asks where the tables are and hands the answer to `on_connect`.
/// `origin` is the page's own origin (`https://host`), for signing in to
/// the server it was served from.
#[component]
pub fn ConnectForm(origin: String, busy: bool, on_connect: EventHandler<Connection>) -> Element {
    let mut kind = use_signal(|| SourceKind::ThisServer);
    let mut endpoint = use_signal(String::new);
    let mut token = use_signal(String::new);
    let mut name = use_signal(|| "t".to_owned());
    let mut url = use_signal(String::new);
    let submit = move |_| {
        let connection = match kind() {
            SourceKind::ThisServer => Connection::ThisServer {
                origin: origin.clone(),
                token: token(),
            },
            SourceKind::SharingEndpoint => Connection::Sharing {
                endpoint: endpoint(),
                token: token(),
            },
            SourceKind::StaticTable => Connection::StaticTable {
                name: name(),
                url: url(),
            },
        };
        on_connect.call(connection);
    };
    rsx! {
        form { class: "connect",
            onsubmit: move |event| {
                event.prevent_default();
                submit(());
            },
            h1 { "Wavelake" }
            p { "Query Delta tables in this page: the data is read straight from storage." }
            fieldset {
                legend { "Connect to" }
                label {
                    input { r#type: "radio", name: "kind", checked: kind() == SourceKind::ThisServer,
                        onchange: move |_| kind.set(SourceKind::ThisServer) }
                    "this server (token sign-in)"
                }
                label {
                    input { r#type: "radio", name: "kind", checked: kind() == SourceKind::SharingEndpoint,
                        onchange: move |_| kind.set(SourceKind::SharingEndpoint) }
                    "a Delta Sharing endpoint"
                }
                label {
                    input { r#type: "radio", name: "kind", checked: kind() == SourceKind::StaticTable,
                        onchange: move |_| kind.set(SourceKind::StaticTable) }
                    "a table on a static host"
                }
            }
            if kind() == SourceKind::SharingEndpoint {
                label { "Endpoint"
                    input { name: "endpoint", value: "{endpoint}", placeholder: "https://host/delta-sharing/",
                        oninput: move |e| endpoint.set(e.value()) }
                }
            }
            if kind() == SourceKind::StaticTable {
                label { "Table name"
                    input { name: "table-name", value: "{name}", oninput: move |e| name.set(e.value()) }
                }
                label { "Table URL"
                    input { name: "table-url", value: "{url}", placeholder: "https://host/tables/trips/",
                        oninput: move |e| url.set(e.value()) }
                }
            } else {
                label { "Token"
                    input { name: "token", r#type: "password", value: "{token}",
                        oninput: move |e| token.set(e.value()) }
                }
            }
            button { r#type: "submit", disabled: busy, if busy { "Connecting…" } else { "Connect" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render_ssr as render;

    #[test]
    fn the_form_offers_three_sources_and_a_token_first() {
        let html = render(|| {
            rsx! { ConnectForm { origin: "http://127.0.0.1:8080", busy: false, on_connect: move |_| {} } }
        });
        for text in [
            "this server (token sign-in)",
            "a Delta Sharing endpoint",
            "a table on a static host",
            "name=\"token\"",
            ">Connect<",
        ] {
            assert!(html.contains(text), "{text} missing: {html}");
        }
        assert!(!html.contains("name=\"table-url\""), "{html}");
    }

    #[test]
    fn a_busy_form_cannot_be_sent_twice() {
        let html = render(
            || rsx! { ConnectForm { origin: "http://h", busy: true, on_connect: move |_| {} } },
        );
        assert!(html.contains("Connecting…"), "{html}");
        assert!(html.contains("disabled"), "{html}");
    }
}
