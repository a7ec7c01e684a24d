//! Table and column names offered while typing SQL: the word before the
//! cursor, completed from the names the session knows.

use std::collections::BTreeMap;

/// Suggestions offered at most.
pub const MAX_SUGGESTIONS: usize = 8;

/// What can complete the word before the cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    /// Where the word starts (a byte offset into the text).
    pub start: usize,
    /// Where it ends: the cursor.
    pub end: usize,
    /// Names that start with it, tables first.
    pub names: Vec<String>,
}

impl Completion {
    /// Suggestions for the word before byte `cursor` of `text`, from
    /// `tables` and the `columns` of each table.
    pub fn at(
        text: &str,
        cursor: usize,
        tables: &[String],
        columns: &BTreeMap<String, Vec<String>>,
    ) -> Self {
        let mut end = cursor.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let start = text[..end]
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_alphanumeric() || *c == '_' || *c == '.')
            .last()
            .map_or(end, |(i, _)| i);
        let word = text[start..end].to_lowercase();
        if word.is_empty() {
            return Self {
                start,
                end,
                names: Vec::new(),
            };
        }
        let mut names: Vec<String> = Vec::new();
        let columns_of_all = columns.values().flatten();
        for name in tables.iter().chain(columns_of_all) {
            let lower = name.to_lowercase();
            if lower.starts_with(&word) && lower != word && !names.contains(name) {
                names.push(name.clone());
            }
            if names.len() == MAX_SUGGESTIONS {
                break;
            }
        }
        Self { start, end, names }
    }

    /// `text` with the word replaced by `name`, and the cursor after it.
    pub fn apply(&self, text: &str, name: &str) -> (String, usize) {
        let start = self.start.min(text.len());
        let end = self.end.clamp(start, text.len());
        let mut completed = String::with_capacity(text.len() + name.len());
        completed.push_str(&text[..start]);
        completed.push_str(name);
        let cursor = completed.len();
        completed.push_str(&text[end..]);
        (completed, cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> (Vec<String>, BTreeMap<String, Vec<String>>) {
        let tables = vec!["demo.trips".to_owned(), "demo.zones".to_owned()];
        let columns = BTreeMap::from([(
            "demo.trips".to_owned(),
            vec!["city".to_owned(), "fare".to_owned(), "day".to_owned()],
        )]);
        (tables, columns)
    }

    #[test]
    fn tables_and_columns_complete_the_word_before_the_cursor() {
        let (tables, columns) = known();
        let text = "SELECT ci FROM demo.t";
        let at_end = Completion::at(text, text.len(), &tables, &columns);
        assert_eq!(at_end.names, ["demo.trips"]);
        assert_eq!(&text[at_end.start..at_end.end], "demo.t");
        let inside = Completion::at(text, 9, &tables, &columns);
        assert_eq!(inside.names, ["city"]);
        let (completed, cursor) = inside.apply(text, "city");
        assert_eq!(completed, "SELECT city FROM demo.t");
        assert_eq!(cursor, 11);
    }

    #[test]
    fn nothing_is_offered_after_a_space_or_for_a_whole_name() {
        let (tables, columns) = known();
        assert!(
            Completion::at("SELECT ", 7, &tables, &columns)
                .names
                .is_empty()
        );
        assert!(
            Completion::at("SELECT fare", 11, &tables, &columns)
                .names
                .is_empty()
        );
        assert!(
            Completion::at("é", 1, &tables, &columns).names.is_empty(),
            "mid-character"
        );
    }
}
