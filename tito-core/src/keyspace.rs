//! The keyspace layout: the one place that builds record, index, manifest, queue and metadata
//! keys.
//!
//! Every key starts with a namespace byte, then the table (or event type) as an encoded string
//! component, so two models never share keys and a table's keys form one contiguous range.
//! Components use the order-preserving [`codec`] module; the layout is described in
//! `docs/key-format.md`.
//!
//! | namespace | key | value |
//! |---|---|---|
//! | `0x01` meta | `str(name)` | metadata, e.g. the format version |
//! | `0x10` record | `str(table) str(id)` | the record envelope |
//! | `0x11` index | `str(table) str(index) values… str(id)` | empty |
//! | `0x12` unique | `str(table) str(index) values…` | the id holding the value |
//! | `0x13` manifest | `str(table) str(id)` | the record's index keys |
//! | `0x20` queue | `str(event_type) str(section) …` | events, leases, checkpoints: see [`queue`] |

use crate::backend::KeyRange;
use crate::codec::{self, Direction};

/// Version of the key layout and record envelope; stored under [`format_key`].
pub const FORMAT_VERSION: u32 = 2;

const META: u8 = 0x01;
const RECORD: u8 = 0x10;
const INDEX: u8 = 0x11;
const UNIQUE: u8 = 0x12;
const MANIFEST: u8 = 0x13;
const QUEUE: u8 = 0x20;

fn start(namespace: u8, table: &str, capacity: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + table.len() + 2 + capacity);
    key.push(namespace);
    codec::put_str(&mut key, table, Direction::Asc);
    key
}

/// Renders a key readably for errors and tools: its namespace, then its decoded components.
pub fn display_key(key: &[u8]) -> String {
    let (namespace, rest) = match key.split_first() {
        Some((&META, rest)) => ("meta", rest),
        Some((&RECORD, rest)) => ("record", rest),
        Some((&INDEX, rest)) => ("index", rest),
        Some((&UNIQUE, rest)) => ("unique", rest),
        Some((&MANIFEST, rest)) => ("manifest", rest),
        Some((&QUEUE, rest)) => ("queue", rest),
        _ => return codec::display_key(key),
    };
    format!("{namespace}:{}", codec::display_key(rest))
}

/// Every queue key.
pub fn queue_range() -> KeyRange {
    KeyRange::new(vec![QUEUE], vec![QUEUE + 1])
}

/// Every metadata key (format version, table schemas).
pub fn meta_range() -> KeyRange {
    KeyRange::new(vec![META], vec![META + 1])
}

/// The key of a metadata entry.
pub fn meta_key(name: &str) -> Vec<u8> {
    start(META, name, 0)
}

/// The key of the stored schema of `table` (its registered indexes).
pub fn schema_key(table: &str) -> Vec<u8> {
    let mut key = meta_key("schema");
    codec::put_str(&mut key, table, Direction::Asc);
    key
}

/// The keys of every table's stored schema.
pub fn schema_range() -> KeyRange {
    KeyRange::prefix(&meta_key("schema"))
}

/// The table of a schema key, or `None` if `key` is not one.
pub fn parse_schema_key(key: &[u8]) -> Option<String> {
    let rest = key.strip_prefix(&[META])?;
    match codec::decode_tuple(rest).ok()?.as_slice() {
        [codec::KeyValue::Str(name), codec::KeyValue::Str(table)] if name == "schema" => {
            Some(table.clone())
        }
        _ => None,
    }
}

/// The key holding the database's [`FORMAT_VERSION`].
pub fn format_key() -> Vec<u8> {
    meta_key("format")
}

/// The key of record `id` of `table`.
pub fn record_key(table: &str, id: &str) -> Vec<u8> {
    let mut key = start(RECORD, table, id.len() + 2);
    codec::put_str(&mut key, id, Direction::Asc);
    key
}

/// All record keys of `table`.
pub fn record_range(table: &str) -> KeyRange {
    KeyRange::prefix(&start(RECORD, table, 0))
}

/// The record keys of every table.
pub fn all_records() -> KeyRange {
    KeyRange::prefix(&[RECORD])
}

/// The table and id of a record key, or `None` if `key` is not one.
pub fn parse_record_key(key: &[u8]) -> Option<(String, String)> {
    let rest = key.strip_prefix(&[RECORD])?;
    match codec::decode_tuple(rest).ok()?.as_slice() {
        [codec::KeyValue::Str(table), codec::KeyValue::Str(id)] => {
            Some((table.clone(), id.clone()))
        }
        _ => None,
    }
}

