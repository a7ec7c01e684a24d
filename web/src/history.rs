//! The queries a user ran, newest first, kept across reloads in the
//! browser's local storage.

/// How many queries are kept.
pub const KEPT: usize = 50;

/// The local-storage key.
const KEY: &str = "wavelake.queryHistory";

/// `query` at the head of `history` (once), trimmed to [`KEPT`].
pub fn with_query(mut history: Vec<String>, query: &str) -> Vec<String> {
    let query = query.trim();
    if query.is_empty() {
        return history;
    }
    history.retain(|q| q != query);
    history.insert(0, query.to_owned());
    history.truncate(KEPT);
    history
}

/// The stored history (empty where there is no local storage).
pub fn load() -> Vec<String> {
    read()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Stores `history`; where storage is missing or full, it is kept for this
/// page only.
pub fn store(history: &[String]) {
    if let Ok(text) = serde_json::to_string(history) {
        write(&text);
    }
}

#[cfg(target_arch = "wasm32")]
fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

#[cfg(target_arch = "wasm32")]
fn read() -> Option<String> {
    storage()?.get_item(KEY).ok()?
}

#[cfg(target_arch = "wasm32")]
fn write(text: &str) {
    if let Some(storage) = storage() {
        let _ = storage.set_item(KEY, text);
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn read() -> Option<String> {
    let _ = KEY;
    None
}

#[cfg(not(target_arch = "wasm32"))]
fn write(_text: &str) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_query_leads_once_and_the_list_is_bounded() {
        let mut history = Vec::new();
        for i in 0..60 {
            history = with_query(history, &format!("SELECT {i}"));
        }
        assert_eq!(history.len(), KEPT);
        assert_eq!(history[0], "SELECT 59");
        let history = with_query(history, "  SELECT 30 ");
        assert_eq!(history[0], "SELECT 30");
        assert_eq!(history.iter().filter(|q| *q == "SELECT 30").count(), 1);
        assert_eq!(with_query(Vec::new(), "   "), Vec::<String>::new());
    }
}
