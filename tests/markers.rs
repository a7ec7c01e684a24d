//! A model of statements that each carry a marker, for campaigns that
//! break things (faults, crashes) and then check that no acknowledged
//! change is lost and none is partly visible. Each INSERT writes the
//! three rows `(marker, 0..3)` of a new marker; DELETE and UPDATE (`part +
//! 10`) touch one marker's rows; every outcome narrows what the table may
//! hold.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use wavelake_engine::SqlSession;

/// Rows each INSERT writes, all with its marker (parts 0, 1, 2).
pub const ROWS_PER_MARKER: i64 = 3;

/// What the model knows of one marker's rows.
#[derive(Debug, Default)]
pub struct Marker {
    /// The INSERT was acknowledged.
    pub inserted: bool,
    /// A DELETE was acknowledged.
    pub deleted: bool,
    /// A DELETE failed: the rows may be gone.
    pub maybe_deleted: bool,
    /// UPDATEs acknowledged, and attempted (each adds 10 to `part`).
    pub updates_acked: i64,
    pub updates_tried: i64,
}

/// One statement of the campaign.
#[derive(Debug, Clone, Copy)]
pub enum Change {
    /// Inserts the rows of a new marker.
    Insert(i64),
    /// Deletes a marker's rows.
    Delete(i64),
    /// Adds 10 to the `part` of a marker's rows.
    Update(i64),
    /// Compacts the table.
    Optimize,
}

impl Change {
    /// The statement, on table `table`.
    pub fn sql(self, table: &str) -> String {
        match self {
            Self::Insert(marker) => {
                let values: Vec<String> = (0..ROWS_PER_MARKER)
                    .map(|part| format!("({marker}, {part})"))
                    .collect();
                format!("INSERT INTO {table} VALUES {}", values.join(", "))
            }
            Self::Delete(marker) => format!("DELETE FROM {table} WHERE marker = {marker}"),
            Self::Update(marker) => {
                format!("UPDATE {table} SET part = part + 10 WHERE marker = {marker}")
            }
            Self::Optimize => format!("OPTIMIZE {table}"),
        }
    }

    /// What the model learns from the statement's outcome.
    pub fn record(self, model: &mut BTreeMap<i64, Marker>, acknowledged: bool) {
        match self {
            Self::Insert(marker) => model.entry(marker).or_default().inserted = acknowledged,
            Self::Delete(marker) => {
                let known = model.entry(marker).or_default();
                known.deleted |= acknowledged;
                known.maybe_deleted |= !acknowledged;
            }
            Self::Update(marker) => {
                let known = model.entry(marker).or_default();
                known.updates_tried += 1;
                known.updates_acked += i64::from(acknowledged);
            }
            Self::Optimize => {}
        }
    }
}

/// The number in environment variable `name`, else `default`.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `marker → parts` of the table as a clean reader sees it.
pub async fn rows_by_marker(engine: &SqlSession, table: &str) -> BTreeMap<i64, Vec<i64>> {
    let batches = engine
        .query(&format!(
            "SELECT marker, part FROM {table} ORDER BY marker, part"
        ))
        .await
        .expect("a clean reader reads the table");
    let mut rows: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for batch in &batches {
        let markers = batch.column(0).as_primitive::<Int64Type>();
        let parts = batch.column(1).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            rows.entry(markers.value(i))
                .or_default()
                .push(parts.value(i));
        }
    }
    rows
}

/// Checks the table against the model; panics with the first mismatch.
pub fn check(model: &BTreeMap<i64, Marker>, rows: &BTreeMap<i64, Vec<i64>>, after: &str) {
    for (marker, parts) in rows {
        let known = model
            .get(marker)
            .unwrap_or_else(|| panic!("after {after}: rows of marker {marker}, never inserted"));
        let shift = parts[0] / 10 * 10;
        let expected: Vec<i64> = (0..ROWS_PER_MARKER).map(|p| p + shift).collect();
        assert_eq!(
            parts, &expected,
            "after {after}: marker {marker} is partly visible or changed in part"
        );
        let applied = shift / 10;
        assert!(
            (known.updates_acked..=known.updates_tried).contains(&applied),
            "after {after}: marker {marker} updated {applied} times, {known:?}"
        );
        assert!(
            !known.deleted,
            "after {after}: marker {marker} deleted yet there"
        );
    }
    for (marker, known) in model {
        if known.inserted && !known.deleted && !known.maybe_deleted {
            assert!(
                rows.contains_key(marker),
                "after {after}: acknowledged marker {marker} is lost"
            );
        }
    }
}
