//! The floor: the bare embedded backend writing and reading the very keys and bytes tito
//! writes, with tito's own keyspace and codec, and nothing else (no existence checks, no
//! schema, no JSON tree). The smoke test checks that its database is byte-identical to tito's.

use std::collections::BTreeSet;

use tito_core::backend::{AnyBackend, Backend, BackendTx, Embedded, KeyRange, TxKind, key_after};
use tito_core::codec::{self, Direction, Number};
use tito_core::{Durability, keyspace};

use super::tito::{AUTHOR_TABLE, BY_AUTHOR, BY_CATEGORY, POST_TABLE};
use crate::data::{Author, PAGE, Post};
use crate::system::{Page, Result, System};

/// Version byte of tito's record envelope (`model/record.rs`).
const RECORD_V1: u8 = 1;
/// Version byte of tito's index manifest (`plan.rs`).
const MANIFEST_V1: u8 = 1;

/// The raw backend: embedded, or TiKV when `TITO_TIKV_PD` names a cluster.
pub struct Raw {
    backend: AnyBackend,
}

impl Raw {
    /// A fresh temporary database at `durability`, or a fresh namespace on TiKV.
    pub async fn open(durability: Durability) -> Result<Self> {
        let fallback = Embedded::temporary_builder().durability(durability);
        let backend = AnyBackend::from_env_backend(fallback).await?;
        Ok(Raw { backend })
    }

    /// The bare backend (the smoke test compares its contents with tito's).
    pub fn backend(&self) -> &AnyBackend {
        &self.backend
    }
}

fn encode_record(value: &impl serde::Serialize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    out.push(RECORD_V1);
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

fn decode_record<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&RECORD_V1, body)) => Ok(serde_json::from_slice(body)?),
        _ => Err("unknown record version".into()),
    }
}

fn encode_manifest(keys: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![MANIFEST_V1];
    for key in keys {
        out.extend_from_slice(&(key.len() as u32).to_be_bytes());
        out.extend_from_slice(key);
    }
    out
}

fn decode_manifest(bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
    let Some((&MANIFEST_V1, mut rest)) = bytes.split_first() else {
        return Err("unknown manifest version".into());
    };
    let mut keys = Vec::new();
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*len) as usize;
        let key = tail.get(..len).ok_or("truncated manifest")?;
        keys.push(key.to_vec());
        rest = &tail[len..];
    }
    Ok(keys)
}

/// The prefix of the entries of `index` whose first field is `value`.
fn index_value_prefix(index: &str, value: &str) -> Vec<u8> {
    let mut key = keyspace::index_prefix(POST_TABLE, index, false);
    codec::put_str(&mut key, value, Direction::Asc);
    key
}

/// The index entry keys of `post`, sorted as tito's key plan sorts them.
fn index_keys(post: &Post) -> Result<Vec<Vec<u8>>> {
    let mut keys = Vec::with_capacity(2);
    for (index, value) in [(BY_AUTHOR, &post.author_id), (BY_CATEGORY, &post.category)] {
        let mut key = index_value_prefix(index, value);
        codec::put_number(&mut key, Number::Int(post.created_at), Direction::Asc)?;
        keys.push(keyspace::finish_index_key(key, &post.id, false));
    }
    keys.sort();
    Ok(keys)
}

impl Raw {
    /// Writes a new post's record, index entries and manifest in `tx`, as tito's `build` does.
    pub async fn write_new<T: BackendTx>(tx: &mut T, post: &Post) -> Result<()> {
        let keys = index_keys(post)?;
        tx.put(
            keyspace::record_key(POST_TABLE, &post.id),
            encode_record(post)?,
        )
        .await?;
        for key in &keys {
            tx.put(key.clone(), Vec::new()).await?;
        }
        tx.put(
            keyspace::manifest_key(POST_TABLE, &post.id),
            encode_manifest(&keys),
        )
        .await?;
        Ok(())
    }

