//! What a tikv-client error means to a caller: retry, key exists, commit outcome unknown, or fail.
//!
//! tikv-client nests per-key errors inside `ExtractedErrors`, `MultipleKeyErrors` and
//! `PessimisticLockError`, so the classifier walks the whole tree. It is pure, and unit tested
//! on constructed errors.
//!
//! The rule at commit: only an error that proves the transaction did not commit (a write
//! conflict, a lock it lost or could not get past, an existing key) is a
//! failure that may be rolled back. tikv-client retries region and transport errors inside
//! `commit()`, and one that outlasts its retries may hide a primary key that did commit, so every
//! other error is [`TitoError::CommitOutcomeUnknown`] and is never rolled back.

use tikv_client::{Error, ProtoKeyError};

use crate::error::TitoError;

/// What an error means, from least to most decisive: when a nested error holds several
/// meanings, the greatest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Class {
    /// Anything else: the operation failed.
    Other,
    /// The cluster could not serve the request for now (busy, regions or leaders moving,
    /// unreachable, timed out); the request may or may not have been applied.
    Transient,
    /// A reply was over the gRPC size limit: ask for less.
    ReplyTooLarge,
    /// The key already exists.
    KeyExists,
    /// A concurrent transaction won; running the transaction again may succeed. This proves the
    /// transaction did not commit, so it outranks the rest of the reply.
    Conflict,
    /// tikv-client itself says the commit may have been applied.
    Undetermined,
}

impl Class {
    /// Whether an error of this class from `commit()` proves that nothing committed, so the
    /// transaction's locks may be rolled back.
    pub(super) fn proves_no_commit(self) -> bool {
        matches!(self, Class::Conflict | Class::KeyExists)
    }
}

/// Where the error was returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// Beginning a transaction, reading, locking or writing.
    Access,
    /// `commit()`: a lost reply may hide an applied commit.
    Commit,
}

/// gRPC status codes (tonic's `Code` values) that mean "not now" rather than "never".
const CANCELLED: i32 = 1;
const DEADLINE_EXCEEDED: i32 = 4;
const RESOURCE_EXHAUSTED: i32 = 8;
const ABORTED: i32 = 10;
const OUT_OF_RANGE: i32 = 11;
const UNAVAILABLE: i32 = 14;

/// The meaning of `error`, found by walking its nested errors.
pub(super) fn classify(error: &Error) -> Class {
    match error {
        Error::UndeterminedError(_) => Class::Undetermined,
        Error::DuplicateKeyInsertion => Class::KeyExists,
        // A lock of another transaction was in the way and could not be resolved yet.
        Error::ResolveLockError(_) | Error::TxnNotFound(_) => Class::Conflict,
        Error::KeyError(key_error) => classify_key_error(key_error),
        Error::ExtractedErrors(errors) | Error::MultipleKeyErrors(errors) => {
            errors.iter().map(classify).max().unwrap_or(Class::Other)
        }
        Error::PessimisticLockError { inner, .. } => classify(inner),
        Error::GrpcAPI(status) => classify_status(status.code() as i32, status.message()),
        Error::Grpc(_)
        | Error::RegionError(_)
        | Error::RegionForKeyNotFound { .. }
        | Error::RegionForRangeNotFound { .. }
        | Error::RegionNotFoundInResponse { .. }
        | Error::LeaderNotFound { .. }
        | Error::NoCurrentRegions
        | Error::EntryNotFoundInRegionCache => Class::Transient,
        _ => Class::Other,
    }
}

/// The meaning of a gRPC status with this code and message.
fn classify_status(code: i32, message: &str) -> Class {
    match code {
        // tonic's decoder refuses a reply over the limit with this code and message.
        OUT_OF_RANGE if message.contains("too large") => Class::ReplyTooLarge,
        CANCELLED | DEADLINE_EXCEEDED | RESOURCE_EXHAUSTED | ABORTED | UNAVAILABLE => {
            Class::Transient
        }
        _ => Class::Other,
    }
}

