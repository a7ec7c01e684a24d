//! Turning deletion vectors into Parquet row selections, so deleted rows
//! are skipped inside the reader (merge-on-read).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
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
    let bad = |reason: String| invalid(data_file, reason);
    match dv.location().map_err(bad)? {
        DvLocation::Inline(bytes) => dv.decode_bitmap(&bytes).map_err(bad),
        DvLocation::File { path, offset } => {
            let len = dv.stored_len().map_err(bad)?;
            let stored = storage
                .get_range(&path, offset..offset + len)
                .await
                .map_err(|e| unreadable(data_file, &path, e))?;
            dv.decode_stored(&stored)
                .map_err(|reason| bad(format!("{path}: {reason}")))
        }
    }
}

/// The stored bytes of a scan's file-backed deletion vectors, fetched with
/// one `get_ranges` per deletion-vector file. A DELETE, UPDATE or MERGE
/// writes the vectors of all the files it changed into one file, so they
/// arrive in one request (nearby ranges are coalesced), not one per data
/// file: over HTTP from a page, requests cost more than bytes.
#[derive(Debug, Default)]
pub struct StoredDeletionVectors {
    stored: HashMap<StoredSpan, Bytes>,
}

/// Where a stored vector is: its file, offset and length.
type StoredSpan = (String, u64, u64);

impl StoredDeletionVectors {
    /// Fetches the vectors of `files` (data file path and its vector),
    /// `concurrency` deletion-vector files at a time. Inline vectors and
    /// descriptors that do not parse are left to [`Self::load`], which
    /// reports them per data file.
    pub async fn fetch<'a>(
        storage: &dyn Storage,
        files: impl IntoIterator<Item = (&'a str, &'a DeletionVectorDescriptor)>,
        concurrency: usize,
    ) -> Result<Self> {
        // DV file -> (a data file it serves, for errors; its ranges).
        let mut by_file: BTreeMap<String, (String, BTreeSet<(u64, u64)>)> = BTreeMap::new();
        for (data_file, dv) in files {
            let (Ok(DvLocation::File { path, offset }), Ok(len)) = (dv.location(), dv.stored_len())
            else {
                continue;
            };
            by_file
                .entry(path)
                .or_insert_with(|| (data_file.to_owned(), BTreeSet::new()))
                .1
                .insert((offset, len));
        }
        let reads: Vec<_> = by_file
            .into_iter()
            .map(|(path, (data_file, spans))| Self::fetch_file(storage, path, data_file, spans))
            .collect();
        let fetched: Vec<Vec<(StoredSpan, Bytes)>> = futures::stream::iter(reads)
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        Ok(Self {
            stored: fetched.into_iter().flatten().collect(),
        })
    }

    /// The stored vectors at `spans` (offset, length) of deletion-vector
    /// file `path`, read in one `get_ranges`.
    async fn fetch_file(
        storage: &dyn Storage,
        path: String,
        data_file: String,
        spans: BTreeSet<(u64, u64)>,
    ) -> Result<Vec<(StoredSpan, Bytes)>> {
        let ranges: Vec<Range<u64>> = spans
            .iter()
            .map(|&(offset, len)| offset..offset.saturating_add(len))
            .collect();
        let parts = storage
            .get_ranges(&path, &ranges)
            .await
            .map_err(|e| unreadable(&data_file, &path, e))?;
        Ok(spans
            .into_iter()
            .zip(parts)
            .map(|((offset, len), bytes)| ((path.clone(), offset, len), bytes))
            .collect())
    }

    /// The deletion vector of `data_file`: decoded from the fetched bytes,
    /// or inline, or (not fetched) read from storage.
    pub async fn load(
        &self,
        storage: &dyn Storage,
        data_file: &str,
        dv: &DeletionVectorDescriptor,
    ) -> Result<RoaringTreemap> {
        if let (Ok(DvLocation::File { path, offset }), Ok(len)) = (dv.location(), dv.stored_len())
            && let Some(stored) = self.stored.get(&(path.clone(), offset, len))
        {
            return dv
                .decode_stored(stored)
                .map_err(|reason| invalid(data_file, format!("{path}: {reason}")));
        }
        load_deletion_vector(storage, data_file, dv).await
    }
}

/// A deletion vector of `data_file` that is wrong in itself.
fn invalid(data_file: &str, reason: String) -> Error {
    Error::DeletionVector {
        data_file: data_file.to_owned(),
        reason,
    }
}

/// The error for a deletion-vector file `path` that could not be read.
fn unreadable(data_file: &str, path: &str, error: Error) -> Error {
    match error {
        Error::NotFound { path } => {
            invalid(data_file, format!("deletion vector file {path} is missing"))
        }
        // Refused access is the reader's problem, not the vector's.
        refused @ (Error::Forbidden { .. } | Error::UrlExpired { .. }) => refused,
        other => invalid(data_file, format!("cannot read {path}: {other}")),
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
