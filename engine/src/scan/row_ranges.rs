//! Data files read by more than one partition. DataFusion splits a scan
//! between partitions by row groups, so a table of one file with one row
//! group (TPC-H `partsupp`, `part` and `customer` as `deltalake` writes
//! them at SF1) is read and decoded by one thread however many the query
//! has. When a scan has fewer files than partitions, each large file is
//! read as consecutive ranges of its rows, one per partition: each range is
//! a row selection, so the Parquet reader skips the pages outside it.

use std::sync::Arc;

use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, Statistics};
use datafusion::datasource::listing::PartitionedFile;
use datafusion_datasource_parquet::ParquetRowSelection;
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};

/// A file is read in ranges of at least this many rows (fewer are not
/// worth a second reader).
const MIN_ROWS_PER_RANGE: usize = 50_000;

/// A session config extension: this session's scans never split a row
/// group between partitions. A worker group's partitions run in workers
/// that share no cache, and a row group read in part by two of them is
/// fetched and decoded by both (TPC-H SF1 in a page: `partsupp`, one row
/// group, was fetched twice); the files are left to DataFusion's split by
/// byte ranges, which gives each row group to one partition.
#[derive(Debug, Clone, Copy, Default)]
pub struct WholeRowGroups;

/// `files`, with large ones read as ranges of rows when there are fewer
/// files than `partitions`, so that every partition has rows to read.
pub(super) fn spread(files: Vec<PartitionedFile>, partitions: usize) -> Vec<PartitionedFile> {
    if files.is_empty() || files.len() >= partitions {
        return files;
    }
    let total: u64 = files.iter().map(|f| f.object_meta.size).sum::<u64>().max(1);
    files
        .into_iter()
        .flat_map(|file| {
            // Ranges in proportion to the file's share of the bytes.
            let share = file.object_meta.size as f64 / total as f64;
            let ranges = ((partitions as f64 * share).round() as usize).max(1);
            in_ranges(file, ranges)
        })
        .collect()
}

/// `file` as up to `ranges` consecutive ranges of its rows (itself when it
/// has too few rows, or its row count is not known).
fn in_ranges(file: PartitionedFile, ranges: usize) -> Vec<PartitionedFile> {
    let kept = file
        .extension::<ParquetRowSelection>()
        .map(|selection| selection.selection().clone());
    let rows = match &kept {
        // A deletion vector's selection covers every row of the file.
        Some(kept) => kept.row_count() + kept.skipped_row_count(),
        None => match file.statistics.as_ref().map(|s| s.num_rows) {
            Some(Precision::Exact(rows)) => rows,
            _ => return vec![file],
        },
    };
    let ranges = ranges.min(rows / MIN_ROWS_PER_RANGE);
    if ranges < 2 {
        return vec![file];
    }
    (0..ranges)
        .map(|range| {
            let start = rows * range / ranges;
            let end = rows * (range + 1) / ranges;
            let mut selectors = Vec::with_capacity(3);
            if start > 0 {
                selectors.push(RowSelector::skip(start));
            }
            selectors.push(RowSelector::select(end - start));
            if end < rows {
                selectors.push(RowSelector::skip(rows - end));
            }
            let mut selection = RowSelection::from(selectors);
            if let Some(kept) = &kept {
                selection = selection.intersection(kept);
            }
            let share = (end - start) as f64 / rows as f64;
            let mut piece = file.clone();
            piece.statistics = file
                .statistics
                .as_ref()
                .map(|statistics| Arc::new(statistics_of_range(statistics, &selection, share)));
            piece.with_extension(ParquetRowSelection::new(selection))
        })
        .collect()
}

