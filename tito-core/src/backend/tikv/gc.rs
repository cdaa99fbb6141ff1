//! Garbage collection of old versions on a cluster without TiDB.
//!
//! TiKV keeps every overwritten and deleted version until PD's GC safe point passes it; TiDB
//! advances that point, and a cluster used by tito alone has nobody doing so: every queue
//! acknowledgement leaves a deleted version behind, and scans slow down as they pile up. With
//! [`TiKVConfig::gc`](super::TiKVConfig::gc) on, each connected process runs a collector task,
//! and a lease stored in the cluster elects one of them at a time to resolve old locks and move
//! the safe point to `retention` ago.

use std::sync::Weak;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tikv_client::{Timestamp, TimestampExt};
use tracing::{debug, info, warn};

use super::config::{GcConfig, options_for};
use super::error::{Op, to_tito};
use super::{Shared, TiKV};
use crate::backend::TxKind;
use crate::error::Result;
use crate::keyspace;

/// Bits of a TiKV timestamp below its physical milliseconds.
const LOGICAL_BITS: u32 = 18;

/// The safe point `retention` before the timestamp `now`: a timestamp with no logical part.
fn safe_point(now: u64, retention: Duration) -> u64 {
    let physical = now >> LOGICAL_BITS;
    let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    physical.saturating_sub(retention_ms) << LOGICAL_BITS
}

/// The collector lease: who holds it, and until when (microseconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Lease {
    owner: u128,
    until_micros: u64,
}

impl Lease {
    fn encode(&self) -> Vec<u8> {
        [
            self.owner.to_be_bytes().as_slice(),
            &self.until_micros.to_be_bytes(),
        ]
        .concat()
    }

    /// The lease stored as `bytes`; `None` for bytes that are no lease (taken over as free).
    fn decode(bytes: &[u8]) -> Option<Lease> {
        let owner = u128::from_be_bytes(bytes.get(..16)?.try_into().ok()?);
        let until_micros = u64::from_be_bytes(bytes.get(16..24)?.try_into().ok()?);
        Some(Lease {
            owner,
            until_micros,
        })
    }

    /// Whether `owner` may take the lease at `now_micros`.
    fn free_for(stored: Option<Lease>, owner: u128, now_micros: u64) -> bool {
        stored.is_none_or(|lease| lease.owner == owner || lease.until_micros <= now_micros)
    }
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The lease key: one per cluster, outside every namespace, since the safe point is
/// cluster-wide.
fn lease_key() -> Vec<u8> {
    keyspace::meta_key("tikv_gc_lease")
}

impl TiKV {
    /// Collects versions older than `retention` now: resolves older locks, then moves PD's GC
    /// safe point. Returns the safe point set.
    ///
    /// The periodic collector ([`TiKVConfig::gc`](super::TiKVConfig::gc)) calls this; call it
    /// directly to collect once, from one process at a time.
    pub async fn collect_garbage(&self, retention: Duration) -> Result<u64> {
        let now = self
            .shared
            .client
            .current_timestamp()
            .await
            .map_err(|e| to_tito(&e, Op::Access))?;
        let point = safe_point(now.version(), retention);
        let accepted = self
            .shared
            .client
            .gc(Timestamp::from_version(point))
            .await
            .map_err(|e| to_tito(&e, Op::Access))?;
        if !accepted {
            // PD keeps the larger of its safe point and ours, so this only means it is ahead.
            debug!(point, "PD kept a later gc safe point");
        }
        info!(point, "tikv gc safe point advanced");
        Ok(point)
    }

    /// Takes or renews the collector lease for `owner`, valid for `term`; whether it is held.
    async fn hold_gc_lease(&self, owner: u128, term: Duration) -> Result<bool> {
        let mut tx = self
            .shared
            .client
            .begin_with_options(options_for(TxKind::Optimistic))
            .await
            .map_err(|e| to_tito(&e, Op::Access))?;
        let now = now_micros();
        let stored = tx
            .get(lease_key())
            .await
            .map_err(|e| to_tito(&e, Op::Access))?;
        if !Lease::free_for(stored.as_deref().and_then(Lease::decode), owner, now) {
            tx.rollback().await.map_err(|e| to_tito(&e, Op::Access))?;
            return Ok(false);
        }
        let term_micros = u64::try_from(term.as_micros()).unwrap_or(u64::MAX);
        let lease = Lease {
            owner,
            until_micros: now.saturating_add(term_micros),
        };
        tx.put(lease_key(), lease.encode())
            .await
            .map_err(|e| to_tito(&e, Op::Access))?;
        match tx.commit().await {
            Ok(_) => Ok(true),
            // Another process took it first.
            Err(e) if to_tito(&e, Op::Commit).is_retryable() => Ok(false),
            Err(e) => Err(to_tito(&e, Op::Commit)),
        }
    }
}

/// Runs the collector until every handle of the backend is dropped.
pub(super) async fn run_collector(shared: Weak<Shared>, gc: GcConfig) {
    let owner = uuid::Uuid::new_v4().as_u128();
    // The lease outlives two missed rounds, so one slow round does not hand it over.
    let term = gc.interval.saturating_mul(2);
    loop {
        tokio::time::sleep(gc.interval).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let backend = TiKV::from_shared(shared);
        match backend.hold_gc_lease(owner, term).await {
            Ok(true) => {
                if let Err(e) = backend.collect_garbage(gc.retention).await {
                    warn!(error = %e, "tikv gc round failed");
                }
            }
            Ok(false) => debug!("another process holds the tikv gc lease"),
            Err(e) => warn!(error = %e, "cannot reach the tikv gc lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_safe_point_is_retention_before_now_in_physical_time() {
        let now = 1_000_000u64 << LOGICAL_BITS | 7;
        let point = safe_point(now, Duration::from_secs(600));
        assert_eq!(point >> LOGICAL_BITS, 1_000_000 - 600_000);
        assert_eq!(point & ((1 << LOGICAL_BITS) - 1), 0);
        // A retention longer than the clock's age cannot go below zero.
        assert_eq!(safe_point(now, Duration::from_secs(10_000_000)), 0);
        assert_eq!(safe_point(now, Duration::MAX), 0);
    }

    #[test]
    fn the_lease_goes_to_its_owner_or_to_anyone_once_expired() {
        let held = Lease {
            owner: 1,
            until_micros: 100,
        };
        assert_eq!(Lease::decode(&held.encode()), Some(held));
        assert_eq!(Lease::decode(b"short"), None);
        assert!(Lease::free_for(None, 2, 50));
        assert!(Lease::free_for(Some(held), 1, 50), "renewed by its owner");
        assert!(!Lease::free_for(Some(held), 2, 50), "held by another");
        assert!(Lease::free_for(Some(held), 2, 100), "expired");
    }
}
