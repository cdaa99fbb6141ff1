//! The operations every benchmarked system implements, and the workloads built from them.
//!
//! A workload is a numbered sequence of operations derived from the [`Plan`]; a slice of it
//! runs on one system and returns one latency per operation plus a digest of what the
//! operations returned, so the driver can check that all systems did the same work.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::time::Instant;

use crate::data::{BATCH, Plan, Post};

/// Errors of any system, boxed: the benchmark only reports them.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// Result of a benchmark operation.
pub type Result<T> = std::result::Result<T, Error>;

/// A page of posts and the cursor to the next one.
#[derive(Debug)]
pub struct Page<C> {
    /// At most [`PAGE`](crate::data::PAGE) posts, in index order.
    pub posts: Vec<Post>,
    /// Continues after the last post; `None` when there are no more.
    pub next: Option<C>,
}

/// A storage system under test. Every write is its own transaction at the system's durability.
#[allow(async_fn_in_trait)]
pub trait System {
    /// What continues a page of posts by author.
    type Cursor;

    /// Stores the authors (setup, not timed).
    async fn insert_authors(&mut self, authors: Vec<crate::data::Author>) -> Result<()>;
    /// Stores new posts in one transaction, maintaining both indexes.
    async fn insert(&mut self, posts: Vec<Post>) -> Result<()>;
    /// Reads a post by id.
    async fn get(&mut self, id: &str) -> Result<Post>;
    /// A page of the posts of `author` by creation time, after `after`.
    async fn page_by_author(
        &mut self,
        author: &str,
        after: Option<Self::Cursor>,
    ) -> Result<Page<Self::Cursor>>;
    /// The first page of the posts of `category` by creation time, each with its author.
    async fn page_by_category_with_author(&mut self, category: &str) -> Result<Vec<Post>>;
    /// Replaces a stored post (here: one indexed field changes).
    async fn update(&mut self, post: Post) -> Result<()>;
    /// Removes a post by id.
    async fn delete(&mut self, id: &str) -> Result<()>;
}

/// The measured workloads, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Loads the rows, 100 records per transaction.
    Insert100,
    /// Inserts one record per transaction.
    Insert1,
    /// Reads by random id.
    Get,
    /// First page of 10 by author.
    Query,
    /// Second page through the first page's cursor (the first page is not timed).
    QueryNext,
    /// A page of 10 by category with each post's author hydrated.
    Relation,
    /// Changes one indexed field of a record.
    Update,
    /// Deletes by id.
    Delete,
}

impl Workload {
    /// Every workload, in run order.
    pub const ALL: [Workload; 8] = [
        Workload::Insert100,
        Workload::Insert1,
        Workload::Get,
        Workload::Query,
        Workload::QueryNext,
        Workload::Relation,
        Workload::Update,
        Workload::Delete,
    ];

    /// The short name used on the command line between processes.
    pub fn key(self) -> &'static str {
        match self {
            Workload::Insert100 => "insert100",
            Workload::Insert1 => "insert1",
            Workload::Get => "get",
            Workload::Query => "query",
            Workload::QueryNext => "query_next",
            Workload::Relation => "relation",
            Workload::Update => "update",
            Workload::Delete => "delete",
        }
    }

    /// A readable title for tables.
    pub fn title(self) -> &'static str {
        match self {
            Workload::Insert100 => "insert, 100 records per transaction (per transaction)",
            Workload::Insert1 => "insert, 1 record per transaction",
            Workload::Get => "get by id",
            Workload::Query => "index query, first page of 10",
            Workload::QueryNext => "index query, next page of 10 through the cursor",
            Workload::Relation => "page of 10 with one relationship hydrated",
            Workload::Update => "update changing one indexed field",
            Workload::Delete => "delete by id",
        }
    }

    /// Parses [`key`](Self::key).
    pub fn from_key(key: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.key() == key)
    }

    /// Whether the workload commits writes (its cost depends on durability).
    pub fn writes(self) -> bool {
        matches!(
            self,
            Workload::Insert100 | Workload::Insert1 | Workload::Update | Workload::Delete
        )
    }

    /// Operations in the workload.
    pub fn ops(self, plan: &Plan) -> u64 {
        match self {
            Workload::Insert100 => plan.rows / BATCH,
            _ => plan.ops,
        }
    }
}

