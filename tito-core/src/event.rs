//! Events written in the same transaction as the data they describe.
//!
//! A write with [`TitoOptions::with_events`] (`build_with_options`, `update_with_options`,
//! `delete_by_id_with_options`) stores one event per event type the model declares, for every
//! consumer group of that type, under the queue's pending keys, in the caller's transaction: the
//! events exist exactly when the data change does. Plain `build`, `update` and `delete_by_id`
//! publish nothing. The queue crate reads and acknowledges events; this module only writes.
//!
//! Every event gets a *position*, its [`TitoEvent::run_at`]: micros since the epoch, strictly
//! increasing among its partition key's pending events in commit order. Publishing reads and
//! writes the key's ready marks ([`ReadyMark`]), which hold its latest position, so two
//! concurrent publishes for one key conflict and one retries: handling in position order is
//! handling in commit order, even with clock skew between processes.
//!
//! A position orders; it does not say when an event is due. A publisher whose clock runs ahead
//! gives its event (and, through the marks, the key's next events) positions in the future, so
//! the stored event says when it is due ([`PendingTimes`]): at once, unless it was scheduled.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;

use crate::backend::Backend;
use crate::error::{Result, TitoError};
use crate::keyspace::queue;
use crate::model::TitoModelTrait;
use crate::txn::TitoTransaction;

/// Number of queue partitions.
pub const PARTITIONS: u32 = 1024;

/// The consumer group of workers started without a group name.
pub const DEFAULT_GROUP: &str = "default";

/// The kind of write an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TitoOperation {
    /// A record was created.
    Insert,
    /// A record was changed.
    Update,
    /// A record was removed.
    Delete,
}

impl fmt::Display for TitoOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TitoOperation::Insert => "INSERT",
            TitoOperation::Update => "UPDATE",
            TitoOperation::Delete => "DELETE",
        })
    }
}

/// How far ahead of its publisher's clock an event may be scheduled. A key's events are handled
/// in order, so an event due in a hundred years would hold its key's later events as long.
pub const LONGEST_DELAY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Options of a write: whether it publishes events, and when they become due.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TitoOptions {
    /// The operation recorded in events; `None` publishes nothing.
    pub event: Option<TitoOperation>,
    /// When the events become due (micros since the Unix epoch); `None` means now.
    pub run_at_micros: Option<u64>,
}

impl TitoOptions {
    /// Publishes events recording `operation` for every event type the model declares.
    pub fn with_events(operation: TitoOperation) -> Self {
        TitoOptions {
            event: Some(operation),
            run_at_micros: None,
        }
    }

    /// Delays delivery of the events until `at`.
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at_micros = Some(micros_since_epoch(at));
        self
    }
}

/// An event as stored and as delivered to handlers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TitoEvent {
    /// Unique id of the event.
    pub id: String,
    /// The event type (the name in [`TitoEventConfig`](crate::model::TitoEventConfig)).
    pub event_type: String,
    /// The write that produced the event.
    pub action: TitoOperation,
    /// `table:id` of the record.
    pub entity: String,
    /// Table of the record.
    pub table: String,
    /// Id of the record.
    pub record_id: String,
    /// The record's partition key.
    pub partition_key: String,
    /// The partition, `0..1024`, derived from the partition key.
    pub partition: u32,
    /// The record as written (for deletes: as it was before).
    pub payload: Value,
    /// When the event was written, micros since the Unix epoch.
    pub created_at: u64,
    /// The event's position: when it becomes due (micros since the Unix epoch) and its place in
    /// the order of its partition key. Strictly increasing per partition key in commit order;
    /// at least the requested run-at time for scheduled events, so a scheduled event also holds
    /// back the later events of its key until it runs.
    pub run_at: u64,
    /// When the event was replayed from the dead letters, micros since the Unix epoch. A
    /// replayed event runs after the events of its key handled since it failed, so its payload
    /// may be older than theirs: a handler that mirrors state should read the record again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_at: Option<u64>,
}

/// The partition of a partition key: FNV-1a (64-bit) of its UTF-8 bytes, modulo 1024.
///
/// Fixed and documented so it is the same on every platform, Rust version and release.
pub fn partition_of(partition_key: &str) -> u32 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = partition_key
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    (hash % u64::from(PARTITIONS)) as u32
}

