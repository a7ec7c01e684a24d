//! A Parquet footer checked before any page is read: the parquet crate
//! trusts the offsets and sizes a footer declares (a negative column start
//! is an assertion failure, that is a panic, deep in its page reader), so a
//! corrupt or hostile file must be refused here, by name.

use parquet::file::metadata::ParquetMetaData;

use crate::{Error, Result};

/// The most a column chunk may declare it decompresses to. Writers cut row
/// groups at about 128 MiB; a chunk declaring more than this is refused
/// before its pages are decompressed.
pub const MAX_COLUMN_CHUNK_BYTES: i64 = 4 << 30;

/// Checks that every column chunk of `metadata` lies inside a file of
/// `file_len` bytes, with no negative offset or size, and declares at most
/// [`MAX_COLUMN_CHUNK_BYTES`] uncompressed.
pub fn check_layout(path: &str, metadata: &ParquetMetaData, file_len: u64) -> Result<()> {
    let corrupt = |reason: String| Error::corrupt(path, reason);
    for (g, group) in metadata.row_groups().iter().enumerate() {
        if group.num_rows() < 0 {
            return Err(corrupt(format!("row group {g} has a negative row count")));
        }
        for (c, column) in group.columns().iter().enumerate() {
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            let length = column.compressed_size();
            if start < 0 || column.data_page_offset() < 0 || length < 0 {
                return Err(corrupt(format!(
                    "column {c} of row group {g} has a negative offset or size"
                )));
            }
            let end = (start as u64).checked_add(length as u64);
            if end.is_none_or(|end| end > file_len) {
                return Err(corrupt(format!(
                    "column {c} of row group {g} reaches past the end of the file"
                )));
            }
            let uncompressed = column.uncompressed_size();
            if uncompressed < 0 {
                return Err(corrupt(format!(
                    "column {c} of row group {g} has a negative uncompressed size"
                )));
            }
            if uncompressed > MAX_COLUMN_CHUNK_BYTES {
                return Err(Error::LimitExceeded {
                    what: "a Parquet column chunk".into(),
                    limit: format!("{MAX_COLUMN_CHUNK_BYTES} bytes uncompressed"),
                    detail: format!(
                        "column {c} of row group {g} of {path} declares {uncompressed} bytes"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Runs `read` (a synchronous Parquet decode of `path`) and turns a panic
/// inside the parquet crate into [`Error::Corrupt`]: its page decoders
/// still assert on some malformed data (a map column whose levels
/// disagree, a dictionary index past an empty dictionary: see
/// apache/arrow-rs#10243 and #10107 for the class), which no footer check
/// can rule out. Found by `tests/integration/fuzz_smoke.rs`; the inputs
/// are kept under `engine/fuzz/regressions/checkpoint/`.
pub fn contain_decoder_panics<T>(path: &str, read: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_decoder_panic(read).unwrap_or_else(|message| Err(decoder_failed(path, &message)))
}

/// The error a panic of the Parquet decoder on `path` becomes, `message`
/// being the panic's (see [`contain_decoder_panics`]).
pub fn decoder_failed(path: &str, message: &str) -> Error {
    Error::corrupt(
        path,
        format!("the Parquet decoder failed on its data: {message}"),
    )
}

/// Runs `decode`: its outcome, or the message of a panic inside it.
pub fn catch_decoder_panic<T>(decode: impl FnOnce() -> T) -> std::result::Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode))
        .map_err(|panic| panic_message(panic.as_ref()))
}

/// The text of a panic `catch_unwind` caught (empty-handed: "no message").
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "no message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mutated_checkpoint_is_refused_not_a_panic() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/regressions/checkpoint/mutated-checkpoint-1"
        );
        let bytes = std::fs::read(path).expect("the regression input");
        let err = crate::log::checkpoint::decode_parquet_actions("c.parquet", bytes.into())
            .expect_err("refused");
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }

    #[test]
    fn checkpoints_the_parquet_decoder_panics_on_are_refused() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/regressions/checkpoint"
        );
        let mut decoded = 0;
        for entry in std::fs::read_dir(dir).expect("the regression inputs") {
            let path = entry.expect("entry").path();
            let bytes = std::fs::read(&path).expect("input");
            let err = crate::log::checkpoint::decode_parquet_actions("c.parquet", bytes.into())
                .expect_err("refused");
            assert!(
                matches!(err, Error::Corrupt { .. }),
                "{}: {err}",
                path.display()
            );
            decoded += 1;
        }
        assert!(decoded >= 3, "{decoded}");
    }
}
