//! Model-free inspection of a database: its tables, raw records and index entries, for tools
//! such as the `tito` command line that know no model types.

use serde_json::Value;

use crate::backend::{Backend, KeyRange, key_after, prefix_end};
use crate::codec;
use crate::engine::TitoEngine;
use crate::error::{Result, TitoError};
use crate::keyspace;
use crate::model::record;
use crate::txn::TitoTransaction;

/// Rows read per scan while counting.
const PAGE: usize = 1000;

/// A table and how many records it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableStats {
    /// The table name.
    pub table: String,
    /// Records stored in it.
    pub records: u64,
}

/// How many keys a part of the database holds, and their size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Keys stored.
    pub keys: u64,
    /// Bytes of those keys and their values, as tito stores them (before the engine's
    /// compression and overhead).
    pub bytes: u64,
}

/// What a table holds: its records, their index manifests and each index's entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableUsage {
    /// The table name.
    pub table: String,
    /// Its records.
    pub records: Usage,
    /// The per-record lists of owned index entries.
    pub manifests: Usage,
    /// Each index with stored entries, in name order (non-unique ones first).
    pub indexes: Vec<IndexUsage>,
}

/// What one index holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexUsage {
    /// The index name.
    pub index: String,
    /// Whether it is a unique index.
    pub unique: bool,
    /// Its entries.
    pub entries: Usage,
}

/// A page of an index's entries and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPage {
    /// The entries, in index order.
    pub entries: Vec<IndexEntryView>,
    /// Where the next page starts (for [`TitoEngine::raw_index_page`]), if this one is full.
    pub next: Option<String>,
}

/// One entry of an index: the indexed values, printed readably, and the record it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntryView {
    /// The entry's field values, `/`-separated (strings quoted).
    pub values: String,
    /// The id of the record.
    pub id: String,
}

impl<B: Backend> TitoEngine<B> {
    /// Every table holding records, with its record count, from one snapshot.
    pub async fn tables(&self) -> Result<Vec<TableStats>> {
        self.read(|tx| async move {
            let mut tables = Vec::new();
            let mut next = keyspace::all_records();
            // Skip from table to table: read one key, count that table, jump past it.
            while let Some((key, _)) = tx.scan(next.clone(), 1).await?.pop() {
                let Some((table, _)) = keyspace::parse_record_key(&key) else {
                    next.start = key_after(&key);
                    continue;
                };
                let range = keyspace::record_range(&table);
                let records = usage(&tx, range.clone()).await?.keys;
                tables.push(TableStats { table, records });
                match range.end {
                    Some(end) => next.start = end,
                    None => break,
                }
            }
            Ok(tables)
        })
        .await
    }

    /// The keys and bytes `table` holds: records, manifests and each index, from one snapshot.
    pub async fn table_usage(&self, table: &str) -> Result<TableUsage> {
        self.read(|tx| async move {
            let records = usage(&tx, keyspace::record_range(table)).await?;
            let manifests = usage(&tx, keyspace::manifest_range(table)).await?;
            let mut indexes = Vec::new();
            for unique in [false, true] {
                let mut next = keyspace::index_range(table, unique);
                let prefix_len = next.start.len();
                // Skip from index to index, as `tables` does from table to table.
                while let Some((key, _)) = tx.scan(next.clone(), 1).await?.pop() {
                    let Some(index) = keyspace::index_in_key(&key, prefix_len) else {
                        next.start = key_after(&key);
                        continue;
                    };
                    let range = KeyRange::prefix(&keyspace::index_prefix(table, &index, unique));
                    let entries = usage(&tx, range.clone()).await?;
                    indexes.push(IndexUsage {
                        index,
                        unique,
                        entries,
                    });
                    match range.end {
                        Some(end) => next.start = end,
                        None => break,
                    }
                }
            }
            Ok(TableUsage {
                table: table.to_string(),
                records,
                manifests,
                indexes,
            })
        })
        .await
    }

