//! The keyspace layout: the one place that builds record, index, manifest, queue and metadata
//! keys.
//!
//! Every key starts with a namespace byte, then the table (or event type) as an encoded string
//! component, so two models never share keys and a table's keys form one contiguous range.
//! Components use the order-preserving [`codec`](crate::codec); the layout is described in
//! `docs/key-format.md`.
//!
//! | namespace | key | value |
//! |---|---|---|
//! | `0x01` meta | `str(name)` | metadata, e.g. the format version |
//! | `0x10` record | `str(table) str(id)` | the record envelope |
//! | `0x11` index | `str(table) str(index) values… str(id)` | empty |
//! | `0x12` unique | `str(table) str(index) values…` | the id holding the value |
//! | `0x13` manifest | `str(table) str(id)` | the record's index keys |
//! | `0x20` queue | `str(event_type) …` | see [`queue`] |

use crate::backend::KeyRange;
use crate::codec::{self, Direction};

/// Version of the key layout and record envelope; stored under [`format_key`].
pub const FORMAT_VERSION: u32 = 1;

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

/// The key of a metadata entry.
pub fn meta_key(name: &str) -> Vec<u8> {
    start(META, name, 0)
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

/// The key of the index manifest of record `id`: the index keys it currently owns.
pub fn manifest_key(table: &str, id: &str) -> Vec<u8> {
    let mut key = start(MANIFEST, table, id.len() + 2);
    codec::put_str(&mut key, id, Direction::Asc);
    key
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
    let mut rest = key.get(prefix_len..)?;
    let mut last = None;
    while !rest.is_empty() {
        let (value, used) = codec::take_value(rest, Direction::Asc).ok()?;
        last = Some(value);
        rest = rest.get(used..)?;
    }
    match last {
        Some(codec::KeyValue::Str(id)) => Some(id),
        _ => None,
    }
}

/// Keys of the event queue; only the queue builds on these.
pub mod queue {
    use super::*;

    /// The prefix of everything one consumer group of one event type owns, under `section`
    /// (a short fixed name such as `"pending"` or `"lease"`).
    pub fn group_prefix(event_type: &str, group: &str, section: &str) -> Vec<u8> {
        let mut key = start(QUEUE, event_type, group.len() + section.len() + 4);
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

    /// The prefix of one partition's pending events of a consumer group.
    pub fn pending_partition_prefix(event_type: &str, group: &str, partition: u32) -> Vec<u8> {
        let mut key = group_prefix(event_type, group, "pending");
        codec::put_u64(&mut key, u64::from(partition), Direction::Asc);
        key
    }

    /// The key of a pending event: ordered by partition, then due time, then event id.
    pub fn pending_key(
        event_type: &str,
        group: &str,
        partition: u32,
        due_micros: u64,
        event_id: &str,
    ) -> Vec<u8> {
        let mut key = pending_partition_prefix(event_type, group, partition);
        codec::put_u64(&mut key, due_micros, Direction::Asc);
        codec::put_str(&mut key, event_id, Direction::Asc);
        key
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