/// Latencies (nanoseconds, one per operation) and result digest of a slice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SliceResult {
    /// One latency per operation, in nanoseconds.
    pub nanos: Vec<u64>,
    /// A digest of the operations' results; equal across systems doing the same work.
    pub digest: u64,
}

fn digest_of(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Stores the authors, the setup every system needs before the workloads.
pub async fn setup<S: System>(system: &mut S, plan: &Plan) -> Result<()> {
    let authors = (0..plan.groups()).map(|i| plan.author(i)).collect();
    system.insert_authors(authors).await
}

/// Runs operations `start..end` of `workload` on `system`.
pub async fn run_slice<S: System>(
    system: &mut S,
    plan: &Plan,
    workload: Workload,
    start: u64,
    end: u64,
) -> Result<SliceResult> {
    let mut result = SliceResult {
        nanos: Vec::with_capacity((end - start) as usize),
        digest: 0,
    };
    for j in start..end {
        let (nanos, digest) = run_op(system, plan, workload, j).await?;
        result.nanos.push(nanos);
        result.digest = result.digest.wrapping_add(digest_of(&(j, digest)));
    }
    Ok(result)
}

/// Runs operation `j` of `workload`, returning its latency and a digest of its result.
async fn run_op<S: System>(
    system: &mut S,
    plan: &Plan,
    workload: Workload,
    j: u64,
) -> Result<(u64, u64)> {
    let ids = |posts: &[Post]| -> Vec<String> { posts.iter().map(|p| p.id.clone()).collect() };
    // Each arm reads the elapsed time before hashing the result (tuples evaluate left to
    // right), so the digest is never timed.
    let (elapsed, digest) = match workload {
        Workload::Insert100 => {
            let posts = (j * BATCH..(j + 1) * BATCH).map(|i| plan.post(i)).collect();
            let t = Instant::now();
            system.insert(posts).await?;
            (t.elapsed(), 0)
        }
        Workload::Insert1 => {
            let post = plan.post(plan.rows + j);
            let t = Instant::now();
            system.insert(vec![post]).await?;
            (t.elapsed(), 0)
        }
        Workload::Get => {
            let id = crate::data::post_id(plan.get_target(j));
            let t = Instant::now();
            let post = system.get(&id).await?;
            (t.elapsed(), digest_of(&post))
        }
        Workload::Query => {
            let author = plan.query_author(j);
            let t = Instant::now();
            let page = system.page_by_author(&author, None).await?;
            (
                t.elapsed(),
                digest_of(&(ids(&page.posts), page.next.is_some())),
            )
        }
        Workload::QueryNext => {
            let author = plan.query_author(j);
            let first = system.page_by_author(&author, None).await?;
            let t = Instant::now();
            let page = system.page_by_author(&author, first.next).await?;
            (
                t.elapsed(),
                digest_of(&(ids(&page.posts), page.next.is_some())),
            )
        }
        Workload::Relation => {
            let category = plan.query_category(j);
            let t = Instant::now();
            let posts = system.page_by_category_with_author(&category).await?;
            (t.elapsed(), digest_of(&posts))
        }
        Workload::Update => {
            let post = plan.updated_post(plan.update_target(j));
            let t = Instant::now();
            system.update(post).await?;
            (t.elapsed(), 0)
        }
        Workload::Delete => {
            let id = crate::data::post_id(plan.delete_target(j));
            let t = Instant::now();
            system.delete(&id).await?;
            (t.elapsed(), 0)
        }
    };
    Ok((elapsed.as_nanos() as u64, digest))
}
