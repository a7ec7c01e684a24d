//! The result grid: a page of rows at a time, sorted by a clicked column.

use dioxus::prelude::*;

use crate::result_table::{Direction, ResultTable};

/// Rows shown per page.
pub const PAGE_SIZE: usize = 50;

/// A result as a table that pages and sorts.
#[component]
pub fn ResultGrid(table: ResultTable) -> Element {
    let mut sort = use_signal(|| None::<(usize, Direction)>);
    let mut page = use_signal(|| 0usize);
    let mut shown = table.clone();
    if let Some((column, direction)) = sort() {
        shown.sort_by(column, direction);
    }
    let pages = shown.page_count(PAGE_SIZE);
    let current = page().min(pages - 1);
    let rows = shown.page(current, PAGE_SIZE).to_vec();
    let total = shown.rows.len();
    rsx! {
        div { class: "grid",
            p { class: "grid-summary", "{total} rows · page {current + 1} of {pages}" }
            table {
                thead {
                    tr {
                        for (index, column) in shown.columns.iter().enumerate() {
                            th {
                                key: "{index}",
                                title: "{column.data_type}",
                                onclick: move |_| {
                                    let next = match sort() {
                                        Some((c, Direction::Ascending)) if c == index => Direction::Descending,
                                        _ => Direction::Ascending,
                                    };
                                    sort.set(Some((index, next)));
                                    page.set(0);
                                },
                                "{column.name}"
                                {arrow_for(sort(), index)}
                            }
                        }
                    }
                }
                tbody {
                    for (number, row) in rows.iter().enumerate() {
                        tr { key: "{number}",
                            for (index, value) in row.iter().enumerate() {
                                match value {
                                    Some(text) => rsx! { td { key: "{index}", "{text}" } },
                                    None => rsx! { td { key: "{index}", class: "null", "NULL" } },
                                }
                            }
                        }
                    }
                }
            }
            div { class: "pager",
                button { disabled: current == 0, onclick: move |_| page.set(current.saturating_sub(1)), "Previous" }
                button { disabled: current + 1 >= pages, onclick: move |_| page.set(current + 1), "Next" }
            }
        }
    }
}

fn arrow_for(sort: Option<(usize, Direction)>, index: usize) -> &'static str {
    match sort {
        Some((c, Direction::Ascending)) if c == index => " ▲",
        Some((c, Direction::Descending)) if c == index => " ▼",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result_table::Column;

    fn numbers(count: usize) -> ResultTable {
        ResultTable {
            columns: vec![Column {
                name: "n".into(),
                data_type: "Int64".into(),
                numeric: true,
            }],
            rows: (0..count)
                .map(|i| vec![(i % 7 != 3).then(|| i.to_string())])
                .collect(),
        }
    }

    #[test]
    fn a_large_result_shows_one_page_of_rows() {
        let html = dioxus_ssr::render_element(rsx! { ResultGrid { table: numbers(120) } });
        assert!(html.contains("120 rows · page 1 of 3"), "{html}");
        assert_eq!(
            html.matches("<tr").count(),
            PAGE_SIZE + 1,
            "header and one page"
        );
        assert!(html.contains("title=\"Int64\""), "{html}");
        assert!(html.contains("class=\"null\""), "NULLs are marked: {html}");
        assert!(
            html.contains("disabled"),
            "no previous page on the first: {html}"
        );
    }

    #[test]
    fn an_empty_result_still_has_one_page() {
        let html = dioxus_ssr::render_element(rsx! { ResultGrid { table: numbers(0) } });
        assert!(html.contains("0 rows · page 1 of 1"), "{html}");
    }
}