fn classify_key_error(key_error: &ProtoKeyError) -> Class {
    if key_error.already_exist.is_some() {
        Class::KeyExists
    } else if key_error.conflict.is_some()
        || key_error.deadlock.is_some()
        || key_error.txn_not_found.is_some()
        || !key_error.retryable.is_empty()
    {
        Class::Conflict
    } else {
        Class::Other
    }
}

/// The tito error for an error of class `class` returned by `op`, described by `message`.
pub(super) fn tito_error(class: Class, op: Op, message: String) -> TitoError {
    match (class, op) {
        (Class::Conflict, _) => TitoError::Conflict(message),
        (Class::KeyExists, _) => TitoError::KeyExists(message),
        (_, Op::Commit) | (Class::Undetermined, _) => TitoError::CommitOutcomeUnknown(message),
        (Class::Transient, Op::Access) => TitoError::Unavailable(message),
        (Class::ReplyTooLarge | Class::Other, Op::Access) => TitoError::Backend(message),
    }
}

/// The tito error for `error` returned by `op`.
pub(super) fn to_tito(error: &Error, op: Op) -> TitoError {
    tito_error(classify(error), op, format!("tikv: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_error(error: ProtoKeyError) -> Error {
        Error::KeyError(Box::new(error))
    }

    fn write_conflict() -> Error {
        key_error(ProtoKeyError {
            conflict: Some(Default::default()),
            ..Default::default()
        })
    }

    fn already_exists() -> Error {
        key_error(ProtoKeyError {
            already_exist: Some(Default::default()),
            ..Default::default()
        })
    }

    fn region_error() -> Error {
        Error::RegionError(Box::new(tikv_client::ProtoRegionError {
            server_is_busy: Some(Default::default()),
            ..Default::default()
        }))
    }

    #[test]
    fn key_errors_that_a_retry_can_fix_are_conflicts() {
        assert_eq!(classify(&write_conflict()), Class::Conflict);
        let deadlock = key_error(ProtoKeyError {
            deadlock: Some(Default::default()),
            ..Default::default()
        });
        assert_eq!(classify(&deadlock), Class::Conflict);
        // An expired pessimistic lock, or a lock resolved by another transaction.
        let retryable = key_error(ProtoKeyError {
            retryable: "PessimisticLockNotFound".into(),
            ..Default::default()
        });
        assert_eq!(classify(&retryable), Class::Conflict);
        assert_eq!(
            classify(&Error::ResolveLockError(Vec::new())),
            Class::Conflict
        );
        // Seen live: a commit met the lock of a transaction that had just rolled back, and
        // resolving it found no such transaction. Nothing of the commit was applied.
        let not_found = Error::MultipleKeyErrors(vec![key_error(ProtoKeyError {
            txn_not_found: Some(Default::default()),
            ..Default::default()
        })]);
        assert_eq!(classify(&not_found), Class::Conflict);
        assert!(classify(&not_found).proves_no_commit());
        assert_eq!(
            classify(&Error::TxnNotFound(Default::default())),
            Class::Conflict
        );
    }

    #[test]
    fn existing_keys_are_key_exists() {
        assert_eq!(classify(&already_exists()), Class::KeyExists);
        assert_eq!(classify(&Error::DuplicateKeyInsertion), Class::KeyExists);
        let error = tito_error(classify(&already_exists()), Op::Commit, "x".into());
        assert!(matches!(error, TitoError::KeyExists(_)));
    }

    #[test]
    fn nested_key_errors_are_found() {
        // The shape a lost optimistic race returns: MultipleKeyErrors([KeyError { conflict }]).
        let nested = Error::MultipleKeyErrors(vec![Error::ExtractedErrors(vec![
            Error::StringError("unrelated".into()),
            write_conflict(),
        ])]);
        assert_eq!(classify(&nested), Class::Conflict);
        let pessimistic = Error::PessimisticLockError {
            inner: Box::new(Error::ExtractedErrors(vec![write_conflict()])),
            success_keys: Vec::new(),
        };
        assert_eq!(classify(&pessimistic), Class::Conflict);
        assert!(to_tito(&pessimistic, Op::Access).is_retryable());
        let exists = Error::ExtractedErrors(vec![already_exists()]);
        assert_eq!(classify(&exists), Class::KeyExists);
        assert_eq!(
            classify(&Error::MultipleKeyErrors(Vec::new())),
            Class::Other
        );
    }

    #[test]
    fn a_conflict_outranks_other_errors_in_the_same_reply() {
        let mixed =
            Error::ExtractedErrors(vec![already_exists(), region_error(), write_conflict()]);
        assert_eq!(classify(&mixed), Class::Conflict);
        let undetermined = Error::UndeterminedError(Box::new(write_conflict()));
        assert_eq!(classify(&undetermined), Class::Undetermined);
    }

    #[test]
    fn undetermined_commits_are_never_reported_as_failed_or_retryable() {
        let error = Error::UndeterminedError(Box::new(Error::StringError("lost reply".into())));
        let tito = to_tito(&error, Op::Commit);
        assert!(
            matches!(tito, TitoError::CommitOutcomeUnknown(_)),
            "{tito:?}"
        );
        assert!(!tito.is_retryable());
    }

    #[test]
    fn only_errors_that_prove_no_commit_allow_a_rollback() {
        assert!(classify(&write_conflict()).proves_no_commit());
        assert!(classify(&already_exists()).proves_no_commit());
        // A commit of the primary key retried by tikv-client until it ran out of region
        // retries, or cut off by the network: the primary may have committed.
        for error in [
            region_error(),
            Error::LeaderNotFound {
                region: Default::default(),
            },
            Error::StringError("backoff exhausted".into()),
            Error::UndeterminedError(Box::new(region_error())),
        ] {
            let class = classify(&error);
            assert!(!class.proves_no_commit(), "{error:?}");
            assert!(
                matches!(
                    to_tito(&error, Op::Commit),
                    TitoError::CommitOutcomeUnknown(_)
                ),
                "{error:?}"
            );
        }
    }

    #[test]
    fn transient_cluster_errors_are_retryable_except_at_commit() {
        let busy = region_error();
        assert_eq!(classify(&busy), Class::Transient);
        let read = to_tito(&busy, Op::Access);
        assert!(matches!(read, TitoError::Unavailable(_)), "{read:?}");
        assert!(read.is_retryable());
        for error in [
            Error::RegionForKeyNotFound { key: Vec::new() },
            Error::NoCurrentRegions,
            Error::LeaderNotFound {
                region: Default::default(),
            },
            Error::ExtractedErrors(vec![busy]),
        ] {
            assert!(to_tito(&error, Op::Access).is_retryable(), "{error:?}");
        }
        for code in [DEADLINE_EXCEEDED, UNAVAILABLE, RESOURCE_EXHAUSTED] {
            assert_eq!(classify_status(code, "timeout"), Class::Transient);
        }
        let commit = tito_error(Class::Transient, Op::Commit, "unavailable".into());
        assert!(matches!(commit, TitoError::CommitOutcomeUnknown(_)));
    }

    #[test]
    fn an_oversized_reply_is_recognised() {
        let message = "Error, message length too large: found 4718592 bytes, the limit is: \
                       4194304 bytes";
        assert_eq!(classify_status(OUT_OF_RANGE, message), Class::ReplyTooLarge);
        assert_eq!(classify_status(OUT_OF_RANGE, "seek past end"), Class::Other);
        let error = tito_error(Class::ReplyTooLarge, Op::Access, message.into());
        assert!(matches!(error, TitoError::Backend(_)));
    }

    #[test]
    fn other_errors_are_backend_errors_with_the_text() {
        let aborted = key_error(ProtoKeyError {
            abort: "TxnNotFound".into(),
            ..Default::default()
        });
        assert_eq!(classify(&aborted), Class::Other);
        match to_tito(&Error::StringError("bad request".into()), Op::Access) {
            TitoError::Backend(message) => assert!(message.contains("bad request")),
            other => panic!("expected a backend error, got {other:?}"),
        }
    }
}
