//! What a tikv-client error means to a caller: retry, key exists, commit outcome unknown, or fail.
//!
//! tikv-client nests per-key errors inside `ExtractedErrors`, `MultipleKeyErrors` and
//! `PessimisticLockError`, so the classifier walks the whole tree. It is pure, and unit tested
//! on constructed errors, since no cluster is available to provoke them.

use tikv_client::{Error, ProtoKeyError};

use crate::error::TitoError;

/// What an error means, from least to most decisive: when a nested error holds several
/// meanings, the greatest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Class {
    /// Anything else: the operation failed.
    Other,
    /// A gRPC transport or status error: the request may or may not have been applied.
    Transport,
    /// The key already exists.
    KeyExists,
    /// A concurrent transaction won; running the transaction again may succeed. This proves the
    /// transaction did not commit, so it outranks a transport error in the same reply.
    Conflict,
    /// tikv-client itself says the commit may have been applied.
    Undetermined,
}

/// Where the error was returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// Beginning a transaction, reading or writing.
    Access,
    /// `commit()`: a lost reply may hide an applied commit.
    Commit,
}

/// The meaning of `error`, found by walking its nested errors.
pub(super) fn classify(error: &Error) -> Class {
    match error {
        Error::UndeterminedError(_) => Class::Undetermined,
        Error::DuplicateKeyInsertion => Class::KeyExists,
        Error::ResolveLockError(_) => Class::Conflict,
        Error::KeyError(key_error) => classify_key_error(key_error),
        Error::ExtractedErrors(errors) | Error::MultipleKeyErrors(errors) => {
            errors.iter().map(classify).max().unwrap_or(Class::Other)
        }
        Error::PessimisticLockError { inner, .. } => classify(inner),
        Error::Grpc(_) | Error::GrpcAPI(_) => Class::Transport,
        _ => Class::Other,
    }
}

fn classify_key_error(key_error: &ProtoKeyError) -> Class {
    if key_error.already_exist.is_some() {
        Class::KeyExists
    } else if key_error.conflict.is_some()
        || key_error.deadlock.is_some()
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
        (Class::Undetermined, _) | (Class::Transport, Op::Commit) => {
            TitoError::CommitOutcomeUnknown(message)
        }
        (Class::Conflict, _) => TitoError::Conflict(message),
        (Class::KeyExists, _) => TitoError::KeyExists(message),
        (Class::Other | Class::Transport, _) => TitoError::Backend(message),
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

    #[test]
    fn key_errors_that_a_retry_can_fix_are_conflicts() {
        assert_eq!(classify(&write_conflict()), Class::Conflict);
        let deadlock = key_error(ProtoKeyError {
            deadlock: Some(Default::default()),
            ..Default::default()
        });
        assert_eq!(classify(&deadlock), Class::Conflict);
        let retryable = key_error(ProtoKeyError {
            retryable: "TxnLockNotFound".into(),
            ..Default::default()
        });
        assert_eq!(classify(&retryable), Class::Conflict);
        assert_eq!(
            classify(&Error::ResolveLockError(Vec::new())),
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
        let mixed = Error::ExtractedErrors(vec![already_exists(), write_conflict()]);
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
    fn transport_errors_leave_a_commit_in_doubt_but_not_a_read() {
        // tonic errors cannot be built without depending on tonic, so the rule is checked on
        // the class that `classify` gives `Error::Grpc` and `Error::GrpcAPI`.
        let commit = tito_error(Class::Transport, Op::Commit, "unavailable".into());
        assert!(matches!(commit, TitoError::CommitOutcomeUnknown(_)));
        let read = tito_error(Class::Transport, Op::Access, "unavailable".into());
        assert!(matches!(read, TitoError::Backend(_)));
    }

    #[test]
    fn other_errors_are_backend_errors_with_the_text() {
        let aborted = key_error(ProtoKeyError {
            abort: "TxnNotFound".into(),
            ..Default::default()
        });
        assert_eq!(classify(&aborted), Class::Other);
        match to_tito(&Error::StringError("region unavailable".into()), Op::Commit) {
            TitoError::Backend(message) => assert!(message.contains("region unavailable")),
            other => panic!("expected a backend error, got {other:?}"),
        }
    }
}