/// A file's statistics for the range of its rows `selection` keeps, which
/// holds `share` of the file's rows: its row count exact where the file's
/// is; null counts in proportion, so inexact; bounds the file's.
fn statistics_of_range(file: &Statistics, selection: &RowSelection, share: f64) -> Statistics {
    let scaled = |count: &Precision<usize>| match count.get_value() {
        Some(count) => Precision::Inexact((*count as f64 * share).round() as usize),
        None => Precision::Absent,
    };
    let num_rows = match file.num_rows {
        Precision::Exact(_) => Precision::Exact(selection.row_count()),
        Precision::Inexact(_) => Precision::Inexact(selection.row_count()),
        Precision::Absent => Precision::Absent,
    };
    Statistics {
        num_rows,
        total_byte_size: scaled(&file.total_byte_size),
        column_statistics: file
            .column_statistics
            .iter()
            .map(|column| ColumnStatistics {
                null_count: scaled(&column.null_count),
                max_value: column.max_value.clone(),
                min_value: column.min_value.clone(),
                sum_value: Precision::Absent,
                distinct_count: column.distinct_count.to_inexact(),
                byte_size: scaled(&column.byte_size),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::common::ScalarValue;
    use datafusion::object_store::ObjectMeta;
    use datafusion::object_store::path::Path;

    use super::*;

    fn file(name: &str, size: u64, rows: usize) -> PartitionedFile {
        let meta = ObjectMeta {
            location: Path::from(name),
            last_modified: chrono::DateTime::default(),
            size,
            e_tag: None,
            version: None,
        };
        let mut column = ColumnStatistics::new_unknown();
        column.null_count = Precision::Exact(rows / 10);
        column.min_value = Precision::Inexact(ScalarValue::Int64(Some(1)));
        PartitionedFile::new_from_meta(meta).with_statistics(Arc::new(Statistics {
            num_rows: Precision::Exact(rows),
            total_byte_size: Precision::Absent,
            column_statistics: vec![column],
        }))
    }

    fn selected(file: &PartitionedFile) -> Vec<(bool, usize)> {
        file.extension::<ParquetRowSelection>()
            .unwrap()
            .selection()
            .iter()
            .map(|s| (s.skip, s.row_count))
            .collect()
    }

    #[test]
    fn one_large_file_is_read_in_a_range_per_partition() {
        let pieces = spread(vec![file("a", 1000, 800_000)], 2);
        assert_eq!(pieces.len(), 2);
        assert_eq!(selected(&pieces[0]), [(false, 400_000), (true, 400_000)]);
        assert_eq!(selected(&pieces[1]), [(true, 400_000), (false, 400_000)]);
        for piece in &pieces {
            let statistics = piece.statistics.as_ref().unwrap();
            assert_eq!(statistics.num_rows, Precision::Exact(400_000));
            let column = &statistics.column_statistics[0];
            assert_eq!(column.null_count, Precision::Inexact(40_000));
            assert_eq!(
                column.min_value,
                Precision::Inexact(ScalarValue::Int64(Some(1)))
            );
        }
    }

    #[test]
    fn files_enough_for_the_partitions_or_too_small_stay_whole() {
        let whole = spread(vec![file("a", 1000, 800_000), file("b", 10, 800_000)], 2);
        assert_eq!(whole.len(), 2);
        assert!(
            whole
                .iter()
                .all(|f| f.extension::<ParquetRowSelection>().is_none())
        );
        let small = spread(vec![file("a", 1000, 60_000)], 4);
        assert_eq!(small.len(), 1);
        // Ranges in proportion to bytes: three for the file with 90% of
        // them, the other whole.
        let mixed = spread(vec![file("a", 900, 800_000), file("b", 100, 800_000)], 3);
        let whole: Vec<bool> = mixed
            .iter()
            .map(|f| f.extension::<ParquetRowSelection>().is_none())
            .collect();
        assert_eq!(whole, [false, false, false, true]);
    }

    #[test]
    fn a_deletion_vector_keeps_its_rows_out_of_every_range() {
        let kept = RowSelection::from(vec![
            RowSelector::select(100_000),
            RowSelector::skip(10),
            RowSelector::select(99_990),
        ]);
        let with_dv = file("a", 1000, 200_000).with_extension(ParquetRowSelection::new(kept));
        let pieces = spread(vec![with_dv], 2);
        assert_eq!(selected(&pieces[0]), [(false, 100_000), (true, 100_000)]);
        assert_eq!(selected(&pieces[1]), [(true, 100_010), (false, 99_990)]);
        let rows: usize = pieces
            .iter()
            .map(|p| {
                p.extension::<ParquetRowSelection>()
                    .unwrap()
                    .selection()
                    .row_count()
            })
            .sum();
        assert_eq!(rows, 199_990);
    }

    #[test]
    fn a_file_whose_rows_are_not_known_stays_whole() {
        let mut unknown = file("a", 1000, 800_000);
        unknown.statistics = None;
        assert_eq!(spread(vec![unknown], 2).len(), 1);
    }
}