/// Micros since the Unix epoch of `at` (0 before the epoch).
pub fn micros_since_epoch(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A timestamp in micros that strictly increases within this process, so events written one
/// after another keep their order even within one microsecond.
pub fn next_timestamp() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = micros_since_epoch(SystemTime::now());
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// Version byte of a stored event that is the JSON alone, due at its position.
const EVENT_V1: u8 = 1;

/// Version byte of a pending event: [`PendingTimes`] (16 bytes), then the JSON.
const EVENT_V2: u8 = 2;

/// Encodes an event for storage, due at its position.
pub fn encode_event(event: &TitoEvent) -> Result<Vec<u8>> {
    crate::model::record::encode_versioned(EVENT_V1, event)
}

/// When a pending event is due and when it was written, stored before it so that a worker
/// learns both without decoding the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingTimes {
    /// Micros since the epoch from which the event may be handled: 0 for an event published to
    /// run at once, whatever its position.
    pub due: u64,
    /// The event's `created_at`.
    pub created_at: u64,
}

impl PendingTimes {
    /// The times of the pending event stored as `bytes` at position `position`: those written
    /// before it, or, for an event stored without them, due at its position.
    pub fn of(bytes: &[u8], position: u64) -> PendingTimes {
        with_times(bytes).map_or(
            PendingTimes {
                due: position,
                created_at: position,
            },
            |(times, _)| times,
        )
    }
}

/// The times and the JSON of a pending event stored with its times.
fn with_times(bytes: &[u8]) -> Option<(PendingTimes, &[u8])> {
    let rest = bytes.strip_prefix(&[EVENT_V2])?;
    let (due, rest) = rest.split_first_chunk::<8>()?;
    let (created_at, body) = rest.split_first_chunk::<8>()?;
    let times = PendingTimes {
        due: u64::from_be_bytes(*due),
        created_at: u64::from_be_bytes(*created_at),
    };
    Some((times, body))
}

/// Encodes a pending event due at `due` (0: at once).
pub fn encode_pending(event: &TitoEvent, due: u64) -> Result<Vec<u8>> {
    let mut header = [0; 17];
    header[0] = EVENT_V2;
    header[1..9].copy_from_slice(&due.to_be_bytes());
    header[9..].copy_from_slice(&event.created_at.to_be_bytes());
    crate::model::record::encode_after(&header, event)
}

/// The largest stored event: the queue stores an event again inside a retry entry or a dead
/// letter, beside its error (at most `MAX_ERROR_LEN` bytes of it in tito-queue), and those must
/// stay within the value limit too, or their acknowledgement could never commit.
pub const MAX_EVENT_LEN: usize = crate::txn::MAX_VALUE_LEN - 128 * 1024;

/// Decodes a stored event, with or without its [`PendingTimes`].
pub fn decode_event(key: &[u8], bytes: &[u8]) -> Result<TitoEvent> {
    match bytes.first() {
        Some(&EVENT_V2) => {
            let (_, body) = with_times(bytes).ok_or_else(|| {
                crate::model::record::decode_error(key, "truncated event times".into())
            })?;
            crate::model::record::decode_json(key, body)
        }
        _ => crate::model::record::decode_versioned(key, bytes, EVENT_V1, "event"),
    }
}

/// Decodes the consumer group registry stored at [`queue::groups_key`]; absent means only
/// [`DEFAULT_GROUP`].
fn decode_groups(key: &[u8], bytes: Option<&[u8]>) -> Result<Vec<String>> {
    match bytes {
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| crate::model::record::decode_error(key, e.to_string())),
        None => Ok(vec![DEFAULT_GROUP.to_string()]),
    }
}

/// The consumer groups of `event_type`, read in `tx` so a concurrent registration conflicts.
pub async fn consumer_groups<B: Backend>(
    tx: &TitoTransaction<B>,
    event_type: &str,
) -> Result<Vec<String>> {
    let key = queue::groups_key(event_type);
    let bytes = tx.get(&key).await?;
    decode_groups(&key, bytes.as_deref())
}

/// The position of the next event of a key whose last position is `last`, due at `due`:
/// never before `due`, always after `last`.
pub fn next_position(last: Option<u64>, due: u64) -> u64 {
    match last {
        Some(last) => due.max(last.saturating_add(1)),
        None => due,
    }
}

/// A partition key's ready mark in one consumer group: it exists while the key may have
/// pending events, and tells where they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadyMark {
    /// No pending event of the key is before it: reads of the key start here, not at its first
    /// key, so they step over none of the events handled before the mark was set or advanced.
    pub first: u64,
    /// The position of the key's latest event.
    pub latest: u64,
}

impl ReadyMark {
    /// The mark once an event at `position` is written under `mark` (`None`: the key had none).
    pub fn with(mark: Option<ReadyMark>, position: u64) -> ReadyMark {
        ReadyMark {
            first: mark.map_or(position, |m| m.first),
            latest: position,
        }
    }