/// The key of the index manifest of record `id`: the index keys it currently owns.
pub fn manifest_key(table: &str, id: &str) -> Vec<u8> {
    let mut key = start(MANIFEST, table, id.len() + 2);
    codec::put_str(&mut key, id, Direction::Asc);
    key
}

/// All index manifests of `table`.
pub fn manifest_range(table: &str) -> KeyRange {
    KeyRange::prefix(&start(MANIFEST, table, 0))
}

/// The prefix shared by every entry of one index; values are appended to it with the codec.
pub fn index_prefix(table: &str, index: &str, unique: bool) -> Vec<u8> {
    let namespace = if unique { UNIQUE } else { INDEX };
    let mut key = start(namespace, table, index.len() + 64);
    codec::put_str(&mut key, index, Direction::Asc);
    key
}

/// All entries of every index of `table`, unique ones (`unique`) or the others.
pub fn index_range(table: &str, unique: bool) -> KeyRange {
    let namespace = if unique { UNIQUE } else { INDEX };
    KeyRange::prefix(&start(namespace, table, 0))
}

/// The index name of an index entry key of the table whose `index_range` start is
/// `table_prefix_len` bytes long.
pub fn index_in_key(key: &[u8], table_prefix_len: usize) -> Option<String> {
    match codec::take_value(key.get(table_prefix_len..)?, Direction::Asc).ok()? {
        (codec::KeyValue::Str(index), _) => Some(index),
        _ => None,
    }
}

/// Completes an index entry key (already holding the prefix and values) with the record id.
/// Unique entries end at their values; their value holds the id instead.
pub fn finish_index_key(mut key: Vec<u8>, id: &str, unique: bool) -> Vec<u8> {
    if !unique {
        codec::put_str(&mut key, id, Direction::Asc);
    }
    key
}

/// Decodes the record id at the end of a non-unique index entry key.
pub fn id_from_index_key(key: &[u8], prefix_len: usize) -> Option<String> {
    split_index_key(key, prefix_len).map(|(_, id)| id)
}

/// Splits a non-unique index entry key, after its `prefix_len`-byte prefix, into the encoded
/// field values and the record id that ends it.
pub fn split_index_key(key: &[u8], prefix_len: usize) -> Option<(&[u8], String)> {
    let values = key.get(prefix_len..)?;
    let mut at = 0;
    let mut last = None;
    while at < values.len() {
        let (value, used) = codec::take_value(&values[at..], Direction::Asc).ok()?;
        last = Some((at, value));
        at += used;
    }
    match last {
        Some((start, codec::KeyValue::Str(id))) => Some((&values[..start], id)),
        _ => None,
    }
}

/// Keys of the event queue; only the queue builds on these.
///
/// Everything of one event type lives under `0x20 str(event_type)`. Data of one consumer group
/// lives under `str(section) str(group)`, so each section of a group is one contiguous range:
///
/// | section | rest of the key | value |
/// |---|---|---|
/// | `groups` | (none; not per group) | JSON array of the registered groups |
/// | `pending` | `u64(partition) str(partition_key) u64(position) str(event_id)` | the event |
/// | `ready` | `u64(partition) str(partition_key)` | `ReadyMark`: where reads start, latest position |
/// | `retry` | `u64(partition) str(park_key) u64(position) str(event_id)` | retry entry |
/// | `dead` | `u64(partition) u64(position) str(event_id)` | dead letter |
/// | `lease` | `u64(partition)` | partition lease |
/// | `member` | `str(worker_id)` | worker membership |
/// | `checkpoint` | `u64(partition)` | partition checkpoint |
/// | `done` | `u64(handled_at) str(event_id)` | a handled event kept for retention |
/// | `call` | `u64(partition)` | the handler call running on a partition taken over uncleanly |
pub mod queue {
    use super::*;

    /// Every queue key of `event_type`: its groups' events and its own metadata.
    pub fn event_type_range(event_type: &str) -> KeyRange {
        KeyRange::prefix(&start(QUEUE, event_type, 0))
    }

    /// The event type a queue key belongs to.
    pub fn event_type_in_key(key: &[u8]) -> Option<String> {
        let rest = key.strip_prefix(&[QUEUE])?;
        match codec::take_value(rest, Direction::Asc).ok()? {
            (codec::KeyValue::Str(event_type), _) => Some(event_type),
            _ => None,
        }
    }

