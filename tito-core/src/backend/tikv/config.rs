//! Options of the TiKV backend, and the tikv-client transaction options each kind runs with.

use std::time::Duration;

use tikv_client::{CheckLevel, TransactionOptions};

use crate::backend::TxKind;

/// Options of the TiKV backend; start from `TiKVConfig::default()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TiKVConfig {
    pub(super) pessimistic: bool,
    pub(super) request_timeout: Duration,
    pub(super) scan_page: u32,
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
    /// Makes read-write transactions pessimistic by default (off by default).
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
    pub(super) fn kind_for(&self, requested: TxKind) -> TxKind {
        match requested {
            TxKind::Optimistic if self.pessimistic => TxKind::Pessimistic,
            kind => kind,
        }
    }
}

/// tikv-client's options for a transaction of `kind`.
///
/// A read-only transaction is a snapshot at the current timestamp: `begin_with_options` with
/// `read_only()` is what `TransactionClient::snapshot(current_timestamp)` builds, and keeps one
/// transaction type for every kind. tikv-client's drop check is off: [`TiKVTx`](super::TiKVTx) cleans up.
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
    fn scan_page_is_at_least_one_row() {
        assert_eq!(TiKVConfig::default().scan_page, 1000);
        assert_eq!(TiKVConfig::default().scan_page(0).scan_page, 1);
    }
}