    /// The stored bytes: `first` then `latest`, each a big-endian u64.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&self.first.to_be_bytes());
        out.extend_from_slice(&self.latest.to_be_bytes());
        out
    }

    /// Decodes a stored mark; a mark of 8 bytes (written before marks held where reads start)
    /// holds the latest position only, and its key is read from its first key.
    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<ReadyMark> {
        let word = |at: usize| {
            bytes
                .get(at..at + 8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
        };
        match (bytes.len(), word(0), word(8)) {
            (8, Some(latest), _) => Ok(ReadyMark {
                first: 0,
                latest: u64::from_be_bytes(latest),
            }),
            (16, Some(first), Some(latest)) => Ok(ReadyMark {
                first: u64::from_be_bytes(first),
                latest: u64::from_be_bytes(latest),
            }),
            _ => Err(crate::model::record::decode_error(
                key,
                "bad ready mark".into(),
            )),
        }
    }

    fn read(key: &[u8], bytes: Option<&[u8]>) -> Result<Option<ReadyMark>> {
        bytes.map(|b| ReadyMark::decode(key, b)).transpose()
    }
}

/// The ready mark of `partition_key` in consumer group `group` of `event_type`, read in `tx`.
async fn read_mark<B: Backend>(
    tx: &TitoTransaction<B>,
    event_type: &str,
    group: &str,
    partition_key: &str,
) -> Result<Option<ReadyMark>> {
    let key = queue::ready_key(
        event_type,
        group,
        partition_of(partition_key),
        partition_key,
    );
    ReadyMark::read(&key, tx.get(&key).await?.as_deref())
}

/// The next position of `partition_key` for consumer group `group` of `event_type`, due no
/// earlier than `due`: after the key's pending events in the group. [`enqueue_for`] records it.
pub async fn claim_position<B: Backend>(
    tx: &TitoTransaction<B>,
    event_type: &str,
    group: &str,
    partition_key: &str,
    due: u64,
) -> Result<u64> {
    let mark = read_mark(tx, event_type, group, partition_key).await?;
    Ok(next_position(mark.map(|m| m.latest), due))
}

/// Writes `event` as pending for consumer group `group` at its position (`run_at`), due at
/// `due` (0: at once), with the ready mark that lets workers find its key.
pub async fn enqueue_for<B: Backend>(
    tx: &TitoTransaction<B>,
    group: &str,
    event: &TitoEvent,
    due: u64,
) -> Result<()> {
    let mark = read_mark(tx, &event.event_type, group, &event.partition_key).await?;
    write_pending(tx, group, event, encode_pending(event, due)?, mark).await?;
    tx.published(event, due, mark.map(|m| m.latest));
    Ok(())
}

/// A committed event as announced to the workers of its process: enough to read its pending key
/// directly, and to know whether it directly follows what a worker has taken off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The event's partition.
    pub partition: u32,
    /// The event's partition key.
    pub partition_key: String,
    /// The event's position.
    pub position: u64,
    /// The event's id.
    pub id: String,
    /// When the event is due (see [`PendingTimes::due`]).
    pub due: u64,
    /// The highest latest position of the key's ready marks in the groups the event was written
    /// for, as its transaction read them; `None`: none had a mark, so no event of the key was
    /// pending there. Publishes of a key conflict through those marks, so no event of the key
    /// lies between this position and the event's own.
    pub after: Option<u64>,
}

impl Published {
    /// The announcement of `event`, due at `due`, written after `after` (see
    /// [`Published::after`]).
    pub fn of(event: &TitoEvent, due: u64, after: Option<u64>) -> Published {
        Published {
            partition: event.partition,
            partition_key: event.partition_key.clone(),
            position: event.run_at,
            id: event.id.clone(),
            due,
            after,
        }
    }
}

/// The events of one event type that one transaction committed, in the order it wrote them, as
/// [`TitoEngine::published`](crate::TitoEngine::published) announces them.
pub type PublishedEvents = Arc<[Published]>;

/// How many announcements a slow receiver may fall behind before it is told it lagged.
const ANNOUNCED: usize = 4_096;

/// What an engine shares with its transactions about the queue: announcements of committed
/// events to the workers of this process, and the consumer groups publishes last saw per event
/// type (so they read the groups' ready marks in the same round trip as the registry).
#[derive(Debug, Default)]
pub(crate) struct QueueHub {
    senders: Mutex<HashMap<String, broadcast::Sender<PublishedEvents>>>,
    groups: Mutex<HashMap<String, Vec<String>>>,
}