    /// Sections of a consumer group, each one contiguous range.
    pub const GROUP_SECTIONS: [&str; 10] = [
        "pending",
        "ready",
        "retry",
        "dead",
        "lease",
        "member",
        "checkpoint",
        "done",
        "corrupt",
        "call",
    ];

    /// Completes a key of the event at `position` with id `event_id`: the order of events.
    fn with_position(mut key: Vec<u8>, position: u64, event_id: &str) -> Vec<u8> {
        codec::put_u64(&mut key, position, Direction::Asc);
        codec::put_str(&mut key, event_id, Direction::Asc);
        key
    }

    /// The prefix of everything one consumer group of one event type owns, under `section`
    /// (a short fixed name such as `"pending"` or `"lease"`).
    pub fn group_prefix(event_type: &str, group: &str, section: &str) -> Vec<u8> {
        let mut key = start(QUEUE, event_type, group.len() + section.len() + 48);
        codec::put_str(&mut key, section, Direction::Asc);
        codec::put_str(&mut key, group, Direction::Asc);
        key
    }

    /// The prefix of an event type's own metadata under `section` (e.g. the group registry).
    pub fn type_prefix(event_type: &str, section: &str) -> Vec<u8> {
        let mut key = start(QUEUE, event_type, section.len() + 2);
        codec::put_str(&mut key, section, Direction::Asc);
        key
    }

    /// The key listing the consumer groups of an event type.
    pub fn groups_key(event_type: &str) -> Vec<u8> {
        type_prefix(event_type, "groups")
    }

    fn partition_prefix(event_type: &str, group: &str, section: &str, partition: u32) -> Vec<u8> {
        let mut key = group_prefix(event_type, group, section);
        codec::put_u64(&mut key, u64::from(partition), Direction::Asc);
        key
    }

    /// The prefix of one partition's pending events of a consumer group.
    pub fn pending_partition_prefix(event_type: &str, group: &str, partition: u32) -> Vec<u8> {
        partition_prefix(event_type, group, "pending", partition)
    }

    /// The prefix of the pending events of one partition key: they are stored per key, so a key's
    /// first pending event is the first key of this prefix and no handled event of another key
    /// lies before it.
    pub fn pending_key_prefix(
        event_type: &str,
        group: &str,
        partition: u32,
        partition_key: &str,
    ) -> Vec<u8> {
        let mut key = pending_partition_prefix(event_type, group, partition);
        codec::put_str(&mut key, partition_key, Direction::Asc);
        key
    }

    /// The key of a pending event: ordered by partition, partition key, position, event id.
    pub fn pending_key(
        event_type: &str,
        group: &str,
        partition: u32,
        partition_key: &str,
        position: u64,
        event_id: &str,
    ) -> Vec<u8> {
        with_position(
            pending_key_prefix(event_type, group, partition, partition_key),
            position,
            event_id,
        )
    }

    /// The pending events of one partition key from position `from` on (all of them for `0`).
    pub fn pending_key_range(
        event_type: &str,
        group: &str,
        partition: u32,
        partition_key: &str,
        from: u64,
    ) -> KeyRange {
        let prefix = pending_key_prefix(event_type, group, partition, partition_key);
        let mut range = KeyRange::prefix(&prefix);
        if from > 0 {
            codec::put_u64(&mut range.start, from, Direction::Asc);
        }
        range
    }

    /// The partition of a key in a partitioned section (`pending`, `ready`, `retry`, `dead`,
    /// `lease`, `checkpoint`), given the length of its [`group_prefix`].
    pub fn partition_in_key(key: &[u8], group_prefix_len: usize) -> Option<u32> {
        match codec::take_value(key.get(group_prefix_len..)?, Direction::Asc).ok()? {
            (codec::KeyValue::UInt(p), _) => u32::try_from(p).ok(),
            _ => None,
        }
    }

    /// The partition, partition key and position of a pending event key, or of a retry entry's
    /// key (the same layout), given the length of its [`group_prefix`].
    pub fn pending_key_parts(key: &[u8], group_prefix_len: usize) -> Option<(u32, String, u64)> {
        let rest = key.get(group_prefix_len..)?;
        let (partition, used) = codec::take_value(rest, Direction::Asc).ok()?;
        let rest = rest.get(used..)?;
        let (partition_key, used) = codec::take_value(rest, Direction::Asc).ok()?;
        let (position, _) = codec::take_value(rest.get(used..)?, Direction::Asc).ok()?;
        match (partition, partition_key, position) {
            (
                codec::KeyValue::UInt(p),
                codec::KeyValue::Str(partition_key),
                codec::KeyValue::UInt(position),
            ) => Some((u32::try_from(p).ok()?, partition_key, position)),
            _ => None,
        }
    }

