//! # Wavelake sharing
//!
//! The Delta Sharing REST protocol's messages, one set of types for both
//! sides: Wavelake's server writes them and its client (in the SQL
//! session, natively and in wasm) reads them. Profiles and listings are in
//! [`messages`]; the newline-delimited lines of `query` and `changes`
//! answers, in both response formats (`parquet` and `delta`), are in
//! [`lines`], and [`query`] turns a whole `query` answer into table state.
//! [`events`] holds the commit events of table subscriptions (a Wavelake
//! extension) and a decoder of the Server-Sent Events they come in.
//!
//! It depends on the kernel's protocol actions only: no IO, no HTTP
//! client, no query engine, and nothing of the server.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod events;
pub mod lines;
pub mod messages;
pub mod query;

pub use lines::{
    DeltaFile, EndStream, FileLine, MetadataLine, ParquetFile, ParquetMetadata, ProtocolLine,
    ResponseLine, SingleAction,
};
pub use messages::{
    ErrorResponse, HistoryItem, Page, SchemaItem, ShareItem, ShareResponse, SharedTableName,
    SharingProfile,
};
pub use query::{SharedFiles, deletion_vector_key, parse_query_response};
