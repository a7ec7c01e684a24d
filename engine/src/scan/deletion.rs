//! Turning deletion vectors into Parquet row selections, so deleted rows
//! are skipped inside the reader (merge-on-read).

use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use roaring::RoaringTreemap;

use crate::protocol::{DeletionVectorDescriptor, DvLocation};
use crate::storage::Storage;
use crate::{Error, Result};

/// Loads the deletion vector of `data_file` from storage (or inline).
pub async fn load_deletion_vector(
    storage: &dyn Storage,
    data_file: &str,
    dv: &DeletionVectorDescriptor,
) -> Result<RoaringTreemap> {
    let bad = |reason: String| Error::DeletionVector {
        data_file: data_file.to_owned(),
        reason,
    };
    match dv.location().map_err(bad)? {
        DvLocation::Inline(bytes) => dv.decode_bitmap(&bytes).map_err(bad),
        DvLocation::File { path, offset } => {
            let len = dv.stored_len().map_err(bad)?;
            let stored = storage
                .get_range(&path, offset..offset + len)
                .await
                .map_err(|e| match e {
                    Error::NotFound { path } => {
                        bad(format!("deletion vector file {path} is missing"))
                    }
                    // Refused access is the reader's problem, not the vector's.
                    refused @ (Error::Forbidden { .. } | Error::UrlExpired { .. }) => refused,
                    other => bad(format!("cannot read {path}: {other}")),
                })?;
            dv.decode_stored(&stored)
                .map_err(|reason| bad(format!("{path}: {reason}")))
        }
    }
}

/// The rows of a file of `num_rows` rows that survive `deleted`.
pub fn row_selection(deleted: &RoaringTreemap, num_rows: u64) -> Result<RowSelection, String> {
    if let Some(max) = deleted.max()
        && max >= num_rows
    {
        return Err(format!(
            "deletes row {max} but the file has only {num_rows} rows"
        ));
    }
    let mut selectors: Vec<RowSelector> = Vec::new();
    let mut position = 0u64;
    for row in deleted.iter() {
        if row > position {
            selectors.push(RowSelector::select((row - position) as usize));
        }
        match selectors.last_mut() {
            Some(last) if last.skip => last.row_count += 1,
            _ => selectors.push(RowSelector::skip(1)),
        }
        position = row + 1;
    }
    if position < num_rows {
        selectors.push(RowSelector::select((num_rows - position) as usize));
    }
    Ok(RowSelection::from(selectors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_skips_exactly_the_deleted_rows() {
        let deleted: RoaringTreemap = [0u64, 1, 5, 9].into_iter().collect();
        let selection = row_selection(&deleted, 10).expect("valid");
        let selectors: Vec<RowSelector> = selection.into();
        assert_eq!(
            selectors,
            vec![
                RowSelector::skip(2),
                RowSelector::select(3),
                RowSelector::skip(1),
                RowSelector::select(3),
                RowSelector::skip(1),
            ]
        );
        assert!(row_selection(&deleted, 9).is_err());
    }
}
