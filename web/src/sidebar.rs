//! The sidebar: shares, their schemas and tables, narrowed by a search.

use dioxus::prelude::*;

use crate::session::SourceGroup;

/// The groups whose tables match `needle` (case-insensitive), with only
/// those tables.
pub fn matching(groups: &[SourceGroup], needle: &str) -> Vec<SourceGroup> {
    let needle = needle.to_lowercase();
    groups
        .iter()
        .filter_map(|group| {
            let tables: Vec<String> = group
                .tables
                .iter()
                .filter(|t| t.to_lowercase().contains(&needle))
                .cloned()
                .collect();
            (!tables.is_empty()).then(|| SourceGroup {
                tables,
                ..group.clone()
            })
        })
        .collect()
}

/// Shares, schemas and tables; `current` is the table shown, `on_open`
/// hears which table was chosen.
#[component]
pub fn TableTree(
    groups: Vec<SourceGroup>,
    current: Option<String>,
    on_open: EventHandler<String>,
) -> Element {
    let mut filter = use_signal(String::new);
    let shown = matching(&groups, &filter());
    rsx! {
        input { class: "search", placeholder: "Search tables", value: "{filter}",
            aria_label: "Search tables",
            oninput: move |e| filter.set(e.value()) }
        if shown.is_empty() {
            p { class: "note", "No table matches." }
        }
        for group in shown {
            div { key: "{group.share}/{group.schema}", class: "source",
                p { class: "share", title: "share", "{group.share}" }
                if !group.schema.is_empty() {
                    p { class: "schema", title: "schema", "{group.schema}" }
                }
                ul {
                    for name in group.tables {
                        li { key: "{name}",
                            button {
                                class: if current.as_deref() == Some(name.as_str()) { "table-link current" } else { "table-link" },
                                onclick: {
                                    let name = name.clone();
                                    move |_| on_open.call(name.clone())
                                },
                                "{name}"
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Vec<SourceGroup> {
        vec![
            SourceGroup {
                share: "demo".into(),
                schema: "demo".into(),
                tables: vec!["demo.trips".into()],
            },
            SourceGroup {
                share: "namespace-lab".into(),
                schema: "lab".into(),
                tables: vec!["lab.trips_raw".into(), "lab.visits".into()],
            },
        ]
    }

    #[test]
    fn a_search_keeps_matching_tables_under_their_share_and_schema() {
        let found = matching(&groups(), "TRIPS");
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].tables, ["lab.trips_raw"]);
        assert!(matching(&groups(), "nothing").is_empty());
    }

    #[test]
    fn the_tree_shows_shares_schemas_and_the_current_table() {
        let html = crate::render_ssr(|| {
            rsx! { TableTree { groups: groups(), current: Some("lab.visits".to_owned()), on_open: move |_| {} } }
        });
        for text in [
            ">namespace-lab<",
            ">lab<",
            ">demo.trips<",
            "class=\"table-link current\"",
        ] {
            assert!(html.contains(text), "{text}: {html}");
        }
        assert_eq!(html.matches("class=\"table-link\"").count(), 2, "{html}");
    }
}
