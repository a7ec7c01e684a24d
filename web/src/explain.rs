//! The explain view: what a query cost, per Delta table scan, and its plan.

use dioxus::prelude::*;
use wavelake_engine::ScanProfile;

/// Files, row groups and pages pruned, DV rows removed, requests and bytes
/// for each scan of a finished query, and its plan with metrics.
#[component]
pub fn ExplainView(scans: Vec<ScanProfile>, plan: String) -> Element {
    let rows = |scan: &ScanProfile| -> Vec<(&'static str, String)> {
        vec![
            (
                "Files",
                format!(
                    "{} of {} read, {} pruned",
                    scan.files_scanned, scan.files_total, scan.files_pruned
                ),
            ),
            (
                "Files with deletion vectors",
                scan.files_with_deletion_vectors.to_string(),
            ),
            (
                "Rows removed by deletion vectors",
                scan.deletion_vector_rows_removed.to_string(),
            ),
            (
                "Row groups pruned",
                format!("{} of {}", scan.row_groups_pruned, scan.row_groups_total),
            ),
            (
                "Pages pruned",
                format!("{} ({} rows)", scan.pages_pruned, scan.page_rows_pruned),
            ),
            ("Rows out", scan.output_rows.to_string()),
            ("Range requests", scan.fetch_requests.to_string()),
            ("Bytes fetched", scan.bytes_fetched.to_string()),
            ("Bytes from cache", scan.bytes_from_cache.to_string()),
        ]
    };
    rsx! {
        div { class: "explain",
            if scans.is_empty() {
                p { "The query read no Delta table." }
            }
            for (index, scan) in scans.iter().enumerate() {
                table { key: "{index}", class: "scan",
                    caption { "Scan {index + 1}" }
                    tbody {
                        for (label, value) in rows(scan) {
                            tr { key: "{label}", th { "{label}" } td { "{value}" } }
                        }
                    }
                }
            }
            details {
                summary { "Plan" }
                pre { "{plan}" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scan_shows_its_pruning_and_bytes() {
        let scan = ScanProfile {
            files_total: 4,
            files_pruned: 3,
            files_scanned: 1,
            deletion_vector_rows_removed: 50,
            bytes_fetched: 12_345,
            ..ScanProfile::default()
        };
        let html = dioxus_ssr::render_element(rsx! {
            ExplainView { scans: vec![scan], plan: "DeltaScan: files_pruned=3".to_string() }
        });
        for text in [
            "1 of 4 read, 3 pruned",
            "50",
            "12345",
            "DeltaScan: files_pruned=3",
        ] {
            assert!(html.contains(text), "{text} missing: {html}");
        }
    }
}