    /// Up to `limit` records of `table` as JSON, with their ids, starting after id `after`.
    pub async fn raw_records(
        &self,
        table: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Value)>> {
        let mut range = keyspace::record_range(table);
        if let Some(after) = after {
            range.start = key_after(&keyspace::record_key(table, after));
        }
        self.read(|tx| async move {
            let rows = tx.scan(range, limit).await?;
            rows.iter()
                .map(|(key, bytes)| {
                    let id = keyspace::parse_record_key(key).map_or_else(String::new, |(_, id)| id);
                    Ok((id, record::decode_value(key, bytes)?))
                })
                .collect()
        })
        .await
    }

    /// Record `id` of `table` as JSON, or `None` if there is none.
    pub async fn raw_record(&self, table: &str, id: &str) -> Result<Option<Value>> {
        let key = keyspace::record_key(table, id);
        self.read(|tx| async move {
            match tx.get(&key).await? {
                Some(bytes) => record::decode_value(&key, &bytes).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    /// Up to `limit` entries of index `index` of `table`, in index order.
    pub async fn raw_index_entries(
        &self,
        table: &str,
        index: &str,
        limit: usize,
    ) -> Result<Vec<IndexEntryView>> {
        Ok(self
            .raw_index_page(table, index, None, limit)
            .await?
            .entries)
    }

    /// Up to `limit` entries of index `index` of `table` in index order, starting after the
    /// entry `after` names (an [`IndexPage::next`] of the same index).
    pub async fn raw_index_page(
        &self,
        table: &str,
        index: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<IndexPage> {
        let after = after.map(from_hex).transpose()?;
        let after = after.as_deref();
        self.read(|tx| async move {
            let mut entries = Vec::new();
            let mut last = None;
            let plain = keyspace::index_prefix(table, index, false);
            let unique = keyspace::index_prefix(table, index, true);
            if let Some(after) = after
                && !after.starts_with(&plain)
                && !after.starts_with(&unique)
            {
                return Err(TitoError::InvalidCursor(format!(
                    "not a cursor of index `{index}` of `{table}`"
                )));
            }
            for (unique, prefix) in [(false, plain), (true, unique)] {
                let mut range = KeyRange {
                    end: prefix_end(&prefix),
                    start: prefix.clone(),
                };
                match after {
                    Some(after) if after.starts_with(&prefix) => range.start = key_after(after),
                    // The cursor is among the unique entries, which come after the plain ones.
                    Some(_) if !unique => continue,
                    _ => {}
                }
                for (key, value) in tx.scan(range, limit - entries.len()).await? {
                    let (values, id) = if unique {
                        let id = String::from_utf8_lossy(&value).into_owned();
                        (&key[prefix.len()..], id)
                    } else {
                        keyspace::split_index_key(&key, prefix.len())
                            .unwrap_or((&key[prefix.len()..], String::new()))
                    };
                    entries.push(IndexEntryView {
                        values: codec::display_key(values),
                        id,
                    });
                    last = Some(key);
                }
                if entries.len() == limit {
                    break;
                }
            }
            let next = last.filter(|_| entries.len() == limit).map(|k| to_hex(&k));
            Ok(IndexPage { entries, next })
        })
        .await
    }
}

/// `bytes` as lowercase hexadecimal: the form of index page cursors.
fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of an index page cursor.
fn from_hex(text: &str) -> Result<Vec<u8>> {
    let invalid = || TitoError::InvalidCursor("not an index page cursor".into());
    if !text.len().is_multiple_of(2) || text.is_empty() {
        return Err(invalid());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(invalid)
        })
        .collect()
}

/// The keys in `range` and their bytes, counted a page at a time.
async fn usage<B: Backend>(tx: &TitoTransaction<B>, mut range: KeyRange) -> Result<Usage> {
    let mut total = Usage::default();
    loop {
        let rows = tx.scan(range.clone(), PAGE).await?;
        total.keys += rows.len() as u64;
        total.bytes += (rows.iter())
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum::<u64>();
        match rows.last() {
            Some((last, _)) if rows.len() == PAGE => range.start = key_after(last),
            _ => return Ok(total),
        }
    }
}
