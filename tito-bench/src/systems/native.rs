//! native_db (on redb) with the equivalent primary and secondary keys.
//!
//! native_db 0.8 has no durability setting: every read-write commit is a redb `Immediate`
//! commit, which fsyncs. Its write figures are therefore at `Durability::Sync` whatever the run's
//! durability; the report says so next to them.
//!
//! Composite secondary keys are tuples `(String, i64)`, which native_db encodes by concatenating
//! the string bytes and the big-endian integer: unambiguous here only because the ids and
//! categories have a fixed width, and ordered only for non-negative times.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::OnceLock;

use native_db::transaction::RTransaction;
use native_db::{Builder, Database, Models, ToKey, native_db};
use native_model::{Model, native_model};
use serde::{Deserialize, Serialize};

use crate::data::{Author, PAGE, Post};
use crate::system::{Page, Result, System};
use crate::writers::{self, Burst};

/// A post as native_db stores it (the relationship field is not stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[native_model(id = 1, version = 1)]
#[native_db(
    primary_key(pk -> String),
    secondary_key(by_author -> (String, i64)),
    secondary_key(by_category -> (String, i64))
)]
pub struct NPost {
    id: String,
    author_id: String,
    body: String,
    category: String,
    created_at: i64,
    title: String,
}

impl NPost {
    fn pk(&self) -> String {
        self.id.clone()
    }

    fn by_author(&self) -> (String, i64) {
        (self.author_id.clone(), self.created_at)
    }

    fn by_category(&self) -> (String, i64) {
        (self.category.clone(), self.created_at)
    }
}

impl From<Post> for NPost {
    fn from(p: Post) -> Self {
        NPost {
            id: p.id,
            author_id: p.author_id,
            body: p.body,
            category: p.category,
            created_at: p.created_at,
            title: p.title,
        }
    }
}

impl From<NPost> for Post {
    fn from(p: NPost) -> Self {
        Post {
            author: None,
            id: p.id,
            author_id: p.author_id,
            body: p.body,
            category: p.category,
            created_at: p.created_at,
            title: p.title,
        }
    }
}

/// An author as native_db stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[native_model(id = 2, version = 1)]
#[native_db]
pub struct NAuthor {
    #[primary_key]
    id: String,
    name: String,
}

fn models() -> Result<&'static Models> {
    static MODELS: OnceLock<Models> = OnceLock::new();
    if let Some(models) = MODELS.get() {
        return Ok(models);
    }
    let mut models = Models::new();
    models.define::<NPost>()?;
    models.define::<NAuthor>()?;
    Ok(MODELS.get_or_init(|| models))
}

/// A native_db database in a temporary folder, removed on drop.
pub struct NativeDb {
    db: Database<'static>,
    dir: PathBuf,
}

impl Drop for NativeDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl NativeDb {
    /// A fresh database with a 32 MiB cache (fjall's default cache).
    pub fn open() -> Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("tito-bench-native-db-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let db = Builder::new()
            .set_cache_size(32 << 20)
            .create(models()?, dir.join("bench.redb"))?;
        Ok(NativeDb { db, dir })
    }

    /// Inserts each share of posts, one per transaction, from its own thread; native_db runs
    /// one write transaction at a time, so the writers queue for it.
    pub fn concurrent_inserts(&self, shares: Vec<Vec<Post>>) -> Result<Burst> {
        writers::on_threads(
            shares,
            || Ok(()),
            |(), post| {
                let rw = self.db.rw_transaction()?;
                rw.insert(NPost::from(post.clone()))?;
                Ok(rw.commit()?)
            },
        )
    }
}

/// A range of `(value, created_at)` secondary keys.
type TimeRange = (Bound<(String, i64)>, Bound<(String, i64)>);

/// Up to `limit` posts of `key` entries in `range`, read in `r`.
fn scan(r: &RTransaction<'_>, key: NPostKey, range: TimeRange, limit: usize) -> Result<Vec<Post>> {
    let scan = r.scan().secondary::<NPost>(key)?;
    let mut posts = Vec::with_capacity(limit);
    for row in scan.range(range)?.take(limit) {
        posts.push(Post::from(row?));
    }
    Ok(posts)
}

/// Where a page starts: after the time `after` (native_db refuses excluded lower bounds, so
/// the next integer is included instead) or at the beginning.
fn from(value: &str, after: Option<i64>) -> Bound<(String, i64)> {
    Bound::Included((
        value.to_string(),
        after.map_or(0, |at| at.saturating_add(1)),
    ))
}

fn to_end(value: &str) -> Bound<(String, i64)> {
    Bound::Included((value.to_string(), i64::MAX))
}

impl System for NativeDb {
    type Cursor = i64;

    async fn insert_authors(&mut self, authors: Vec<Author>) -> Result<()> {
        let rw = self.db.rw_transaction()?;
        for a in authors {
            rw.insert(NAuthor {
                id: a.id,
                name: a.name,
            })?;
        }
        Ok(rw.commit()?)
    }

    async fn insert(&mut self, posts: Vec<Post>) -> Result<()> {
        let rw = self.db.rw_transaction()?;
        for post in posts {
            rw.insert(NPost::from(post))?;
        }
        Ok(rw.commit()?)
    }

    async fn get(&mut self, id: &str) -> Result<Post> {
        let r = self.db.r_transaction()?;
        let post: Option<NPost> = r.get().primary(id)?;
        Ok(post.ok_or("not found")?.into())
    }

    async fn page_by_author(&mut self, author: &str, after: Option<i64>) -> Result<Page<i64>> {
        let range = (from(author, after), to_end(author));
        let r = self.db.r_transaction()?;
        let mut posts = scan(&r, NPostKey::by_author, range, PAGE + 1)?;
        let has_more = posts.len() > PAGE;
        posts.truncate(PAGE);
        let next = posts.last().filter(|_| has_more).map(|p| p.created_at);
        Ok(Page { posts, next })
    }

    async fn page_by_category_with_author(&mut self, category: &str) -> Result<Vec<Post>> {
        let range = (from(category, None), to_end(category));
        let r = self.db.r_transaction()?;
        let mut posts = scan(&r, NPostKey::by_category, range, PAGE)?;
        let mut authors: HashMap<String, Option<Author>> = HashMap::new();
        for post in &mut posts {
            if !authors.contains_key(&post.author_id) {
                let found: Option<NAuthor> = r.get().primary(post.author_id.as_str())?;
                let author = found.map(|a| Author {
                    id: a.id,
                    name: a.name,
                });
                authors.insert(post.author_id.clone(), author);
            }
            post.author = authors.get(&post.author_id).cloned().flatten();
        }
        Ok(posts)
    }

    async fn update(&mut self, post: Post) -> Result<()> {
        let rw = self.db.rw_transaction()?;
        if rw.upsert(NPost::from(post))?.is_none() {
            return Err("not found".into());
        }
        Ok(rw.commit()?)
    }

    async fn delete(&mut self, id: &str) -> Result<()> {
        let rw = self.db.rw_transaction()?;
        let post: NPost = rw.get().primary(id)?.ok_or("not found")?;
        rw.remove(post)?;
        Ok(rw.commit()?)
    }
}
