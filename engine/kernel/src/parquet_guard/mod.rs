//! Guards around decoding Parquet that may be corrupt or hostile (data
//! files, checkpoints, uploads): a file's declared layout and page headers
//! are checked against its size and the configured limits before anything
//! is decompressed, and a decoder that panics on a malformed file becomes
//! an error instead of taking the process down.

mod layout;
pub mod page_header;

pub use layout::{
    MAX_COLUMN_CHUNK_BYTES, catch_decoder_panic, check_layout, contain_decoder_panics,
    decoder_failed, panic_message,
};
pub use page_header::{MAX_PAGE_BYTES, check_pages};
