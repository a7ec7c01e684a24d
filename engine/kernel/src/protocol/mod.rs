//! The Delta Lake protocol: actions, table features and deletion vectors.
//! Everything here is pure: bytes in, values out.

pub mod actions;
pub mod dv;
pub mod features;

pub use actions::{
    ActionBatch, Add, AddCdc, CheckpointMetadata, DomainMetadata, FileKey, Format,
    MAX_ACTION_LINE_BYTES, Metadata, Protocol, Remove, Sidecar, Txn,
};
pub use dv::{DeletionVectorDescriptor, DeletionVectorFile, DvLocation, MAX_INLINE_DV_BYTES};
