//! Options of the TiKV backend, and the tikv-client settings and transaction options they
//! become.

use std::path::PathBuf;
use std::time::Duration;

use tikv_client::{CheckLevel, TransactionOptions};

use crate::backend::TxKind;
use crate::txn::MAX_VALUE_LEN;

/// The most rows one scan request asks for, unless [`TiKVConfig::scan_page`] says otherwise.
const DEFAULT_SCAN_PAGE: u32 = 1000;

/// The reply size one scan or batched read aims at, unless [`TiKVConfig::page_bytes`] says
/// otherwise.
const DEFAULT_PAGE_BYTES: usize = 4 << 20;

/// Options of the TiKV backend; start from `TiKVConfig::default()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TiKVConfig {
    pub(super) pessimistic: bool,
    pub(super) request_timeout: Duration,
    pub(super) scan_page: u32,
    pub(super) page_bytes: usize,
    pub(super) max_reply_bytes: usize,
    pub(super) namespace: Vec<u8>,
    pub(super) tls: Option<TlsPaths>,
    pub(super) keyspace: Option<String>,
    pub(super) gc: Option<GcConfig>,
}

/// The certificate files of a TLS connection to PD and TiKV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    /// The certificate authority that signed the cluster's certificates (PEM).
    pub ca: PathBuf,
    /// This client's certificate (PEM).
    pub cert: PathBuf,
    /// This client's private key (PEM).
    pub key: PathBuf,
}

/// How tito collects TiKV's old versions: see [`TiKVConfig::gc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcConfig {
    /// How long overwritten and deleted versions stay readable.
    pub retention: Duration,
    /// How often the collector runs.
    pub interval: Duration,
}

impl Default for GcConfig {
    /// TiDB's defaults: ten minutes of history, collected every ten minutes.
    fn default() -> Self {
        GcConfig {
            retention: Duration::from_secs(600),
            interval: Duration::from_secs(600),
        }
    }
}

impl Default for TiKVConfig {
    fn default() -> Self {
        TiKVConfig {
            pessimistic: false,
            request_timeout: Duration::from_secs(2),
            scan_page: DEFAULT_SCAN_PAGE,
            page_bytes: DEFAULT_PAGE_BYTES,
            max_reply_bytes: DEFAULT_MAX_REPLY_BYTES,
            namespace: Vec::new(),
            tls: None,
            keyspace: None,
            gc: None,
        }
    }
}

/// The largest reply accepted unless [`TiKVConfig::max_reply_bytes`] says otherwise: room for a
/// page of [`DEFAULT_PAGE_BYTES`] that overshoots by a row of the largest value tito accepts,
/// several times over.
const DEFAULT_MAX_REPLY_BYTES: usize = 64 << 20;

impl TiKVConfig {
    /// Makes read-write transactions pessimistic by default (off by default).
    ///
    /// When on, a transaction begun as [`TxKind::Optimistic`], which is what
    /// `TitoEngine::begin` and the transaction runners ask for, is pessimistic: its point reads
    /// lock the keys they read and see their latest committed values, and its writes lock their
    /// keys before commit. [`TxKind::Pessimistic`] is always pessimistic, whatever this says.
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
    pub fn scan_page(mut self, rows: u32) -> Self {
        self.scan_page = rows.max(1);
        self
    }

    /// The reply size a scan page or batched read aims at (4 MiB by default; 0 is read as 1).
    ///
    /// Pages shrink to this many bytes once rows are seen to be large.
    pub fn page_bytes(mut self, bytes: usize) -> Self {
        self.page_bytes = bytes.max(1);
        self
    }

    /// The largest reply accepted from one TiKV server (64 MiB by default).
    ///
    /// It must hold at least one row of the largest value tito accepts; smaller settings are
    /// raised to that.
    pub fn max_reply_bytes(mut self, bytes: usize) -> Self {
        self.max_reply_bytes = bytes.max(MAX_VALUE_LEN + (64 << 10));
        self
    }

    /// Keeps every key of this database under `prefix`, so several databases share a cluster
    /// without seeing each other's data (empty by default: the whole keyspace).
    pub fn namespace(mut self, prefix: impl Into<Vec<u8>>) -> Self {
        self.namespace = prefix.into();
        self
    }

