//! `jsonPredicateHints` of a sharing query: a tree of comparisons on
//! partition columns that lets the server leave out files whose partition
//! values cannot match. Hints are best effort, so anything this module does
//! not understand (an unknown op or type, a column that is not a partition
//! column) keeps the file, and a hint that does not parse is ignored.

use std::cmp::Ordering;

use serde::Deserialize;
use wavelake_sharing::lines::PartitionValues;

/// One node of the predicate tree.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JsonPredicate {
    op: String,
    #[serde(default)]
    children: Vec<JsonPredicate>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    value_type: Option<String>,
}

/// A typed value of a leaf.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Typed {
    Bool(bool),
    Int(i64),
    Float(f64),
    Date(chrono::NaiveDate),
    Text(String),
}

/// What a leaf resolves to for one file.
enum Leaf {
    /// A known value, or SQL NULL (`None`).
    Known(Option<Typed>),
    /// Not decidable from partition values.
    Unknown,
}

impl JsonPredicate {
    /// Parses a hint; `None` when it is not a predicate tree.
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    /// Whether a file with these partition values (logical column name to
    /// serialized value, `null` for NULL) may hold matching rows.
    pub fn may_match(&self, partition_values: &PartitionValues) -> bool {
        self.evaluate(partition_values) != Some(false)
    }

    /// Three-valued: `None` when the partition values cannot decide.
    fn evaluate(&self, values: &PartitionValues) -> Option<bool> {
        let children = &self.children;
        match self.op.as_str() {
            "and" => {
                let results: Vec<_> = children.iter().map(|c| c.evaluate(values)).collect();
                if results.contains(&Some(false)) {
                    Some(false)
                } else if !results.is_empty() && results.iter().all(|r| *r == Some(true)) {
                    Some(true)
                } else {
                    None
                }
            }
            "or" => {
                let results: Vec<_> = children.iter().map(|c| c.evaluate(values)).collect();
                if results.contains(&Some(true)) {
                    Some(true)
                } else if !results.is_empty() && results.iter().all(|r| *r == Some(false)) {
                    Some(false)
                } else {
                    None
                }
            }
            "not" => match children.as_slice() {
                [child] => child.evaluate(values).map(|b| !b),
                _ => None,
            },
            "isNull" => match children.as_slice() {
                [child] => match child.leaf(values) {
                    Leaf::Known(value) => Some(value.is_none()),
                    Leaf::Unknown => None,
                },
                _ => None,
            },
            "equal" | "lessThan" | "lessThanOrEqual" | "greaterThan" | "greaterThanOrEqual" => {
                let [left, right] = children.as_slice() else {
                    return None;
                };
                let (Leaf::Known(Some(left)), Leaf::Known(Some(right))) =
                    (left.leaf(values), right.leaf(values))
                else {
                    // An unknown side, or NULL: the comparison is not false
                    // for certain.
                    return None;
                };
                if std::mem::discriminant(&left) != std::mem::discriminant(&right) {
                    return None;
                }
                let order = left.partial_cmp(&right)?;
                Some(match self.op.as_str() {
                    "equal" => order == Ordering::Equal,
                    "lessThan" => order == Ordering::Less,
                    "lessThanOrEqual" => order != Ordering::Greater,
                    "greaterThan" => order == Ordering::Greater,
                    _ => order != Ordering::Less,
                })
            }
            _ => None,
        }
    }

    fn leaf(&self, values: &PartitionValues) -> Leaf {
        let text = match self.op.as_str() {
            "column" => {
                let Some(name) = &self.name else {
                    return Leaf::Unknown;
                };
                let found = values
                    .iter()
                    .find(|(column, _)| column.eq_ignore_ascii_case(name));
                match found {
                    Some((_, Some(text))) => Some(text.clone()),
                    Some((_, None)) => None,
                    None => return Leaf::Unknown,
                }
            }
            "literal" => self.value.clone(),
            _ => return Leaf::Unknown,
        };
        let Some(text) = text else {
            return Leaf::Known(None);
        };
        match typed(self.value_type.as_deref().unwrap_or("string"), &text) {
            Some(value) => Leaf::Known(Some(value)),
            None => Leaf::Unknown,
        }
    }
}

fn typed(value_type: &str, text: &str) -> Option<Typed> {
    Some(match value_type {
        "bool" => Typed::Bool(text.parse().ok()?),
        "int" | "long" => Typed::Int(text.parse().ok()?),
        "float" | "double" => Typed::Float(text.parse().ok()?),
        "date" => Typed::Date(chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?),
        "string" => Typed::Text(text.to_owned()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn values(day: Option<&str>) -> PartitionValues {
        PartitionValues::from([("day".to_owned(), day.map(str::to_owned))])
    }

    fn hint(text: Value) -> JsonPredicate {
        JsonPredicate::parse(&text.to_string()).expect("parses")
    }

    fn compare(op: &str, column: &str, value: &str, value_type: &str) -> Value {
        json!({"op": op, "children": [
            {"op": "column", "name": column, "valueType": value_type},
            {"op": "literal", "value": value, "valueType": value_type}]})
    }

    #[test]
    fn partition_values_decide_comparisons_and_logic() {
        let day = |op, v| compare(op, "day", v, "date");
        let equal = hint(day("equal", "2024-03-02"));
        assert!(equal.may_match(&values(Some("2024-03-02"))));
        assert!(!equal.may_match(&values(Some("2024-03-01"))));
        assert!(equal.may_match(&values(None)), "NULL is not false for sure");
        let range = hint(json!({"op": "and", "children": [
            day("greaterThanOrEqual", "2024-03-02"), day("lessThan", "2024-03-10")]}));
        assert!(range.may_match(&values(Some("2024-03-09"))));
        assert!(!range.may_match(&values(Some("2024-03-10"))));
        // Dates compare as dates, not text.
        let later = hint(day("greaterThan", "2024-3-9"));
        assert!(later.may_match(&values(Some("2024-03-10"))));
        let either = hint(json!({"op": "or", "children": [
            day("equal", "2024-03-01"), compare("equal", "id", "7", "int")]}));
        assert!(
            either.may_match(&values(Some("2024-03-05"))),
            "id is no partition column: unknown"
        );
        let not = hint(json!({"op": "not", "children": [day("equal", "2024-03-01")]}));
        assert!(!not.may_match(&values(Some("2024-03-01"))));
        let is_null = hint(json!({"op": "isNull", "children": [
            {"op": "column", "name": "DAY", "valueType": "date"}]}));
        assert!(is_null.may_match(&values(None)));
        assert!(!is_null.may_match(&values(Some("2024-03-01"))));
    }

    #[test]
    fn what_is_not_understood_keeps_the_file() {
        for text in [
            json!({"op": "equal", "children": [{"op": "column", "name": "day", "valueType": "date"},
                {"op": "literal", "value": "not a date", "valueType": "date"}]}),
            json!({"op": "like", "children": []}),
            json!({"op": "equal", "children": [{"op": "column", "name": "day"}]}),
            json!({"op": "and", "children": []}),
        ] {
            assert!(
                hint(text.clone()).may_match(&values(Some("2024-03-01"))),
                "{text}"
            );
        }
        assert!(JsonPredicate::parse("not json").is_none());
    }
}