impl QueueHub {
    /// The consumer groups of `event_type` last seen (at first, the default group alone).
    pub fn groups(&self, event_type: &str) -> Vec<String> {
        let groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        (groups.get(event_type)).map_or_else(|| vec![DEFAULT_GROUP.to_string()], Clone::clone)
    }

    /// Records the consumer groups of `event_type` a publish read.
    pub fn remember_groups(&self, event_type: &str, seen: &[String]) {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        groups.insert(event_type.to_string(), seen.to_vec());
    }

    fn sender(&self, event_type: &str) -> broadcast::Sender<PublishedEvents> {
        let mut senders = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        senders
            .entry(event_type.to_string())
            .or_insert_with(|| broadcast::channel(ANNOUNCED).0)
            .clone()
    }

    /// A receiver of the keys of committed events of `event_type`.
    pub fn subscribe(&self, event_type: &str) -> broadcast::Receiver<PublishedEvents> {
        self.sender(event_type).subscribe()
    }

    /// Tells the receivers of `event_type` that events of `keys` committed.
    pub fn announce(&self, event_type: &str, keys: Vec<Published>) {
        // No receiver is not an error: no worker of this type runs here.
        let _ = self.sender(event_type).send(keys.into());
    }
}

/// Writes the encoded `event` and its key's ready mark for `group`, which was `mark`. The mark
/// holds the key's latest position: publishes of a key read and write it, so they conflict and
/// their positions follow their commit order; a worker removes it only while it still holds
/// the position it has handled up to, so a later event always leaves its key marked.
async fn write_pending<B: Backend>(
    tx: &TitoTransaction<B>,
    group: &str,
    event: &TitoEvent,
    value: Vec<u8>,
    mark: Option<ReadyMark>,
) -> Result<()> {
    let (t, p, pk) = (&event.event_type, event.partition, &event.partition_key);
    // The key holds the event's id: no other transaction writes it.
    let key = queue::pending_key(t, group, p, pk, event.run_at, &event.id);
    tx.put_unique(key, value).await?;
    let mark = ReadyMark::with(mark, event.run_at);
    tx.put(queue::ready_key(t, group, p, pk), mark.encode())
        .await
}

