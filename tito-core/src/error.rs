//! The one error type of tito.
//!
//! Every fallible operation returns [`TitoError`]. Variants are distinct wherever a caller may
//! act differently: retry ([`TitoError::Conflict`]), never retry
//! ([`TitoError::CommitOutcomeUnknown`]), fix the input ([`TitoError::InvalidQuery`]), and so on.

/// Errors returned by tito.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TitoError {
    /// The record does not exist.
    #[error("not found: {0}")]
    NotFound(String),

    /// A concurrent transaction touched the same data; running the transaction again may succeed.
    #[error("transaction conflict (retryable): {0}")]
    Conflict(String),

    /// The cluster could not serve the request for now (a busy server, a region or leader
    /// moving, a timed-out read); running the transaction again may succeed.
    #[error("backend unavailable (retryable): {0}")]
    Unavailable(String),

    /// The commit may or may not have been applied; it must not be replayed blindly.
    #[error("commit outcome unknown: {0}")]
    CommitOutcomeUnknown(String),

    /// A record with this key already exists.
    #[error("key exists: {0}")]
    KeyExists(String),

    /// A unique index already holds this value for another record.
    #[error(
        "unique index `{index}` of table `{table}` already holds this value (record `{existing_id}`)"
    )]
    UniqueViolation {
        /// Table of the model.
        table: String,
        /// Name of the unique index.
        index: String,
        /// Id of the record that holds the value.
        existing_id: String,
    },

    /// The record changed since it was read: its stored version is not the one the write
    /// carried (see [`TitoModelTrait::version_field`](crate::TitoModelTrait::version_field)).
    /// Read it again, reapply the change, write again.
    #[error("`{table}` record `{id}` changed since it was read: the write carried version \
             {expected}, {}", match stored {
                 Some(stored) => format!("the stored record is at version {stored}"),
                 None => "the record is not stored".to_string(),
             })]
    VersionConflict {
        /// Table of the model.
        table: String,
        /// The record's id.
        id: String,
        /// The version the write carried.
        expected: u64,
        /// The stored record's version; `None` when it is not stored.
        stored: Option<u64>,
    },

    /// The index cannot answer queries yet: the table had rows when it was added, and until
    /// `reindex` has built their entries it would miss some of them.
    #[error(
        "index `{index}` of table `{table}` is being built: run `reindex` on the model before \
         querying it"
    )]
    IndexNotReady {
        /// Table of the model.
        table: String,
        /// Name of the index.
        index: String,
    },

    /// The table has an index the writing model does not declare and cannot maintain from the
    /// registered definition (it has a condition or a generator), so the write would leave it
    /// out of step with the record.
    #[error(
        "table `{table}` has the index `{index}`, which this model does not declare and cannot \
         maintain: write through a model that declares it, or reindex through this one to drop it"
    )]
    IndexNotMaintained {
        /// Table of the model.
        table: String,
        /// Name of the index.
        index: String,
    },

    /// The query does not fit the index or the model (unknown index, wrong values, ...).
    #[error("invalid query: {0}")]
    InvalidQuery(String),

    /// An argument is out of its range (an event scheduled too far ahead, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The cursor is malformed, tampered with, or belongs to another query.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),

    /// Stored bytes could not be decoded.
    #[error("cannot decode the value at key {key}: {reason}")]
    Decode {
        /// The key, printed readably.
        key: String,
        /// What went wrong.
        reason: String,
    },

    /// A value could not be serialized for storage.
    #[error("cannot serialize: {0}")]
    Serialize(String),

    /// A key or value exceeds what the backends accept.
    #[error("{what} too large: {size} bytes, the limit is {limit}")]
    TooLarge {
        /// `"key"` or `"value"`.
        what: &'static str,
        /// Size of the rejected item.
        size: usize,
        /// The limit.
        limit: usize,
    },

    /// The database was written by an incompatible version of tito.
    #[error("incompatible database format: {0}")]
    IncompatibleFormat(String),

    /// The transaction was already committed or rolled back, or is read-only.
    #[error("transaction unusable: {0}")]
    TransactionClosed(String),

    /// The storage backend failed.
    #[error("backend error: {0}")]
    Backend(String),

    /// An event handler or application code failed.
    #[error("{0}")]
    Custom(String),
}

impl TitoError {
    /// Whether running the same transaction again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TitoError::Conflict(_) | TitoError::Unavailable(_))
    }

    /// A short stable name of the error's kind (`"conflict"`, `"not_found"`, ...), for metric
    /// labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            TitoError::NotFound(_) => "not_found",
            TitoError::Conflict(_) => "conflict",
            TitoError::Unavailable(_) => "unavailable",
            TitoError::CommitOutcomeUnknown(_) => "commit_outcome_unknown",
            TitoError::KeyExists(_) => "key_exists",
            TitoError::UniqueViolation { .. } => "unique_violation",
            TitoError::VersionConflict { .. } => "version_conflict",
            TitoError::IndexNotReady { .. } => "index_not_ready",
            TitoError::IndexNotMaintained { .. } => "index_not_maintained",
            TitoError::InvalidQuery(_) => "invalid_query",
            TitoError::InvalidArgument(_) => "invalid_argument",
            TitoError::InvalidCursor(_) => "invalid_cursor",
            TitoError::Decode { .. } => "decode",
            TitoError::Serialize(_) => "serialize",
            TitoError::TooLarge { .. } => "too_large",
            TitoError::IncompatibleFormat(_) => "incompatible_format",
            TitoError::TransactionClosed(_) => "transaction_closed",
            TitoError::Backend(_) => "backend",
            TitoError::Custom(_) => "custom",
        }
    }

    /// An application error, e.g. from an event handler.
    pub fn custom(message: impl std::fmt::Display) -> Self {
        TitoError::Custom(message.to_string())
    }
}

/// Result alias used throughout tito.
pub type Result<T, E = TitoError> = std::result::Result<T, E>;
