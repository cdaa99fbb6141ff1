//! Concurrent writers: [`WRITERS`] writers share one database and each inserts posts one per
//! transaction, as the request handlers of a service would. tito's writers are tasks on a
//! multi-threaded Tokio runtime (its API is async); SQLite's and native_db's are threads (theirs
//! is blocking). SQLite gets its best concurrent setup: a connection per writer, WAL,
//! `BEGIN IMMEDIATE` and a busy timeout.

use std::time::Instant;

use crate::data::{Plan, Post};
use crate::system::Result;
use crate::systems::AnySystem;

/// Writers sharing the database.
pub const WRITERS: usize = 8;

/// What one burst of concurrent inserts measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Burst {
    /// From the first insert's start to the last one's end, nanoseconds.
    pub wall_nanos: u64,
    /// One latency per insert, nanoseconds.
    pub nanos: Vec<u64>,
}

/// The posts of operations `start..end` dealt out to the writers in turn. They follow the ones
/// the single-record workloads insert, and stay.
fn dealt(plan: &Plan, start: u64, end: u64) -> Vec<Vec<Post>> {
    let mut shares = vec![Vec::new(); WRITERS];
    for j in start..end {
        shares[(j - start) as usize % WRITERS].push(plan.post(plan.rows + plan.ops + j));
    }
    shares
}

/// Times `insert` over one post, for the writers' latencies.
fn timed(nanos: &mut Vec<u64>, insert: impl FnOnce() -> Result<()>) -> Result<()> {
    let t = Instant::now();
    insert()?;
    nanos.push(t.elapsed().as_nanos() as u64);
    Ok(())
}

/// Runs operations `start..end` of the concurrent-writer workload on `system`; `None` for the
/// raw floor, which has no place in it.
pub fn burst(system: &AnySystem, plan: &Plan, start: u64, end: u64) -> Result<Option<Burst>> {
    let shares = dealt(plan, start, end);
    Ok(Some(match system {
        AnySystem::Tito(tito) => tito.concurrent_inserts(shares)?,
        AnySystem::Sqlite(sqlite) => sqlite.concurrent_inserts(shares)?,
        AnySystem::NativeDb(native) => native.concurrent_inserts(shares)?,
        AnySystem::Raw(_) => return Ok(None),
    }))
}

impl Burst {
    /// A burst that started at `t`, from each writer's latencies.
    pub fn since(t: Instant, per_writer: Vec<Vec<u64>>) -> Burst {
        Burst {
            wall_nanos: t.elapsed().as_nanos() as u64,
            nanos: per_writer.into_iter().flatten().collect(),
        }
    }

    /// Inserts per second over the wall time.
    pub fn per_sec(&self) -> f64 {
        self.nanos.len() as f64 / (self.wall_nanos.max(1) as f64 / 1e9)
    }
}

/// Runs one blocking writer per share on its own thread, each calling `insert` with its
/// connection from `connect` (opened before the clock starts).
pub fn on_threads<C: Send>(
    shares: Vec<Vec<Post>>,
    connect: impl Fn() -> Result<C>,
    insert: impl Fn(&mut C, &Post) -> Result<()> + Sync,
) -> Result<Burst> {
    let connections = (0..shares.len())
        .map(|_| connect())
        .collect::<Result<Vec<C>>>()?;
    let t = Instant::now();
    let per_writer = std::thread::scope(|scope| {
        let insert = &insert;
        let writers: Vec<_> = (shares.into_iter().zip(connections))
            .map(|(posts, mut connection)| {
                scope.spawn(move || {
                    let mut nanos = Vec::with_capacity(posts.len());
                    for post in &posts {
                        timed(&mut nanos, || insert(&mut connection, post))?;
                    }
                    Ok(nanos)
                })
            })
            .collect();
        writers
            .into_iter()
            .map(|writer| writer.join().map_err(|_| "a writer thread panicked")?)
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(Burst::since(t, per_writer))
}
