//! The engine's error type: one enum whose variants callers branch on.

use std::fmt;
use std::sync::Arc;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading or querying a Delta table.
///
/// Variants say whose fault an error is: the caller's (`InvalidArgument`,
/// `Sql`), the table's (`Corrupt`, `InvalidTable`, `DeletionVector`), an
/// unsupported protocol (`UnsupportedFeature`), or the environment
/// (`Storage`).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No Delta table at the location: the `_delta_log` is missing or empty.
    #[error("no Delta table at {location}: {reason}")]
    TableNotFound {
        /// Where the table was looked for.
        location: String,
        /// What was missing.
        reason: String,
    },
    /// A statement names a table the session does not have.
    #[error("no table named {name}")]
    UnknownTable {
        /// The name as the statement resolves it.
        name: String,
    },
    /// A file the table needs is missing from storage.
    #[error("file not found: {path}")]
    NotFound {
        /// The missing file, relative to the table root where possible.
        path: String,
    },
    /// A file that must be new already exists (a commit lost its race).
    #[error("file already exists: {path}")]
    AlreadyExists {
        /// The file, relative to the table root.
        path: String,
    },
    /// A concurrent commit won the race for a version and conflicts with
    /// this one; nothing of this commit was written.
    #[error("commit conflict at version {version}: {reason}")]
    CommitConflict {
        /// The version the winning commit took.
        version: i64,
        /// What conflicts.
        reason: String,
    },
    /// The store failed while the commit was being made, in a way that
    /// leaves open whether it was: it may be in the log. Its files are
    /// kept (they are referenced if it was, and VACUUM removes them if
    /// not); look at the table's history before making the change again.
    #[error(
        "the commit of version {version} may or may not have been made ({reason}); check the \
         table's history before retrying"
    )]
    CommitOutcomeUnknown {
        /// The version the commit tried to take.
        version: i64,
        /// What failed.
        reason: String,
    },
    /// The storage cannot be written (a static HTTP host, presigned URLs).
    #[error("storage at {location} is read-only")]
    ReadOnly {
        /// The storage's location.
        location: String,
    },
    /// A file exists but its contents are not what the protocol allows.
    #[error("corrupt file {path}: {reason}")]
    Corrupt {
        /// The offending file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The log as a whole does not form a valid table (missing protocol or
    /// metadata, versions not contiguous, ...).
    #[error("invalid Delta table: {reason}")]
    InvalidTable {
        /// What is wrong.
        reason: String,
    },
    /// The table needs a reader feature or protocol version this engine does
    /// not implement.
    #[error("unsupported Delta feature: {feature}")]
    UnsupportedFeature {
        /// The feature's protocol name, or a description of the requirement.
        feature: String,
    },
    /// A deletion vector could not be loaded or does not match its descriptor.
    #[error("bad deletion vector for {data_file}: {reason}")]
    DeletionVector {
        /// The data file the deletion vector belongs to.
        data_file: String,
        /// What is wrong with the deletion vector.
        reason: String,
    },
    /// The requested version does not exist or can no longer be read.
    #[error("version {version} of the table is not available: {reason}")]
    VersionNotFound {
        /// The version asked for.
        version: i64,
        /// Why it cannot be read.
        reason: String,
    },
    /// A server refused the credentials (a missing, wrong or expired token,
    /// or a table not granted).
    #[error("access denied: {reason}")]
    AccessDenied {
        /// What the server said.
        reason: String,
    },
    /// A storage refused to serve a file (HTTP 401 or 403, or Google Cloud
    /// Storage's 400 ExpiredToken): the host needs credentials the reader
    /// does not have, or a presigned URL expired.
    #[error("access to {path} was refused (HTTP {status})")]
    Forbidden {
        /// The file refused.
        path: String,
        /// The HTTP status.
        status: u16,
    },
    /// A presigned URL was refused and no fresh one could be had: it has
    /// expired (or its signature no longer holds).
    #[error("the presigned URL of {path} has expired: {reason}")]
    UrlExpired {
        /// The file whose URL expired.
        path: String,
        /// Why no fresh URL was used.
        reason: String,
    },
    /// The table did not record change data at a version of the range asked
    /// for (`delta.enableChangeDataFeed` was not true).
    #[error("version {version} of the table has no change data: {reason}")]
    ChangeDataNotRecorded {
        /// The first version without change data.
        version: i64,
        /// Why.
        reason: String,
    },
    /// The requested timestamp is outside the table's history.
    #[error("no version of the table at timestamp {timestamp}: {reason}")]
    TimestampOutOfRange {
        /// The timestamp asked for, as given.
        timestamp: String,
        /// Why no version matches.
        reason: String,
    },
    /// Rows to write do not fit the table's schema (a missing or unknown
    /// column, a type that cannot be converted without loss).
    #[error("schema mismatch: {0}")]
    SchemaMismatch(String),
    /// Rows to write break a constraint of the table (NOT NULL).
    #[error("constraint violated: {0}")]
    ConstraintViolation(String),
    /// A table is already registered or stored under the name or location.
    #[error("table already exists: {0}")]
    TableExists(String),
    /// The statement is refused here: the session may only read, or the
    /// sandbox forbids it (files on the server, other namespaces, session
    /// settings).
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// The caller passed an argument the engine cannot use.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An SQL statement could not be parsed, planned or executed.
    #[error("{0}")]
    Sql(String),
    /// The storage cannot make a commit exclusive: it does not refuse a
    /// second put-if-absent of the same key, so two writers could both
    /// take one version and one commit be lost. Nothing is written there.
    #[error(
        "storage at {location} does not make commits exclusive ({reason}); writes are refused \
         there, since concurrent commits could overwrite each other"
    )]
    UnsafeStorage {
        /// The storage's location.
        location: String,
        /// What the probe saw.
        reason: String,
    },
    /// An uploaded file is not valid in the format it was sent as; nothing
    /// of it was written.
    #[error("the upload is not valid {format}: {reason}")]
    InvalidUpload {
        /// The format it was sent as (`CSV`, `Parquet`, …).
        format: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An input is larger than a configured limit allows; nothing was done.
    #[error("{what} exceeds the limit of {limit}: {detail}")]
    LimitExceeded {
        /// What is limited (a log file, a decompressed page, …).
        what: String,
        /// The limit, with its unit.
        limit: String,
        /// Which input and by how much.
        detail: String,
    },
    /// A table's write buffer holds as many rows as it may until its next
    /// flush; nothing was written, and the same rows may be sent again
    /// after `retry_after_ms`.
    #[error("the write buffer of {table} is full ({detail}); retry in {retry_after_ms} ms")]
    BufferFull {
        /// The table.
        table: String,
        /// How full, against which limit.
        detail: String,
        /// When a flush should have made room.
        retry_after_ms: u64,
    },
    /// The cluster a query was sent to cannot be reached; nothing ran.
    #[error("the cluster's scheduler at {scheduler} cannot be reached: {reason}")]
    ClusterUnavailable {
        /// The scheduler's address.
        scheduler: String,
        /// Why it cannot be reached.
        reason: String,
    },
    /// A query cannot be spread over a group of workers (its plan holds an
    /// operator whose partitions the group cannot place); nothing ran, and
    /// it can run whole in one place.
    #[error("the query cannot be spread over workers: {reason}")]
    NotSpreadable {
        /// The operator or partitioning in the way.
        reason: String,
    },
    /// Workers running one query together could not exchange its rows: a
    /// message was malformed, the workers planned the query differently,
    /// or the query was cancelled on another worker.
    #[error("the worker group failed: {reason}")]
    WorkerGroup {
        /// What went wrong.
        reason: String,
    },
    /// A Wavelake server's SQL API refused a query sent to it, for a reason
    /// none of the other variants names (busy, out of time or memory, …).
    #[error("the server refused the query ({code}): {message}")]
    ServerRefused {
        /// The HTTP status.
        status: u16,
        /// The server's error code.
        code: String,
        /// What the server said.
        message: String,
    },
    /// There is no Wavelake SQL API at the URL a query was to be sent to
    /// (the server is another Delta Sharing server, or an older one).
    #[error("no Wavelake SQL API at {url}: {reason}")]
    NoSqlApi {
        /// The URL.
        url: String,
        /// What was there instead.
        reason: String,
    },
    /// The storage backend failed for a reason other than a missing file.
    #[error("storage error on {path}: {message}")]
    Storage {
        /// The file or prefix being accessed.
        path: String,
        /// The backend's message.
        message: String,
    },
    /// An error from Arrow while decoding or converting data (shared, so
    /// that the error is cheap to copy to every partition that hit it).
    #[error("arrow error: {0}")]
    Arrow(#[source] Arc<arrow::error::ArrowError>),
    /// An error from the query engine (shared, as `Arrow`).
    #[error("query error: {0}")]
    DataFusion(#[source] Arc<datafusion_common::error::DataFusionError>),
}

impl Error {
    /// A `Corrupt` error for `path`.
    pub fn corrupt(path: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self::Corrupt {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    /// An `InvalidTable` error.
    pub fn invalid_table(reason: impl Into<String>) -> Self {
        Self::InvalidTable {
            reason: reason.into(),
        }
    }

    /// A stable, machine-readable name for the kind of error, for callers
    /// on the other side of a process or language boundary (HTTP, JavaScript).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TableNotFound { .. } | Self::UnknownTable { .. } => "TABLE_NOT_FOUND",
            Self::NotFound { .. } => "FILE_NOT_FOUND",
            Self::AlreadyExists { .. } => "ALREADY_EXISTS",
            Self::ReadOnly { .. } => "READ_ONLY",
            Self::CommitConflict { .. } => "COMMIT_CONFLICT",
            Self::CommitOutcomeUnknown { .. } => "COMMIT_OUTCOME_UNKNOWN",
            Self::Corrupt { .. } => "CORRUPT_FILE",
            Self::InvalidTable { .. } => "INVALID_TABLE",
            Self::UnsupportedFeature { .. } => "UNSUPPORTED_FEATURE",
            Self::DeletionVector { .. } => "BAD_DELETION_VECTOR",
            Self::VersionNotFound { .. } => "VERSION_NOT_FOUND",
            Self::ChangeDataNotRecorded { .. } => "CHANGE_DATA_NOT_RECORDED",
            Self::AccessDenied { .. } | Self::Forbidden { .. } => "UNAUTHORIZED",
            Self::UrlExpired { .. } => "EXPIRED_URL",
            Self::TimestampOutOfRange { .. } => "TIMESTAMP_OUT_OF_RANGE",
            Self::SchemaMismatch(_) => "SCHEMA_MISMATCH",
            Self::ConstraintViolation(_) => "CONSTRAINT_VIOLATION",
            Self::TableExists(_) => "TABLE_EXISTS",
            Self::InvalidArgument(_) => "INVALID_ARGUMENT",
            Self::InvalidUpload { .. } => "INVALID_UPLOAD",
            Self::NotAllowed(_) => "NOT_ALLOWED",
            Self::Sql(_) => "SQL_ERROR",
            Self::Storage { .. } => "STORAGE_ERROR",
            Self::UnsafeStorage { .. } => "UNSAFE_STORAGE",
            Self::LimitExceeded { .. } => "LIMIT_EXCEEDED",
            Self::BufferFull { .. } => "BUFFER_FULL",
            Self::ClusterUnavailable { .. } => "CLUSTER_UNAVAILABLE",
            Self::NotSpreadable { .. } => "NOT_SPREADABLE",
            Self::WorkerGroup { .. } => "WORKER_GROUP",
            Self::ServerRefused { .. } => "SERVER_REFUSED",
            Self::NoSqlApi { .. } => "NO_SQL_API",
            Self::Arrow(_) => "ARROW_ERROR",
            Self::DataFusion(_) => "QUERY_ERROR",
        }
    }

    /// True when a failed commit may still be in the log: the files it
    /// wrote must then not be deleted.
    pub fn commit_may_have_landed(&self) -> bool {
        matches!(self, Self::CommitOutcomeUnknown { .. })
    }

    /// True when the error means a file was not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

impl From<datafusion_common::error::DataFusionError> for Error {
    fn from(err: datafusion_common::error::DataFusionError) -> Self {
        use datafusion_common::error::DataFusionError as Df;
        // Unwrap errors the engine itself raised inside DataFusion callbacks.
        match err {
            Df::External(inner) => match inner.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Self::DataFusion(Arc::new(Df::External(other))),
            },
            Df::Context(ctx, inner) => match Self::from(*inner) {
                Self::DataFusion(df) => {
                    Self::DataFusion(Arc::new(Df::Context(ctx, Box::new(owned(df)))))
                }
                ours => ours,
            },
            Df::SQL(..) | Df::Plan(..) | Df::SchemaError(..) | Df::NotImplemented(..) => {
                Self::Sql(err.strip_backtrace())
            }
            other => match engine_error_in_chain(&other) {
                Some(ours) => ours,
                None => Self::DataFusion(Arc::new(other)),
            },
        }
    }
}

/// The first engine error among `err`'s sources (a storage error surfacing
/// through the Parquet reader, say), copied out.
fn engine_error_in_chain(err: &(dyn std::error::Error + 'static)) -> Option<Error> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(ours) = e.downcast_ref::<Error>() {
            // Arrow's and DataFusion's own errors stay in their chain.
            return match ours {
                Error::Arrow(_) | Error::DataFusion(_) => None,
                text => Some(text.clone()),
            };
        }
        current = e.source();
    }
    None
}

impl From<Error> for datafusion_common::error::DataFusionError {
    fn from(err: Error) -> Self {
        match err {
            Error::DataFusion(df) => owned(df),
            other => Self::External(Box::new(other)),
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(err: arrow::error::ArrowError) -> Self {
        Self::Arrow(Arc::new(err))
    }
}

/// The DataFusion error itself when nothing else holds it, else a shared
/// one.
fn owned(
    df: Arc<datafusion_common::error::DataFusionError>,
) -> datafusion_common::error::DataFusionError {
    Arc::try_unwrap(df).unwrap_or_else(datafusion_common::error::DataFusionError::Shared)
}

#[cfg(test)]
mod tests {
    use datafusion_common::error::DataFusionError as Df;

    use super::*;

    #[test]
    fn an_engine_error_shared_by_partitions_comes_back_as_itself() {
        let corrupt = Error::corrupt("part-0.parquet", "bad footer");
        let shared = Df::Shared(Arc::new(Df::External(Box::new(corrupt))));
        let back = Error::from(Df::Context("reading".into(), Box::new(shared)));
        assert!(
            matches!(&back, Error::Corrupt { path, .. } if path == "part-0.parquet"),
            "{back:?}"
        );
    }

    #[test]
    fn a_datafusion_error_goes_back_to_datafusion_unwrapped_when_not_shared() {
        let error = Error::from(Df::ResourcesExhausted("memory".into()));
        let copy = error.clone();
        assert_eq!(copy.code(), "QUERY_ERROR");
        drop(error);
        assert!(matches!(Df::from(copy), Df::ResourcesExhausted(_)));
        let shared = Error::from(Df::ResourcesExhausted("memory".into()));
        let _held = shared.clone();
        assert!(matches!(Df::from(shared), Df::Shared(_)));
    }
}
