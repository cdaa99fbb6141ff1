//! Reading the retry areas of partitions into their parked keys.
//!
//! A partition's retry area holds the events of its parked keys, ordered by key, then position:
//! the first entry of a key is its head, whose `next_at` says when the key is next due.

use std::collections::HashMap;
use std::ops::Range;

use tito_core::backend::{KeyRange, key_after};
use tito_core::keyspace::queue as keys;
use tito_core::{Backend, TitoError};
use tracing::warn;

use super::runtime::Runtime;
use super::state::Parked;
use crate::stored::RetryEntry;

/// Rows read per scan.
const PAGE: usize = 1_000;

/// The parked keys of every partition in `partitions`, from one snapshot, paged scans over one
/// range (usually empty). Partitions without parked keys map to an empty set.
pub(crate) async fn read_parked<B: Backend>(
    rt: &Runtime<B>,
    partitions: Range<u32>,
) -> Result<HashMap<u32, Parked>, TitoError> {
    let s = &rt.settings;
    let mut parked: HashMap<u32, Parked> = partitions.clone().map(|p| (p, Parked::new())).collect();
    if partitions.is_empty() {
        return Ok(parked);
    }
    let tx = rt.engine.snapshot().await?;
    let prefix_len = keys::group_prefix(&s.event_type, &s.group, "retry").len();
    let mut range = KeyRange::new(
        keys::retry_partition_prefix(&s.event_type, &s.group, partitions.start),
        keys::retry_partition_prefix(&s.event_type, &s.group, partitions.end),
    );
    loop {
        let rows = tx.scan(range.clone(), PAGE).await?;
        for (key, value) in &rows {
            let partition = keys::partition_in_key(key, prefix_len);
            let Some(area) = partition.and_then(|p| parked.get_mut(&p)) else {
                continue;
            };
            match RetryEntry::decode(key, value) {
                Ok(entry) => {
                    area.entry(entry.event.partition_key)
                        .or_insert(entry.next_at);
                }
                // Parked under the key its own key names and due now: the partition's task
                // reads it, fails to decode it again and sets it aside, instead of every batch
                // of the partition failing here.
                Err(e) => match keys::pending_key_parts(key, prefix_len) {
                    Some((_, park_key, _)) => {
                        warn!(error = %e, "undecodable retry entry; it will be set aside");
                        area.insert(park_key, 0);
                    }
                    None => warn!(error = %e, "ignoring a retry entry with an unreadable key"),
                },
            }
        }
        match rows.last() {
            Some((last, _)) if rows.len() == PAGE => range.start = key_after(last),
            _ => return Ok(parked),
        }
    }
}
