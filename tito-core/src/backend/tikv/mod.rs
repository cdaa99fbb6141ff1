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

mod config;
mod convert;
mod error;
mod tx;

use tikv_client::{TimestampExt, TransactionClient};
use tracing::debug;

pub use self::config::TiKVConfig;
use self::config::options_for;
use self::error::{Op, to_tito};
pub use self::tx::TiKVTx;
use super::{Backend, TxKind};
use crate::engine::TitoEngine;
use crate::error::{Result, TitoError};

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
        Ok(TiKVTx::new(tx, kind, self.config.scan_page))
    }

    fn name(&self) -> &'static str {
        "tikv"
    }
}