    /// Connects to PD and TiKV over TLS with these certificate files.
    pub fn tls(
        mut self,
        ca: impl Into<PathBuf>,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.tls = Some(TlsPaths {
            ca: ca.into(),
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// Uses the named keyspace of a cluster running API v2 (`storage.api-version = 2`).
    pub fn keyspace(mut self, name: impl Into<String>) -> Self {
        self.keyspace = Some(name.into());
        self
    }

    /// Runs a garbage collector of old versions with these settings (off by default).
    ///
    /// TiKV keeps every overwritten and deleted version until PD's GC safe point passes it, and
    /// on a cluster without TiDB nothing advances that point. With this on, the processes
    /// connected to the cluster elect one collector through a lease, and it advances the safe
    /// point to `retention` ago every `interval`. A transaction that lives longer than
    /// `retention` may fail its reads. Leave it off on a cluster that TiDB also uses: TiDB runs
    /// its own collector.
    pub fn gc(mut self, gc: GcConfig) -> Self {
        self.gc = Some(gc);
        self
    }

    /// The kind a transaction requested as `requested` runs as.
    pub(super) fn kind_for(&self, requested: TxKind) -> TxKind {
        match requested {
            TxKind::Optimistic if self.pessimistic => TxKind::Pessimistic,
            kind => kind,
        }
    }

    /// The tikv-client configuration these options make.
    pub(super) fn client_config(&self) -> tikv_client::Config {
        let mut config = tikv_client::Config::default()
            .with_timeout(self.request_timeout)
            .with_grpc_max_decoding_message_size(self.max_reply_bytes);
        if let Some(tls) = &self.tls {
            config = config.with_security(&tls.ca, &tls.cert, &tls.key);
        }
        if let Some(keyspace) = &self.keyspace {
            config = config.with_keyspace(keyspace);
        }
        config
    }
}

/// tikv-client's options for a transaction of `kind`.
///
/// Read-only transactions are snapshots at the timestamp taken at begin. tikv-client's drop
/// check is off: [`TiKVTx`](super::TiKVTx) cleans up.
pub(super) fn options_for(kind: TxKind) -> TransactionOptions {
    let options = match kind {
        TxKind::Optimistic => TransactionOptions::new_optimistic(),
        TxKind::Pessimistic => TransactionOptions::new_pessimistic(),
        TxKind::ReadOnly => TransactionOptions::new_optimistic().read_only(),
    };
    options.drop_check(CheckLevel::None)
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
    fn pages_are_at_least_one_row_and_one_byte() {
        assert_eq!(TiKVConfig::default().scan_page, 1000);
        assert_eq!(TiKVConfig::default().scan_page(0).scan_page, 1);
        assert_eq!(TiKVConfig::default().page_bytes(0).page_bytes, 1);
    }

    #[test]
    fn replies_always_fit_the_largest_value() {
        // tikv-client's own default, 4 MiB, is below tito's value limit: such a value would
        // commit and never be readable again.
        let config = TiKVConfig::default();
        assert!(config.max_reply_bytes > MAX_VALUE_LEN + config.page_bytes);
        assert_eq!(
            config.client_config().grpc_max_decoding_message_size,
            config.max_reply_bytes
        );
        let small = TiKVConfig::default().max_reply_bytes(4 << 20);
        assert!(small.max_reply_bytes > MAX_VALUE_LEN);
    }

    #[test]
    fn tls_and_keyspace_reach_the_client_config() {
        let config = TiKVConfig::default()
            .tls(
                "/certs/ca.pem",
                "/certs/client.pem",
                "/certs/client-key.pem",
            )
            .keyspace("tenant")
            .client_config();
        assert_eq!(config.ca_path, Some(PathBuf::from("/certs/ca.pem")));
        assert_eq!(config.cert_path, Some(PathBuf::from("/certs/client.pem")));
        assert_eq!(
            config.key_path,
            Some(PathBuf::from("/certs/client-key.pem"))
        );
        assert_eq!(config.keyspace.as_deref(), Some("tenant"));
        let plain = TiKVConfig::default().client_config();
        assert_eq!((plain.ca_path, plain.keyspace), (None, None));
    }
}