    /// Scans one page of `range` in `index` and reads the records it names.
    async fn page<T: BackendTx>(
        tx: &mut T,
        index: &str,
        range: KeyRange,
    ) -> Result<(Vec<Post>, Option<Vec<u8>>)> {
        let prefix_len = keyspace::index_prefix(POST_TABLE, index, false).len();
        let mut entries = tx.scan(range, PAGE + 1).await?;
        let has_more = entries.len() > PAGE;
        entries.truncate(PAGE);
        let keys = entries
            .iter()
            .map(|(key, _)| {
                keyspace::id_from_index_key(key, prefix_len)
                    .map(|id| keyspace::record_key(POST_TABLE, &id))
                    .ok_or("malformed index entry")
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let posts = tx
            .batch_get(&keys)
            .await?
            .into_iter()
            .map(|bytes| decode_record(&bytes.ok_or("dangling index entry")?))
            .collect::<Result<Vec<Post>>>()?;
        let next = entries.pop().filter(|_| has_more).map(|(key, _)| key);
        Ok((posts, next))
    }
}

impl System for Raw {
    type Cursor = Vec<u8>;

    async fn insert_authors(&mut self, authors: Vec<Author>) -> Result<()> {
        let mut tx = self.backend.begin(TxKind::Optimistic).await?;
        for author in &authors {
            tx.put(
                keyspace::record_key(AUTHOR_TABLE, &author.id),
                encode_record(author)?,
            )
            .await?;
            tx.put(
                keyspace::manifest_key(AUTHOR_TABLE, &author.id),
                encode_manifest(&[]),
            )
            .await?;
        }
        Ok(tx.commit().await?)
    }

    async fn insert(&mut self, posts: Vec<Post>) -> Result<()> {
        let mut tx = self.backend.begin(TxKind::Optimistic).await?;
        for post in &posts {
            Self::write_new(&mut tx, post).await?;
        }
        Ok(tx.commit().await?)
    }

    async fn get(&mut self, id: &str) -> Result<Post> {
        let mut tx = self.backend.begin(TxKind::ReadOnly).await?;
        let bytes = tx.get(&keyspace::record_key(POST_TABLE, id)).await?;
        tx.commit().await?;
        decode_record(&bytes.ok_or("not found")?)
    }

    async fn page_by_author(
        &mut self,
        author: &str,
        after: Option<Vec<u8>>,
    ) -> Result<Page<Vec<u8>>> {
        let mut range = KeyRange::prefix(&index_value_prefix(BY_AUTHOR, author));
        if let Some(last) = after {
            range.start = key_after(&last);
        }
        let mut tx = self.backend.begin(TxKind::ReadOnly).await?;
        let (posts, next) = Self::page(&mut tx, BY_AUTHOR, range).await?;
        tx.commit().await?;
        Ok(Page { posts, next })
    }

    async fn page_by_category_with_author(&mut self, category: &str) -> Result<Vec<Post>> {
        let range = KeyRange::prefix(&index_value_prefix(BY_CATEGORY, category));
        let mut tx = self.backend.begin(TxKind::ReadOnly).await?;
        let (mut posts, _) = Self::page(&mut tx, BY_CATEGORY, range).await?;
        let ids: BTreeSet<&str> = posts.iter().map(|p| p.author_id.as_str()).collect();
        let keys: Vec<Vec<u8>> = ids
            .iter()
            .map(|id| keyspace::record_key(AUTHOR_TABLE, id))
            .collect();
        let found = tx.batch_get(&keys).await?;
        let authors = ids
            .into_iter()
            .zip(found)
            .filter_map(|(id, bytes)| bytes.map(|b| (id.to_string(), b)))
            .map(|(id, bytes)| Ok((id, decode_record::<Author>(&bytes)?)))
            .collect::<Result<std::collections::HashMap<String, Author>>>()?;
        tx.commit().await?;
        for post in &mut posts {
            post.author = authors.get(&post.author_id).cloned();
        }
        Ok(posts)
    }

    async fn update(&mut self, post: Post) -> Result<()> {
        let mut tx = self.backend.begin(TxKind::Optimistic).await?;
        let manifest_key = keyspace::manifest_key(POST_TABLE, &post.id);
        let old = decode_manifest(&tx.get(&manifest_key).await?.ok_or("not found")?)?;
        let new = index_keys(&post)?;
        for key in old.iter().filter(|k| !new.contains(k)) {
            tx.delete(key.clone()).await?;
        }
        tx.put(
            keyspace::record_key(POST_TABLE, &post.id),
            encode_record(&post)?,
        )
        .await?;
        for key in new.iter().filter(|k| !old.contains(k)) {
            tx.put(key.clone(), Vec::new()).await?;
        }
        if old != new {
            tx.put(manifest_key, encode_manifest(&new)).await?;
        }
        Ok(tx.commit().await?)
    }

    async fn delete(&mut self, id: &str) -> Result<()> {
        let mut tx = self.backend.begin(TxKind::Optimistic).await?;
        let manifest_key = keyspace::manifest_key(POST_TABLE, id);
        let keys = decode_manifest(&tx.get(&manifest_key).await?.ok_or("not found")?)?;
        for key in keys {
            tx.delete(key).await?;
        }
        tx.delete(keyspace::record_key(POST_TABLE, id)).await?;
        tx.delete(manifest_key).await?;
        Ok(tx.commit().await?)
    }
}