    /// The key marking a partition key with pending events: written with every event (its value
    /// is an [`event::ReadyMark`](crate::event::ReadyMark)), removed once the key has none. Workers find work by reading
    /// these marks, one short range for all their partitions.
    pub fn ready_key(
        event_type: &str,
        group: &str,
        partition: u32,
        partition_key: &str,
    ) -> Vec<u8> {
        let mut key = partition_prefix(event_type, group, "ready", partition);
        codec::put_str(&mut key, partition_key, Direction::Asc);
        key
    }

    /// The ready marks of partitions `[start, end)`.
    pub fn ready_range(event_type: &str, group: &str, start: u32, end: u32) -> KeyRange {
        KeyRange::new(
            partition_prefix(event_type, group, "ready", start),
            partition_prefix(event_type, group, "ready", end),
        )
    }

    /// The partition and partition key of a ready mark, given the length of its
    /// [`group_prefix`].
    pub fn ready_key_parts(key: &[u8], group_prefix_len: usize) -> Option<(u32, String)> {
        let rest = key.get(group_prefix_len..)?;
        let (partition, used) = codec::take_value(rest, Direction::Asc).ok()?;
        let (partition_key, _) = codec::take_value(rest.get(used..)?, Direction::Asc).ok()?;
        match (partition, partition_key) {
            (codec::KeyValue::UInt(p), codec::KeyValue::Str(partition_key)) => {
                Some((u32::try_from(p).ok()?, partition_key))
            }
            _ => None,
        }
    }

    /// The prefix of one partition's retry area.
    pub fn retry_partition_prefix(event_type: &str, group: &str, partition: u32) -> Vec<u8> {
        partition_prefix(event_type, group, "retry", partition)
    }

    /// The prefix of the retry entries of one parked key of a partition.
    pub fn retry_key_prefix(
        event_type: &str,
        group: &str,
        partition: u32,
        park_key: &str,
    ) -> Vec<u8> {
        let mut key = retry_partition_prefix(event_type, group, partition);
        codec::put_str(&mut key, park_key, Direction::Asc);
        key
    }

    /// The key of a retry entry: ordered by parked key, then position, then event id.
    pub fn retry_key(
        event_type: &str,
        group: &str,
        partition: u32,
        park_key: &str,
        position: u64,
        event_id: &str,
    ) -> Vec<u8> {
        with_position(
            retry_key_prefix(event_type, group, partition, park_key),
            position,
            event_id,
        )
    }

    /// The key of a dead letter.
    pub fn dead_key(
        event_type: &str,
        group: &str,
        partition: u32,
        position: u64,
        event_id: &str,
    ) -> Vec<u8> {
        with_position(
            partition_prefix(event_type, group, "dead", partition),
            position,
            event_id,
        )
    }

    /// The dead letters of `partition` with positions before `before`.
    pub fn dead_before_range(
        event_type: &str,
        group: &str,
        partition: u32,
        before: u64,
    ) -> KeyRange {
        let start = partition_prefix(event_type, group, "dead", partition);
        let mut end = start.clone();
        codec::put_u64(&mut end, before, Direction::Asc);
        KeyRange::new(start, end)
    }

    /// The key of a partition's lease.
    pub fn lease_key(event_type: &str, group: &str, partition: u32) -> Vec<u8> {
        partition_prefix(event_type, group, "lease", partition)
    }

    /// The key announcing a live worker of a consumer group.
    pub fn member_key(event_type: &str, group: &str, worker_id: &str) -> Vec<u8> {
        let mut key = group_prefix(event_type, group, "member");
        codec::put_str(&mut key, worker_id, Direction::Asc);
        key
    }

    /// The key recording the handler call in progress on a partition taken over from a worker
    /// that did not release it.
    pub fn call_key(event_type: &str, group: &str, partition: u32) -> Vec<u8> {
        partition_prefix(event_type, group, "call", partition)
    }

    /// The key of a partition's checkpoint.
    pub fn checkpoint_key(event_type: &str, group: &str, partition: u32) -> Vec<u8> {
        partition_prefix(event_type, group, "checkpoint", partition)
    }

