//! A transaction of the TiKV backend: reads, writes and paged scans on a tikv-client
//! transaction, commit with error classification, and cleanup when dropped unfinished.

use tikv_client::{TimestampExt, Transaction};
use tracing::{Instrument, debug, debug_span, warn};

use super::convert::{Pager, in_key_order, into_pair};
use super::error::{Op, to_tito};
use crate::backend::{BackendTx, KeyRange, KvPair, TxKind};
use crate::error::{Result, TitoError};

/// A transaction of the [`TiKV`](super::TiKV) backend.
///
/// Dropped before it finishes (an early return, a cancelled future), it never panics. A
/// pessimistic transaction's locks are released by a rollback spawned on the current tokio
/// runtime; an optimistic one holds nothing on the server until it commits, so nothing is sent.
/// A transaction dropped mid-commit is left alone: its outcome is unknown, and rolling back
/// part of a transaction whose primary key may have committed would break its atomicity. TiKV
/// resolves its locks when they expire.
pub struct TiKVTx {
    /// `None` once the transaction has committed or rolled back.
    tx: Option<Transaction>,
    kind: TxKind,
    scan_page: u32,
    /// Set when `commit` has started talking to the cluster.
    committing: bool,
}

/// What to do with a transaction that is dropped unfinished.
#[derive(Debug, PartialEq, Eq)]
enum Cleanup {
    /// Nothing is held on the server.
    Nothing,
    /// Locks are held: roll back.
    Rollback,
    /// The commit was cut off; its outcome is unknown, so it must not be rolled back.
    LeaveCommit,
}

fn cleanup_for(kind: TxKind, committing: bool) -> Cleanup {
    match (kind, committing) {
        (_, true) => Cleanup::LeaveCommit,
        (TxKind::Pessimistic, false) => Cleanup::Rollback,
        (TxKind::Optimistic | TxKind::ReadOnly, false) => Cleanup::Nothing,
    }
}

impl TiKVTx {
    /// Wraps a transaction begun as `kind`, scanning `scan_page` rows per request.
    pub(super) fn new(tx: Transaction, kind: TxKind, scan_page: u32) -> Self {
        TiKVTx {
            tx: Some(tx),
            kind,
            scan_page,
            committing: false,
        }
    }

    fn active(&mut self) -> Result<&mut Transaction> {
        self.tx
            .as_mut()
            .ok_or_else(|| TitoError::TransactionClosed("the transaction has finished".into()))
    }

    fn writable(&mut self) -> Result<&mut Transaction> {
        if self.kind == TxKind::ReadOnly {
            return Err(TitoError::TransactionClosed(
                "the transaction is read-only".into(),
            ));
        }
        self.active()
    }

    async fn scan_pages(
        &mut self,
        range: KeyRange,
        limit: usize,
        reverse: bool,
    ) -> Result<Vec<KvPair>> {
        let mut pager = Pager::new(range, limit, self.scan_page, reverse);
        let tx = self.active()?;
        let mut rows = Vec::new();
        while let Some((bounds, asked)) = pager.next_request() {
            let page: Vec<KvPair> = if reverse {
                tx.scan_reverse(bounds, asked)
                    .await
                    .map(|pairs| pairs.map(into_pair).collect())
            } else {
                tx.scan(bounds, asked)
                    .await
                    .map(|pairs| pairs.map(into_pair).collect())
            }
            .map_err(|e| to_tito(&e, Op::Access))?;
            pager.record(&page, asked);
            rows.extend(page);
        }
        Ok(rows)
    }
}

impl BackendTx for TiKVTx {
    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let tx = self.active()?;
        tx.get(key.to_vec())
            .await
            .map_err(|e| to_tito(&e, Op::Access))
    }

    async fn batch_get(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let tx = self.active()?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let pairs = tx
            .batch_get(keys.to_vec())
            .await
            .map_err(|e| to_tito(&e, Op::Access))?;
        Ok(in_key_order(keys, pairs))
    }

    async fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        let tx = self.writable()?;
        tx.put(key, value)
            .await
            .map_err(|e| to_tito(&e, Op::Access))
    }

    async fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        let tx = self.writable()?;
        tx.delete(key).await.map_err(|e| to_tito(&e, Op::Access))
    }

    async fn scan(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        self.scan_pages(range, limit, false).await
    }

    async fn scan_reverse(&mut self, range: KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        self.scan_pages(range, limit, true).await
    }

    async fn commit(mut self) -> Result<()> {
        let kind = self.kind;
        let span = debug_span!("tikv.commit", ?kind);
        async move {
            if kind == TxKind::ReadOnly {
                self.tx.take();
                return Ok(());
            }
            self.committing = true;
            let Some(tx) = self.tx.as_mut() else {
                return Err(TitoError::TransactionClosed(
                    "the transaction has finished".into(),
                ));
            };
            let outcome = tx.commit().await;
            let result = match outcome {
                Ok(commit_ts) => {
                    debug!(commit_ts = commit_ts.map(|ts| ts.version()), "committed");
                    Ok(())
                }
                Err(e) => {
                    let error = to_tito(&e, Op::Commit);
                    if let TitoError::CommitOutcomeUnknown(_) = error {
                        // A rollback could undo keys of a commit that did happen.
                        warn!(%error, "tikv commit outcome unknown; leaving its locks to TiKV");
                    } else {
                        // The commit failed: release the locks its prewrite may have taken.
                        debug!(%error, "tikv commit failed; rolling back");
                        if let Err(rollback) = tx.rollback().await {
                            debug!(%rollback, "rollback after a failed commit failed");
                        }
                    }
                    Err(error)
                }
            };
            self.tx.take();
            result
        }
        .instrument(span)
        .await
    }

    async fn rollback(mut self) -> Result<()> {
        let Some(mut tx) = self.tx.take() else {
            return Ok(());
        };
        debug!(kind = ?self.kind, "tikv rollback");
        match cleanup_for(self.kind, self.committing) {
            Cleanup::Rollback => tx.rollback().await.map_err(|e| to_tito(&e, Op::Access)),
            Cleanup::Nothing | Cleanup::LeaveCommit => Ok(()),
        }
    }
}

impl Drop for TiKVTx {
    fn drop(&mut self) {
        let Some(mut tx) = self.tx.take() else {
            return;
        };
        match cleanup_for(self.kind, self.committing) {
            Cleanup::Nothing => {}
            Cleanup::LeaveCommit => {
                warn!("tikv transaction dropped during commit; its outcome is unknown");
            }
            Cleanup::Rollback => match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    debug!("tikv transaction dropped unfinished; rolling it back");
                    runtime.spawn(async move {
                        if let Err(e) = tx.rollback().await {
                            warn!(error = %e, "rollback of a dropped tikv transaction failed");
                        }
                    });
                }
                Err(_) => warn!(
                    "tikv transaction dropped outside a tokio runtime; its locks stay until \
                     they expire"
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_transactions_roll_back_only_what_holds_locks() {
        assert_eq!(cleanup_for(TxKind::Pessimistic, false), Cleanup::Rollback);
        assert_eq!(cleanup_for(TxKind::Optimistic, false), Cleanup::Nothing);
        assert_eq!(cleanup_for(TxKind::ReadOnly, false), Cleanup::Nothing);
        // Never roll back a commit that may have happened.
        assert_eq!(cleanup_for(TxKind::Pessimistic, true), Cleanup::LeaveCommit);
        assert_eq!(cleanup_for(TxKind::Optimistic, true), Cleanup::LeaveCommit);
    }
}
