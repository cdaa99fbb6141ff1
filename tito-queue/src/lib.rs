//! tito's durable partitioned event queue and its Tokio workers.
//!
//! Events are written by model writes with `TitoOptions::with_events(..)`, in the same
//! transaction as the data (see `tito_core::event`). Each event type is an independent queue
//! of 1024 partitions; an event's partition is a fixed hash of its record's `partition_key()`.
//!
//! Guarantees:
//! - **At least once, nothing skipped.** An event stays pending until a handler succeeded for
//!   it and the acknowledgement committed. There is no high-water mark: a transaction that
//!   commits late, behind events already handled, is still delivered, found through its key's
//!   ready mark like any other event.
//! - **Cost that does not grow with partitions or history.** A worker finds work by reading
//!   the ready marks of the partitions it holds in one read, and reads each marked key from
//!   just after the last event it handled; commits through its own engine wake it at once.
//! - **Per-key order.** Events of one partition key are handled one at a time in commit order.
//!   Partitions run concurrently, up to the worker's concurrency.
//! - **Failures.** A failing (or panicking) handler is retried with jittered exponential
//!   backoff; meanwhile later events of the same key wait and other keys flow. After the last
//!   attempt the event becomes a dead letter and the key goes on. Strict mode blocks the whole
//!   partition instead.
//! - **Leases.** Workers sharing a backend split the partitions through leases with fencing
//!   tokens; a stopped worker's partitions are taken over when its leases expire, and a worker
//!   whose lease was taken cannot acknowledge.
//!
//! ```ignore
//! let queue = Arc::new(TitoQueue { engine: db.clone() });
//! let worker = Worker::new(queue.clone(), "user")
//!     .group("billing")
//!     .concurrency(8)
//!     .run(|event| Box::pin(async move { println!("{} {}", event.action, event.entity); Ok(()) }));
//! worker.shutdown().await?;
//! ```

#![warn(missing_docs)]

mod clock;
mod handler;
mod inspect;
mod queue;
mod stored;
mod worker;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tito_core::event::PARTITIONS;
use tito_core::{Backend, TitoEvent};
use tokio::sync::broadcast;

pub use clock::{Clock, SystemClock, TokioClock};
pub use handler::{BoxFuture, FencingToken, HandlerFuture, MAX_ERROR_LEN, fencing_token};
pub use inspect::PartitionLag;
pub use queue::TitoQueue;
pub use stored::{CallRecord, Checkpoint, DeadLetter, Member, PartitionLease, RetryEntry};
pub use tito_core::event::{
    DEFAULT_GROUP, LONGEST_DELAY, MAX_EVENT_LEN, PendingTimes, ReadyMark, decode_event,
};
pub use worker::{
    DEFAULT_DEAD_LETTER_RETENTION, DEFAULT_HANDLER_RETRY, DEFAULT_HANDLER_TIMEOUT, LONGEST_WAIT,
    Worker, WorkerHandle, WorkerStats,
};

/// The partitions `[start, end)` a worker takes events from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionConfig {
    /// First partition.
    pub start: u32,
    /// One past the last partition.
    pub end: u32,
}

impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            start: 0,
            end: PARTITIONS,
        }
    }
}

/// Starts a worker for `event_type` in the default consumer group, as tito 0.2.0 did: a thin
/// wrapper over [`Worker`] with its defaults.
///
/// `is_leader == false` pauses the worker (it releases its leases and takes no events) until
/// it is `true` again; with built-in leases, workers need no external leader election and the
/// flag can simply stay `true`. The worker stops gracefully when `shutdown_rx` receives a
/// message. Await the returned handle to wait for it.
pub async fn run_worker<B, H>(
    queue: Arc<TitoQueue<B>>,
    event_type: String,
    handler: H,
    partition_config: PartitionConfig,
    is_leader: Arc<AtomicBool>,
    concurrency: usize,
    shutdown_rx: broadcast::Receiver<()>,
) -> WorkerHandle
where
    B: Backend,
    H: Fn(TitoEvent) -> HandlerFuture + Send + Sync + 'static,
{
    Worker::new(queue, event_type)
        .partitions(partition_config)
        .concurrency(concurrency)
        .leader_flag(is_leader)
        .shutdown_on(shutdown_rx)
        .run(handler)
}