/// Publishes the events `options` asks for, for every event type `record` declares.
///
/// One batched read fetches, for each event type, its group registry and the partition key's
/// last position; then each event is written once per group.
pub(crate) async fn publish<B: Backend, T: TitoModelTrait>(
    tx: &TitoTransaction<B>,
    record: &T,
    table: &str,
    id: &str,
    payload: &Value,
    options: &TitoOptions,
) -> Result<()> {
    let Some(action) = options.event else {
        return Ok(());
    };
    let mut types: Vec<String> = Vec::new();
    for config in record.get_events() {
        if !types.contains(&config.name) {
            types.push(config.name);
        }
    }
    if types.is_empty() {
        return Ok(());
    }
    let partition_key = record.partition_key();
    let partition = partition_of(&partition_key);
    let created_at = next_timestamp();
    let due = options.run_at_micros.unwrap_or(created_at);
    let latest = created_at.saturating_add(LONGEST_DELAY.as_micros() as u64);
    if due > latest {
        return Err(TitoError::InvalidArgument(format!(
            "an event scheduled {} s ahead; at most {} s (LONGEST_DELAY)",
            (due - created_at) / 1_000_000,
            LONGEST_DELAY.as_secs()
        )));
    }
    // One batched read: each type's group registry, and the key's ready marks in the groups
    // the type was last seen with. The latest mark is the key's last position.
    let hub = tx.queue_hub();
    let hints: Vec<Vec<String>> = types.iter().map(|t| hub.groups(t)).collect();
    let mut keys = Vec::new();
    for (event_type, groups) in types.iter().zip(&hints) {
        keys.push(queue::groups_key(event_type));
        keys.extend(
            (groups.iter()).map(|g| queue::ready_key(event_type, g, partition, &partition_key)),
        );
    }
    let mut found = tx.batch_get(&keys).await?.into_iter().zip(keys);
    for (event_type, hint) in types.into_iter().zip(hints) {
        let (registry, groups_key) = found.next().unwrap_or_default();
        let groups = decode_groups(&groups_key, registry.as_deref())?;
        let mut marks: HashMap<&str, Option<ReadyMark>> = HashMap::new();
        for (group, (mark, key)) in hint.iter().zip(found.by_ref().take(hint.len())) {
            marks.insert(group, ReadyMark::read(&key, mark.as_deref())?);
        }
        if groups != hint {
            hub.remember_groups(&event_type, &groups);
            let missing: Vec<&String> = groups.iter().filter(|g| !hint.contains(g)).collect();
            let keys: Vec<Vec<u8>> = (missing.iter())
                .map(|g| queue::ready_key(&event_type, g, partition, &partition_key))
                .collect();
            let read = tx.batch_get(&keys).await?;
            for ((group, mark), key) in missing.into_iter().zip(read).zip(&keys) {
                marks.insert(group, ReadyMark::read(key, mark.as_deref())?);
            }
        }
        let last = (groups.iter())
            .filter_map(|g| marks.get(g.as_str()).copied().flatten())
            .map(|m| m.latest)
            .max();
        let position = next_position(last, due);
        // Scheduled: due at its position, which is at least the requested time. Otherwise at
        // once, even if a clock ahead of this one set the key's positions in the future.
        let due = options.run_at_micros.map_or(0, |_| position);
        let event = TitoEvent {
            id: uuid::Uuid::now_v7().to_string(),
            event_type,
            action,
            entity: format!("{table}:{id}"),
            table: table.to_string(),
            record_id: id.to_string(),
            partition,
            partition_key: partition_key.clone(),
            payload: payload.clone(),
            created_at,
            run_at: position,
            replayed_at: None,
        };
        let value = encode_pending(&event, due)?;
        crate::txn::check_len("event", value.len(), MAX_EVENT_LEN)?;
        for group in &groups {
            let mark = marks.get(group.as_str()).copied().flatten();
            write_pending(tx, group, &event, value.clone(), mark).await?;
        }
        tx.published(&event, due, last);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_known_values() {
        // FNV-1a 64 of the bytes, mod 1024; these values must never change.
        assert_eq!(partition_of(""), (0xcbf2_9ce4_8422_2325u64 % 1024) as u32);
        assert_eq!(partition_of("a"), (0xaf63_dc4c_8601_ec8cu64 % 1024) as u32);
        assert_eq!(
            partition_of("foobar"),
            (0x8594_4171_f739_67e8u64 % 1024) as u32
        );
        assert!(partition_of("user-42") < PARTITIONS);
    }

    #[test]
    fn timestamps_strictly_increase() {
        let a = next_timestamp();
        let b = next_timestamp();
        assert!(b > a);
    }

    #[test]
    fn pending_events_carry_their_times_and_older_ones_are_due_at_their_position() {
        let event = TitoEvent {
            id: "e".into(),
            event_type: "t".into(),
            action: TitoOperation::Insert,
            entity: "x:1".into(),
            table: "x".into(),
            record_id: "1".into(),
            partition_key: "k".into(),
            partition: partition_of("k"),
            payload: Value::Null,
            created_at: 5,
            run_at: 900,
            replayed_at: None,
        };
        let stored = encode_pending(&event, 0).unwrap();
        assert_eq!(decode_event(b"k", &stored).unwrap(), event);
        let times = PendingTimes::of(&stored, event.run_at);
        assert_eq!((times.due, times.created_at), (0, 5));
        let older = encode_event(&event).unwrap();
        assert_eq!(decode_event(b"k", &older).unwrap(), event);
        assert_eq!(PendingTimes::of(&older, 900).due, 900);
        assert!(
            decode_event(b"k", &stored[..10]).is_err(),
            "truncated times"
        );
    }

    #[test]
    fn positions_follow_the_key_and_the_due_time() {
        assert_eq!(next_position(None, 50), 50);
        assert_eq!(next_position(Some(70), 50), 71);
        assert_eq!(next_position(Some(70), 90), 90);
        assert_eq!(next_position(Some(u64::MAX), 1), u64::MAX);
    }

    #[test]
    fn ready_marks_round_trip_and_read_older_marks() {
        let mark = ReadyMark {
            first: 7,
            latest: 1 << 40,
        };
        assert_eq!(ReadyMark::decode(b"k", &mark.encode()).unwrap(), mark);
        let older = ReadyMark::decode(b"k", &42u64.to_be_bytes()).unwrap();
        assert_eq!(
            older,
            ReadyMark {
                first: 0,
                latest: 42
            }
        );
        assert!(ReadyMark::decode(b"k", &[1, 2, 3]).is_err());
        assert_eq!(
            ReadyMark::with(None, 9),
            ReadyMark {
                first: 9,
                latest: 9
            }
        );
        assert_eq!(
            ReadyMark::with(Some(mark), 1 << 41),
            ReadyMark {
                first: 7,
                latest: 1 << 41
            }
        );
    }

    #[test]
    fn actions_print_in_capitals() {
        assert_eq!(TitoOperation::Delete.to_string(), "DELETE");
    }
}