    /// The key of a handled event kept for retention: ordered by handling time.
    pub fn done_key(event_type: &str, group: &str, handled_at: u64, event_id: &str) -> Vec<u8> {
        let mut key = group_prefix(event_type, group, "done");
        codec::put_u64(&mut key, handled_at, Direction::Asc);
        codec::put_str(&mut key, event_id, Direction::Asc);
        key
    }

    /// Where an undecodable pending or retry entry stored at `source` is set aside, bytes intact.
    pub fn corrupt_key(event_type: &str, group: &str, source: &[u8]) -> Vec<u8> {
        let mut key = group_prefix(event_type, group, "corrupt");
        codec::put_bytes(&mut key, source, Direction::Asc);
        key
    }

    /// The original key of an entry set aside at `key` by [`corrupt_key`].
    pub fn corrupt_source(key: &[u8], prefix_len: usize) -> Option<Vec<u8>> {
        match codec::take_value(key.get(prefix_len..)?, Direction::Asc).ok()? {
            (codec::KeyValue::Bytes(source), _) => Some(source),
            _ => None,
        }
    }

    /// The retained handled events handled before `before`.
    pub fn done_before_range(event_type: &str, group: &str, before: u64) -> KeyRange {
        let start = group_prefix(event_type, group, "done");
        let mut end = start.clone();
        codec::put_u64(&mut end, before, Direction::Asc);
        KeyRange::new(start, end)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_keys_pending_events_are_one_range_in_position_order() {
            let all = pending_key_range("user", "default", 7, "k", 0);
            assert!(all.contains(&pending_key("user", "default", 7, "k", 0, "")));
            assert!(all.contains(&pending_key("user", "default", 7, "k", u64::MAX, "z")));
            assert!(!all.contains(&pending_key("user", "default", 7, "k2", 1, "")));
            assert!(!all.contains(&pending_key("user", "default", 8, "k", 1, "")));
            let from = pending_key_range("user", "default", 7, "k", 50);
            assert!(from.contains(&pending_key("user", "default", 7, "k", 50, "")));
            assert!(!from.contains(&pending_key("user", "default", 7, "k", 49, "z")));
            assert!(
                pending_key("user", "default", 7, "k", 9, "z")
                    < pending_key("user", "default", 7, "k", 10, "a")
            );
        }

        #[test]
        fn partition_is_read_back_from_keys() {
            let prefix_len = group_prefix("user", "g", "pending").len();
            let key = pending_key("user", "g", 1023, "k", 5, "e");
            assert_eq!(partition_in_key(&key, prefix_len), Some(1023));
            assert_eq!(
                pending_key_parts(&key, prefix_len),
                Some((1023, "k".to_string(), 5))
            );
            let ready_len = group_prefix("user", "g", "ready").len();
            let mark = ready_key("user", "g", 12, "k");
            assert_eq!(
                ready_key_parts(&mark, ready_len),
                Some((12, "k".to_string()))
            );
            assert!(ready_range("user", "g", 12, 13).contains(&mark));
            assert!(!ready_range("user", "g", 13, 1024).contains(&mark));
        }

        #[test]
        fn groups_and_sections_never_overlap() {
            let a = KeyRange::prefix(&group_prefix("user", "a", "pending"));
            assert!(!a.contains(&pending_key("user", "ab", 0, "k", 0, "")));
            assert!(!a.contains(&ready_key("user", "a", 0, "k")));
            assert!(!a.contains(&retry_key("user", "a", 0, "k", 0, "")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_never_share_keys() {
        let a = record_range("user");
        let b = record_range("users");
        assert!(!a.contains(&record_key("users", "1")));
        assert!(!b.contains(&record_key("user", "1")));
        assert!(a.contains(&record_key("user", "")));
    }

    #[test]
    fn index_keys_end_with_the_id() {
        let prefix = index_prefix("post", "by_author", false);
        let mut key = prefix.clone();
        codec::put_str(&mut key, "ann", Direction::Asc);
        let key = finish_index_key(key, "p\0/1", false);
        assert_eq!(
            id_from_index_key(&key, prefix.len()).as_deref(),
            Some("p\0/1")
        );
    }

    #[test]
    fn namespaces_are_distinct() {
        assert_ne!(
            index_prefix("t", "i", true)[0],
            index_prefix("t", "i", false)[0]
        );
        assert!(format_key() < record_key("", ""));
    }
}
