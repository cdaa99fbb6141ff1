//! The TiKV backend: tito on a distributed, replicated TiKV cluster, reached through its PD
//! endpoints with tikv-client's transactional API (feature `tikv`).
//!
//! What TiKV gives: optimistic transactions (the default) are snapshot isolation. Reads see the
//! snapshot taken at begin, and a write-write conflict on any key fails the later commit with a
//! retryable [`TitoError::Conflict`], but read-write conflicts are not detected: two
//! transactions that each read a key the other writes both commit (write skew). Pessimistic
//! transactions ([`TxKind::Pessimistic`], or [`TiKVConfig::pessimistic`]) lock each key as it is
//! written, so a contended writer waits instead of failing at commit. A commit whose reply was
//! lost is [`TitoError::CommitOutcomeUnknown`], never a failure or a success.
//!
//! Scans are split into pages of [`TiKVConfig::scan_page`] rows, so no reply nears TiKV's 4 MiB
//! per-region limit. A transaction dropped before it finishes is cleaned up without panicking
//! (tikv-client panics by default): see [`TiKVTx`].
//!
//! The backend conformance suite runs against a live cluster when one is named:
//! `TITO_TIKV_PD=127.0.0.1:2379 cargo test --features tikv --test backend_conformance`.

mod convert;
mod error;

use std::time::Duration;

use tikv_client::{CheckLevel, TimestampExt, Transaction, TransactionClient, TransactionOptions};
use tracing::{Instrument, debug, debug_span, warn};

use self::convert::{Pager, in_key_order, into_pair};
use self::error::{Op, to_tito};
use super::{Backend, BackendTx, KeyRange, KvPair, TxKind};
use crate::engine::TitoEngine;
use crate::error::{Result, TitoError};

/// Options of the TiKV backend; start from `TiKVConfig::default()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TiKVConfig {
    pessimistic: bool,
    request_timeout: Duration,
    scan_page: u32,
}

impl Default for TiKVConfig {
    fn default() -> Self {
        TiKVConfig {
            pessimistic: false,
            request_timeout: Duration::from_secs(2),
            scan_page: 1000,
        }
    }
}

impl TiKVConfig {
    /// Runs read-write transactions pessimistically by default (off by default).
    ///
    /// When on, a transaction begun as [`TxKind::Optimistic`], which is what
    /// `TitoEngine::begin` and the transaction runners ask for, is pessimistic: writes lock
    /// their keys at once. [`TxKind::Pessimistic`] is always pessimistic, whatever this says.
    pub fn pessimistic(mut self, pessimistic: bool) -> Self {
        self.pessimistic = pessimistic;
        self
    }

    /// How long one request to PD or TiKV may take before it fails (2 s by default).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The most rows one scan request asks for (1000 by default; 0 is read as 1).
    ///
    /// Each TiKV region's reply must fit in 4 MiB; 1000 rows leave room for rows of ~4 KiB.
    pub fn scan_page(mut self, rows: u32) -> Self {
        self.scan_page = rows.max(1);
        self
    }

    /// The kind a transaction requested as `requested` runs as.
    fn kind_for(&self, requested: TxKind) -> TxKind {
        match requested {
            TxKind::Optimistic if self.pessimistic => TxKind::Pessimistic,
            kind => kind,
        }
    }
}

/// The TiKV storage backend: a transactional client of one cluster. Cheap to clone.
#[derive(Clone)]
pub struct TiKV {
    client: TransactionClient,
    config: TiKVConfig,
}

impl std::fmt::Debug for TiKV {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiKV")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TiKV {
    /// Connects to the cluster whose PD endpoints (`"host:2379"`) are given, with default options.
    pub async fn connect<S: Into<String>>(endpoints: Vec<S>) -> Result<TitoEngine<TiKV>> {
        Self::connect_with(endpoints, TiKVConfig::default()).await
    }

