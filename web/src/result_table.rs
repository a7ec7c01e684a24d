//! A query result as the grid shows it: column names and types, and every
//! value rendered as text once, with sorting by any column and paging.

use std::cmp::Ordering;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// One column of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its Arrow type, as Arrow prints it.
    pub data_type: String,
    /// Whether its values compare as numbers.
    pub numeric: bool,
}

/// Rows of text under named columns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultTable {
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// The rows; `None` is SQL NULL.
    pub rows: Vec<Vec<Option<String>>>,
}

/// Which way a column is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Smallest first.
    Ascending,
    /// Largest first.
    Descending,
}

impl ResultTable {
    /// Renders `batches` (all of one schema) as text.
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Self, arrow::error::ArrowError> {
        let Some(first) = batches.first() else {
            return Ok(Self::default());
        };
        let columns = first
            .schema()
            .fields()
            .iter()
            .map(|field| Column {
                name: field.name().clone(),
                data_type: field.data_type().to_string(),
                numeric: field.data_type().is_numeric(),
            })
            .collect();
        let options = FormatOptions::default();
        let mut rows = Vec::new();
        for batch in batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|array| ArrayFormatter::try_new(array.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()?;
            for row in 0..batch.num_rows() {
                rows.push(
                    batch
                        .columns()
                        .iter()
                        .zip(&formatters)
                        .map(|(array, formatter)| {
                            (!array.is_null(row)).then(|| formatter.value(row).to_string())
                        })
                        .collect(),
                );
            }
        }
        Ok(Self { columns, rows })
    }

    /// Sorts the rows by `column` (NULLs last either way); numbers compare
    /// as numbers.
    pub fn sort_by(&mut self, column: usize, direction: Direction) {
        let numeric = self.columns.get(column).is_some_and(|c| c.numeric);
        self.rows.sort_by(|a, b| {
            let (a, b) = (
                a.get(column).cloned().flatten(),
                b.get(column).cloned().flatten(),
            );
            let order = match (a, b) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Greater,
                (Some(_), None) => return Ordering::Less,
                (Some(a), Some(b)) if numeric => match (a.parse::<f64>(), b.parse::<f64>()) {
                    (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                    _ => a.cmp(&b),
                },
                (Some(a), Some(b)) => a.cmp(&b),
            };
            match direction {
                Direction::Ascending => order,
                Direction::Descending => order.reverse(),
            }
        });
    }

    /// The rows of page `page` (0-based) of `page_size` rows.
    pub fn page(&self, page: usize, page_size: usize) -> &[Vec<Option<String>>] {
        let start = page.saturating_mul(page_size).min(self.rows.len());
        let end = start.saturating_add(page_size).min(self.rows.len());
        &self.rows[start..end]
    }

    /// The result as CSV (RFC 4180: a header line, fields quoted when they
    /// hold a comma, quote or line break; NULL as an empty field). Text a
    /// spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage
    /// return first) gets a leading `'`, as OWASP advises; numbers do not.
    pub fn to_csv(&self) -> String {
        fn field(out: &mut String, text: &str) {
            if text.contains([',', '"', '\n', '\r']) {
                out.push('"');
                out.push_str(&text.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(text);
            }
        }
        let mut out = String::new();
        for (index, column) in self.columns.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            field(&mut out, &column.name);
        }
        out.push_str("\r\n");
        for row in &self.rows {
            for (index, value) in row.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                let text = value.as_deref().unwrap_or("");
                let numeric = self.columns.get(index).is_some_and(|c| c.numeric);
                if !numeric && text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                    field(&mut out, &format!("'{text}"));
                } else {
                    field(&mut out, text);
                }
            }
            out.push_str("\r\n");
        }
        out
    }

    /// How many pages of `page_size` rows the result fills (at least one).
    pub fn page_count(&self, page_size: usize) -> usize {
        self.rows.len().div_ceil(page_size.max(1)).max(1)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn sample() -> ResultTable {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = |ids: Vec<Option<i64>>, names: Vec<Option<&str>>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(ids)),
                    Arc::new(StringArray::from(names)),
                ],
            )
            .unwrap()
        };
        ResultTable::from_batches(&[
            batch(vec![Some(10), None], vec![Some("b"), Some("a")]),
            batch(vec![Some(9), Some(100)], vec![None, Some("c")]),
        ])
        .unwrap()
    }

    #[test]
    fn batches_become_text_rows_with_nulls_kept() {
        let table = sample();
        assert_eq!(table.columns[0].name, "id");
        assert!(table.columns[0].numeric && !table.columns[1].numeric);
        assert_eq!(table.rows.len(), 4);
        assert_eq!(table.rows[1][0], None);
        assert_eq!(table.rows[3][0].as_deref(), Some("100"));
    }

    #[test]
    fn numbers_sort_as_numbers_and_nulls_go_last() {
        let mut table = sample();
        table.sort_by(0, Direction::Ascending);
        let ids: Vec<_> = table.rows.iter().map(|r| r[0].clone()).collect();
        assert_eq!(
            ids,
            vec![
                Some("9".into()),
                Some("10".into()),
                Some("100".into()),
                None
            ]
        );
        table.sort_by(1, Direction::Descending);
        assert_eq!(table.rows[0][1].as_deref(), Some("c"));
        assert_eq!(table.rows[3][1], None);
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let table = ResultTable {
            columns: vec![
                Column {
                    name: "a".into(),
                    data_type: "Utf8".into(),
                    numeric: false,
                },
                Column {
                    name: "b,c".into(),
                    data_type: "Utf8".into(),
                    numeric: false,
                },
            ],
            rows: vec![
                vec![Some("plain".into()), Some("say \"hi\", twice".into())],
                vec![None, Some("line\nbreak".into())],
                vec![Some("=1+1".into()), Some("@A1".into())],
            ],
        };
        assert_eq!(
            table.to_csv(),
            "a,\"b,c\"\r\nplain,\"say \"\"hi\"\", twice\"\r\n,\"line\nbreak\"\r\n'=1+1,'@A1\r\n"
        );
    }

    #[test]
    fn pages_cover_every_row_once() {
        let table = sample();
        assert_eq!(table.page_count(3), 2);
        assert_eq!(table.page(0, 3).len(), 3);
        assert_eq!(table.page(1, 3).len(), 1);
        assert!(table.page(7, 3).is_empty());
        assert_eq!(ResultTable::default().page_count(50), 1);
    }
}
