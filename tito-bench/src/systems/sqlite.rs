//! SQLite through rusqlite: WAL, the same columns and secondary indexes, cached prepared
//! statements, keyset pagination and a join for the relationship.
//!
//! Durability: in WAL mode `synchronous=NORMAL` writes each commit to the WAL file without
//! fsync (fsync happens only at checkpoints): a commit survives a crash of the process but not
//! a power loss, exactly tito's `Durability::Buffered`. `synchronous=FULL` fsyncs the WAL at
//! every commit, like `Durability::Sync`. (`OFF` would never fsync, not even at checkpoints.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use tito_core::Durability;

use crate::data::{Author, PAGE, Post};
use crate::system::{Page, Result, System};
use crate::writers::{self, Burst};

/// The database file in the temporary folder.
const FILE: &str = "bench.db";

/// A SQLite database in a temporary folder, removed on drop.
pub struct Sqlite {
    conn: Connection,
    dir: PathBuf,
    synchronous: &'static str,
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const SCHEMA: &str = "
    CREATE TABLE author (id TEXT PRIMARY KEY, name TEXT NOT NULL);
    CREATE TABLE post (
        id TEXT PRIMARY KEY,
        author_id TEXT NOT NULL,
        body TEXT NOT NULL,
        category TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        title TEXT NOT NULL
    );
    CREATE INDEX post_by_author ON post (author_id, created_at);
    CREATE INDEX post_by_category ON post (category, created_at);
";

const POST_COLUMNS: &str = "id, author_id, body, category, created_at, title";

fn post_from(row: &Row<'_>) -> rusqlite::Result<Post> {
    Ok(Post {
        author: None,
        id: row.get(0)?,
        author_id: row.get(1)?,
        body: row.get(2)?,
        category: row.get(3)?,
        created_at: row.get(4)?,
        title: row.get(5)?,
    })
}

impl Sqlite {
    /// A fresh database at `durability`, with a 32 MiB page cache (fjall's default cache).
    pub fn open(durability: Durability) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("tito-bench-sqlite-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let synchronous = match durability {
            Durability::Sync => "FULL",
            _ => "NORMAL",
        };
        let conn = Self::connect(&dir, synchronous)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("SQLite refused WAL mode: {mode}").into());
        }
        conn.execute_batch(SCHEMA)?;
        Ok(Sqlite {
            conn,
            dir,
            synchronous,
        })
    }

    /// A connection to the database in `dir`: a 32 MiB page cache, cached statements, and
    /// up to 30 s of waiting when another connection holds the write lock.
    fn connect(dir: &Path, synchronous: &str) -> Result<Connection> {
        let conn = Connection::open(dir.join(FILE))?;
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.execute_batch(&format!(
            "PRAGMA synchronous = {synchronous}; PRAGMA cache_size = -32768;"
        ))?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(conn)
    }

    /// Inserts each share of posts, one per `BEGIN IMMEDIATE` transaction, from its own thread
    /// and connection.
    pub fn concurrent_inserts(&self, shares: Vec<Vec<Post>>) -> Result<Burst> {
        let connect = || Self::connect(&self.dir, self.synchronous);
        writers::on_threads(shares, connect, |conn, post| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            Self::insert_post(&tx, post)?;
            Ok(tx.commit()?)
        })
    }

    fn insert_post(conn: &Connection, post: &Post) -> Result<()> {
        conn.prepare_cached(&format!(
            "INSERT INTO post ({POST_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
        ))?
        .execute(params![
            post.id,
            post.author_id,
            post.body,
            post.category,
            post.created_at,
            post.title
        ])?;
        Ok(())
    }

    fn page(&self, author: &str, after: i64) -> Result<Vec<Post>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {POST_COLUMNS} FROM post WHERE author_id = ?1 AND created_at > ?2 \
             ORDER BY created_at LIMIT ?3"
        ))?;
        let rows = stmt.query_map(params![author, after, PAGE as i64 + 1], post_from)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

impl System for Sqlite {
    type Cursor = i64;

    async fn insert_authors(&mut self, authors: Vec<Author>) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached("INSERT INTO author (id, name) VALUES (?1, ?2)")?;
            for author in &authors {
                stmt.execute(params![author.id, author.name])?;
            }
        }
        Ok(tx.commit()?)
    }

    async fn insert(&mut self, posts: Vec<Post>) -> Result<()> {
        if let [post] = posts.as_slice() {
            // A single statement in autocommit mode is its own transaction.
            return Self::insert_post(&self.conn, post);
        }
        let tx = self.conn.transaction()?;
        for post in &posts {
            Self::insert_post(&tx, post)?;
        }
        Ok(tx.commit()?)
    }

    async fn get(&mut self, id: &str) -> Result<Post> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {POST_COLUMNS} FROM post WHERE id = ?1"))?;
        stmt.query_row(params![id], post_from)
            .optional()?
            .ok_or_else(|| "not found".into())
    }

    async fn page_by_author(&mut self, author: &str, after: Option<i64>) -> Result<Page<i64>> {
        let mut posts = self.page(author, after.unwrap_or(i64::MIN))?;
        let has_more = posts.len() > PAGE;
        posts.truncate(PAGE);
        let next = posts.last().filter(|_| has_more).map(|p| p.created_at);
        Ok(Page { posts, next })
    }

    async fn page_by_category_with_author(&mut self, category: &str) -> Result<Vec<Post>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT p.id, p.author_id, p.body, p.category, p.created_at, p.title, a.id, a.name \
             FROM post p LEFT JOIN author a ON a.id = p.author_id \
             WHERE p.category = ?1 ORDER BY p.created_at LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![category, PAGE as i64], |row| {
            let mut post = post_from(row)?;
            let id: Option<String> = row.get(6)?;
            post.author = match id {
                Some(id) => Some(Author {
                    id,
                    name: row.get(7)?,
                }),
                None => None,
            };
            Ok(post)
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    async fn update(&mut self, post: Post) -> Result<()> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE post SET author_id = ?2, body = ?3, category = ?4, created_at = ?5, \
                 title = ?6 WHERE id = ?1",
            )?
            .execute(params![
                post.id,
                post.author_id,
                post.body,
                post.category,
                post.created_at,
                post.title
            ])?;
        if changed != 1 {
            return Err("not found".into());
        }
        Ok(())
    }

    async fn delete(&mut self, id: &str) -> Result<()> {
        let changed = self
            .conn
            .prepare_cached("DELETE FROM post WHERE id = ?1")?
            .execute(params![id])?;
        if changed != 1 {
            return Err("not found".into());
        }
        Ok(())
    }
}