    /// Connects to the cluster whose PD endpoints are given, with `config`.
    pub async fn connect_with<S: Into<String>>(
        endpoints: Vec<S>,
        config: TiKVConfig,
    ) -> Result<TitoEngine<TiKV>> {
        TitoEngine::new(Self::connect_backend(endpoints, config).await?).await
    }

    /// Connects the bare backend, without the engine's format check; for backend-level tests.
    pub async fn connect_backend<S: Into<String>>(
        endpoints: Vec<S>,
        config: TiKVConfig,
    ) -> Result<TiKV> {
        let endpoints: Vec<String> = endpoints.into_iter().map(Into::into).collect();
        let client_config = tikv_client::Config::default().with_timeout(config.request_timeout);
        let client = TransactionClient::new_with_config(endpoints.clone(), client_config)
            .await
            .map_err(|e| {
                TitoError::Backend(format!("tikv: cannot connect to PD {endpoints:?}: {e}"))
            })?;
        debug!(?endpoints, "connected to tikv");
        Ok(TiKV { client, config })
    }

    /// The options this backend runs with.
    pub fn config(&self) -> &TiKVConfig {
        &self.config
    }
}

/// tikv-client's options for a transaction of `kind`.
///
/// A read-only transaction is a snapshot at the current timestamp: `begin_with_options` with
/// `read_only()` is what `TransactionClient::snapshot(current_timestamp)` builds, and keeps one
/// transaction type for every kind. tikv-client's drop check is off: [`TiKVTx`] cleans up.
fn options_for(kind: TxKind) -> TransactionOptions {
    let options = match kind {
        TxKind::Optimistic => TransactionOptions::new_optimistic(),
        TxKind::Pessimistic => TransactionOptions::new_pessimistic(),
        TxKind::ReadOnly => TransactionOptions::new_optimistic().read_only(),
    };
    options.drop_check(CheckLevel::None)
}

impl Backend for TiKV {
    type Tx = TiKVTx;

    async fn begin(&self, kind: TxKind) -> Result<TiKVTx> {
        let kind = self.config.kind_for(kind);
        let tx = self
            .client
            .begin_with_options(options_for(kind))
            .await
            .map_err(|e| to_tito(&e, Op::Access))?;
        debug!(
            ?kind,
            start_ts = tx.start_timestamp().version(),
            "tikv transaction begun"
        );
        Ok(TiKVTx {
            tx: Some(tx),
            kind,
            scan_page: self.config.scan_page,
            committing: false,
        })
    }

    fn name(&self) -> &'static str {
        "tikv"
    }
}

/// A transaction of the [`TiKV`] backend.
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
    fn kinds_map_to_tikv_options() {
        assert!(!options_for(TxKind::Optimistic).is_pessimistic());
        assert!(options_for(TxKind::Pessimistic).is_pessimistic());
        assert_eq!(
            options_for(TxKind::ReadOnly),
            TransactionOptions::new_optimistic()
                .read_only()
                .drop_check(CheckLevel::None)
        );
        // tikv-client panics when a transaction with the default drop check is dropped active.
        assert_ne!(
            options_for(TxKind::Optimistic),
            TransactionOptions::new_optimistic()
        );
    }

    #[test]
    fn pessimistic_config_changes_only_the_default_kind() {
        let config = TiKVConfig::default();
        assert_eq!(config.kind_for(TxKind::Optimistic), TxKind::Optimistic);
        assert_eq!(config.kind_for(TxKind::Pessimistic), TxKind::Pessimistic);
        let config = config.pessimistic(true);
        assert_eq!(config.kind_for(TxKind::Optimistic), TxKind::Pessimistic);
        assert_eq!(config.kind_for(TxKind::ReadOnly), TxKind::ReadOnly);
    }

    #[test]
    fn scan_page_is_at_least_one_row() {
        assert_eq!(TiKVConfig::default().scan_page, 1000);
        assert_eq!(TiKVConfig::default().scan_page(0).scan_page, 1);
    }

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
