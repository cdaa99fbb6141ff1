//! The TiKV backend: tito on a distributed, replicated TiKV cluster, reached through its PD
//! endpoints with tikv-client's transactional API (feature `tikv`).
//!
//! What TiKV gives: optimistic transactions (the default) are snapshot isolation. Reads see the
//! snapshot taken at begin, and a write-write conflict on any key fails the later commit with a
//! retryable [`TitoError::Conflict`], but read-write conflicts are not detected: two
//! transactions that each read a key the other writes both commit (write skew). Pessimistic
//! transactions ([`TxKind::Pessimistic`], or [`TiKVConfig::pessimistic`]) lock each key they
//! read or write, so a contended writer waits instead of failing at commit. A commit whose
//! outcome the client cannot know is [`TitoError::CommitOutcomeUnknown`], never a failure or a
//! success; a cluster that cannot serve a request for now is a retryable
//! [`TitoError::Unavailable`].
//!
//! Replies are bounded: scans and batched reads are split into requests of at most
//! [`TiKVConfig::scan_page`] rows and about [`TiKVConfig::page_bytes`] bytes, and a reply refused
//! as too large is asked for again in smaller pieces. A transaction dropped before it finishes is
//! cleaned up without panicking (tikv-client panics by default): see [`TiKVTx`].
//!
//! Every test suite runs against a live cluster when `TITO_TIKV_PD` names its PD endpoints
//! (`docs/tikv.md`).

mod config;
mod convert;
mod error;
mod gc;
mod locking;
mod namespace;
mod tx;

use std::sync::Arc;

use tikv_client::{TimestampExt, TransactionClient};
use tracing::debug;

use self::config::options_for;
pub use self::config::{GcConfig, TiKVConfig, TlsPaths};
use self::error::{Op, to_tito};
use self::namespace::Namespace;
pub use self::tx::TiKVTx;
use super::{Backend, TxKind};
use crate::engine::TitoEngine;
use crate::error::{Result, TitoError};

/// The TiKV storage backend: a transactional client of one cluster. Cheap to clone.
#[derive(Clone)]
pub struct TiKV {
    shared: Arc<Shared>,
}

/// What every transaction of one backend shares.
struct Shared {
    client: TransactionClient,
    config: TiKVConfig,
    namespace: Namespace,
}

impl std::fmt::Debug for TiKV {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiKV")
            .field("config", &self.shared.config)
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
        let client = TransactionClient::new_with_config(endpoints.clone(), config.client_config())
            .await
            .map_err(|e| {
                TitoError::Backend(format!("tikv: cannot connect to PD {endpoints:?}: {e}"))
            })?;
        debug!(?endpoints, "connected to tikv");
        let backend = TiKV::from_shared(Arc::new(Shared {
            client,
            namespace: Namespace::new(config.namespace.clone()),
            config,
        }));
        if let Some(gc) = backend.shared.config.gc {
            tokio::spawn(gc::run_collector(Arc::downgrade(&backend.shared), gc));
        }
        Ok(backend)
    }

    fn from_shared(shared: Arc<Shared>) -> Self {
        TiKV { shared }
    }

    /// The options this backend runs with.
    pub fn config(&self) -> &TiKVConfig {
        &self.shared.config
    }
}

impl Backend for TiKV {
    type Tx = TiKVTx;

    async fn begin(&self, kind: TxKind) -> Result<TiKVTx> {
        let kind = self.shared.config.kind_for(kind);
        let client = &self.shared.client;
        let tx = if kind == TxKind::ReadOnly {
            let ts = client
                .current_timestamp()
                .await
                .map_err(|e| to_tito(&e, Op::Access))?;
            debug!(start_ts = ts.version(), "tikv snapshot begun");
            TiKVTx::read_only(ts, self.shared.clone())
        } else {
            let tx = client
                .begin_with_options(options_for(kind))
                .await
                .map_err(|e| to_tito(&e, Op::Access))?;
            debug!(
                ?kind,
                start_ts = tx.start_timestamp().version(),
                "tikv transaction begun"
            );
            TiKVTx::read_write(tx, kind, self.shared.clone())
        };
        Ok(tx)
    }

    fn name(&self) -> &'static str {
        "tikv"
    }
}
