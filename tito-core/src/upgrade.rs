//! Upgrades of databases written in an older format, run when an engine opens one.
//!
//! Format 1 stored pending events per partition in position order, and each partition key's
//! last position under `keyseq`; format 2 stores pending events per partition key, with a ready
//! mark per key holding its latest position, which workers read to find work (see
//! `keyspace::queue::ready_key`). The upgrade moves each pending event to its new key, marks
//! its key and drops the `keyseq` entries, a page per transaction, so it is safe to interrupt
//! and to run from several processes at once: moved entries no longer match, and a page moved
//! twice writes the same bytes.

use std::collections::BTreeMap;

use crate::backend::{Backend, KeyRange, key_after};
use crate::codec::{self, Direction, KeyValue};
use crate::engine::TitoEngine;
use crate::error::Result;
use crate::event::{ReadyMark, decode_event};
use crate::keyspace::{queue, queue_range};
use crate::txn::RetryPolicy;

/// Keys read per page.
const PAGE: usize = 1_000;

/// Brings a database of format `from` to the current format; the caller records the new one.
pub(crate) async fn upgrade<B: Backend>(engine: &TitoEngine<B>, from: u32) -> Result<()> {
    if from < 2 {
        pending_per_key(engine).await?;
    }
    Ok(())
}

/// A format 1 pending event key: event type, group, partition, position, event id.
struct OldPending {
    event_type: String,
    group: String,
    partition: u32,
    position: u64,
    event_id: String,
}

/// Whether `key` is a format 1 `keyseq` entry: event type, then the section.
fn is_old_keyseq(key: &[u8]) -> bool {
    let Some(rest) = key.get(1..) else {
        return false;
    };
    let Ok((KeyValue::Str(_), used)) = codec::take_value(rest, Direction::Asc) else {
        return false;
    };
    matches!(
        rest.get(used..).map(|rest| codec::take_value(rest, Direction::Asc)),
        Some(Ok((KeyValue::Str(section), _))) if section == "keyseq"
    )
}

fn parse_old_pending(key: &[u8]) -> Option<OldPending> {
    let mut rest = key.get(1..)?;
    let mut next = || {
        let (value, used) = codec::take_value(rest, Direction::Asc).ok()?;
        rest = rest.get(used..)?;
        Some(value)
    };
    match (next()?, next()?, next()?, next()?, next()?, next()?) {
        (
            KeyValue::Str(event_type),
            KeyValue::Str(section),
            KeyValue::Str(group),
            KeyValue::UInt(partition),
            KeyValue::UInt(position),
            KeyValue::Str(event_id),
        ) if section == "pending" => Some(OldPending {
            event_type,
            group,
            partition: u32::try_from(partition).ok()?,
            position,
            event_id,
        }),
        _ => None,
    }
}

/// Moves format 1 pending events to their per-key keys and marks their keys.
async fn pending_per_key<B: Backend>(engine: &TitoEngine<B>) -> Result<()> {
    let mut range = queue_range();
    loop {
        let rows = engine.snapshot().await?.scan(range.clone(), PAGE).await?;
        let Some((last, _)) = rows.last() else {
            return Ok(());
        };
        let next = KeyRange {
            start: key_after(last),
            end: range.end.clone(),
        };
        let keyseq: Vec<Vec<u8>> = (rows.iter())
            .filter(|(key, _)| is_old_keyseq(key))
            .map(|(key, _)| key.clone())
            .collect();
        let old: Vec<_> = rows
            .into_iter()
            .filter_map(|(key, value)| parse_old_pending(&key).map(|old| (key, old, value)))
            .collect();
        if !old.is_empty() || !keyseq.is_empty() {
            engine
                .transaction_with_retry(RetryPolicy::default(), |tx| {
                    let (old, keyseq) = (&old, &keyseq);
                    async move {
                        for key in keyseq {
                            tx.delete(key.clone()).await?;
                        }
                        let mut marks: BTreeMap<Vec<u8>, ReadyMark> = BTreeMap::new();
                        for (key, entry, value) in old {
                            let moved = match decode_event(key, value) {
                                Ok(event) => {
                                    let mark = queue::ready_key(
                                        &entry.event_type,
                                        &entry.group,
                                        entry.partition,
                                        &event.partition_key,
                                    );
                                    let at = entry.position;
                                    let span = marks.entry(mark).or_insert(ReadyMark {
                                        first: at,
                                        latest: at,
                                    });
                                    span.first = span.first.min(at);
                                    span.latest = span.latest.max(at);
                                    queue::pending_key(
                                        &entry.event_type,
                                        &entry.group,
                                        entry.partition,
                                        &event.partition_key,
                                        entry.position,
                                        &entry.event_id,
                                    )
                                }
                                // Where a worker sets undecodable entries aside.
                                Err(_) => queue::corrupt_key(&entry.event_type, &entry.group, key),
                            };
                            tx.put(moved, value.clone()).await?;
                            tx.delete(key.clone()).await?;
                        }
                        // A mark spans its key's pending events: widen a stored one, never
                        // narrow it.
                        let keys: Vec<Vec<u8>> = marks.keys().cloned().collect();
                        for ((key, span), found) in
                            marks.into_iter().zip(tx.batch_get(&keys).await?)
                        {
                            let stored = found
                                .map(|bytes| ReadyMark::decode(&key, &bytes))
                                .transpose()?;
                            let mark = stored.map_or(span, |stored| ReadyMark {
                                first: stored.first.min(span.first),
                                latest: stored.latest.max(span.latest),
                            });
                            if stored != Some(mark) {
                                tx.put(key, mark.encode()).await?;
                            }
                        }
                        Ok::<_, crate::error::TitoError>(())
                    }
                })
                .await?;
        }
        range = next;
    }
}
