//! Workers: the builder that configures one, and the handle that stops it.
//!
//! A worker consumes one event type for one consumer group. Workers sharing a backend split the
//! 1024 partitions among themselves through leases stored next to the events (see [`lease`]),
//! find the keys with due events of the partitions they hold through ready marks and local
//! announcements ([`sweep`]), and handle each partition's events in order on a task of their own
//! ([`partition`]), acknowledging them in fenced group commits ([`ack`]) and removing the marks
//! of keys left idle ([`marks`]).

mod ack;
mod assign;
mod lease;
mod marks;
mod partition;
mod prune;
mod retry_area;
mod runtime;
mod state;
mod stats;
mod sweep;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::task::{Context, Poll};
use std::time::Duration;

use tito_core::event::{DEFAULT_GROUP, PARTITIONS};
use tito_core::{Backend, Embedded, RetryPolicy, TitoError, TitoEvent, TitoTransaction};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::PartitionConfig;
use crate::clock::{Clock, SystemClock};
use crate::handler::{Handler, HandlerFuture};
use crate::queue::TitoQueue;
use stats::Counters;
pub use stats::WorkerStats;

/// Everything that tunes a worker; see the [`Worker`] methods for each field.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub event_type: String,
    pub group: String,
    pub worker_id: String,
    pub partitions: PartitionConfig,
    pub concurrency: usize,
    pub retry: RetryPolicy,
    pub lease_ttl: Duration,
    pub heartbeat: Option<Duration>,
    pub strict: bool,
    pub retention: Option<Duration>,
    pub dead_letter_retention: Duration,
    pub batch_size: usize,
    pub poll_interval: Duration,
    pub idle_poll_interval: Duration,
    pub linger: Duration,
    pub shutdown_timeout: Duration,
    pub handler_timeout: Option<Duration>,
    pub clock: Arc<dyn Clock>,
}

impl Settings {
    /// The worker's wall clock now, in microseconds since the Unix epoch.
    pub fn now_micros(&self) -> u64 {
        self.clock.now_micros()
    }

    /// How often leases and membership are renewed: the set interval, or a third of the TTL.
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
            .unwrap_or(self.lease_ttl / 3)
            .max(Duration::from_millis(1))
    }
}

/// The retry policy of handlers unless [`Worker::retry`] sets one: 10 attempts, 100 ms doubling
/// up to one minute, with jitter.
pub const DEFAULT_HANDLER_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 10,
    base_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(60),
};

/// The longest a worker waits on any timer (a year): longer settings are cut to it, so no
/// deadline overflows the clock; waiting a year is waiting forever for a worker.
pub const LONGEST_WAIT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// How long dead letters are kept unless [`Worker::dead_letter_retention`] sets it: 7 days.
pub const DEFAULT_DEAD_LETTER_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How long a handler call may run by default before it fails (and is retried): long enough for
/// real work, short enough that a hung handler does not hold its partition for good.
pub const DEFAULT_HANDLER_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Configures and starts a worker: `Worker::new(queue, "user").group("billing").run(handler)`.
pub struct Worker<B: Backend = Embedded> {
    queue: Arc<TitoQueue<B>>,
    settings: Settings,
    leader: Option<Arc<AtomicBool>>,
    shutdown: Option<broadcast::Receiver<()>>,
}

impl<B: Backend> Worker<B> {
    /// A worker for `event_type` in the default group, on all partitions, with defaults: lease
    /// TTL 10 s, concurrency 4, batches of 256, polling every 50 ms backing off to 500 ms while
    /// idle, shutdown timeout 30 s, [`DEFAULT_HANDLER_RETRY`], handled events deleted at once.
    pub fn new(queue: Arc<TitoQueue<B>>, event_type: impl Into<String>) -> Self {
        Worker {
            queue,
            settings: Settings {
                event_type: event_type.into(),
                group: DEFAULT_GROUP.to_string(),
                worker_id: uuid::Uuid::new_v4().to_string(),
                partitions: PartitionConfig {
                    start: 0,
                    end: PARTITIONS,
                },
                concurrency: 4,
                retry: DEFAULT_HANDLER_RETRY,
                lease_ttl: Duration::from_secs(10),
                heartbeat: None,
                strict: false,
                retention: None,
                dead_letter_retention: DEFAULT_DEAD_LETTER_RETENTION,
                batch_size: 256,
                poll_interval: Duration::from_millis(50),
                idle_poll_interval: Duration::from_millis(500),
                linger: Duration::ZERO,
                shutdown_timeout: Duration::from_secs(30),
                handler_timeout: Some(DEFAULT_HANDLER_TIMEOUT),
                clock: Arc::new(SystemClock),
            },
            leader: None,
            shutdown: None,
        }
    }

    /// The consumer group; registered when the worker starts. Each group sees every event.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.settings.group = group.into();
        self
    }

    /// The worker's id in leases; unique per running worker. A worker restarted with the same
    /// id takes its unexpired leases back at once instead of waiting for them to expire.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.settings.worker_id = id.into();
        self
    }

    /// The partitions this worker may take (default: all 1024); clamped to `0..1024`.
    pub fn partitions(mut self, partitions: PartitionConfig) -> Self {
        let end = partitions.end.min(PARTITIONS);
        self.settings.partitions = PartitionConfig {
            start: partitions.start.min(end),
            end,
        };
        self
    }

    /// How many partitions are handled at once (at least 1).
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.settings.concurrency = concurrency.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        self
    }

    /// Attempts and backoff of a failing handler; after the last attempt the event becomes a
    /// dead letter.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.settings.retry = policy;
        self
    }

    /// The wall clock the worker reads for lease expiry, due times and retention (the system
    /// clock by default). Tests give workers a [`TokioClock`](crate::TokioClock) to run long
    /// pauses on Tokio's virtual time and to skew workers' clocks against each other.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.settings.clock = Arc::new(clock);
        self
    }

    /// How long a lease lasts without renewal: a stopped worker's partitions are taken over
    /// after this long. Heartbeats run every third of it unless [`heartbeat`](Self::heartbeat)
    /// is set. At most [`LONGEST_WAIT`], like every duration a worker waits on.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.settings.lease_ttl = ttl.min(LONGEST_WAIT);
        self
    }

    /// How often leases and membership are renewed and rebalanced.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.settings.heartbeat = Some(every.min(LONGEST_WAIT));
        self
    }

    /// Strict order: a failing event blocks its whole partition instead of only its key.
    pub fn strict(mut self, strict: bool) -> Self {
        self.settings.strict = strict;
        self
    }

    /// Keeps handled events for `keep` (readable under the group's `done` keys), then removes
    /// them. Without it, handled events are removed when acknowledged.
    pub fn retention(mut self, keep: Duration) -> Self {
        self.settings.retention = Some(keep);
        self
    }

    /// Keeps dead letters for `keep` after their event's position (when it was due), then
    /// removes them; default [`DEFAULT_DEAD_LETTER_RETENTION`], `Duration::MAX` keeps them until
    /// replayed. Each worker removes those of the partitions it holds.
    pub fn dead_letter_retention(mut self, keep: Duration) -> Self {
        self.settings.dead_letter_retention = keep;
        self
    }

    /// Most events read and acknowledged together per partition (at least 1).
    pub fn batch_size(mut self, size: usize) -> Self {
        self.settings.batch_size = size.max(1);
        self
    }

    /// How soon a worker looks for new events again after finding some (at least 1 ms). While
    /// it finds none, the wait doubles up to the [idle poll interval](Self::idle_poll_interval).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.settings.poll_interval = every.clamp(Duration::from_millis(1), LONGEST_WAIT);
        self
    }

    /// The longest an idle worker waits between looks for new events (at least the poll
    /// interval). Events committed through the same engine wake it at once; this bounds the
    /// wait for events committed by other processes. Each look costs two round trips (a
    /// snapshot and one read), whatever the number of partitions.
    pub fn idle_poll_interval(mut self, every: Duration) -> Self {
        self.settings.idle_poll_interval = every.clamp(Duration::from_millis(1), LONGEST_WAIT);
        self
    }

    /// The least time between two looks for new events (default zero: announcements and
    /// finished batches prompt one at once), like Kafka's `linger.ms`. Events published
    /// meanwhile are handled together, so under load each partition's batch carries more events
    /// and fewer acknowledgements are paid per event, at the price of up to `linger` more
    /// latency. The queue benchmark (`--linger`) measures the trade.
    pub fn linger(mut self, linger: Duration) -> Self {
        self.settings.linger = linger.min(LONGEST_WAIT);
        self
    }

    /// How long shutdown waits for in-flight events before abandoning them (they stay pending).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.settings.shutdown_timeout = timeout.min(LONGEST_WAIT);
        self
    }

    /// Fails a handler call that runs longer than `limit` (then retried like an error), so a
    /// hung handler cannot hold its partition forever. Default [`DEFAULT_HANDLER_TIMEOUT`];
    /// `Duration::MAX` waits up to [`LONGEST_WAIT`].
    pub fn handler_timeout(mut self, limit: Duration) -> Self {
        self.settings.handler_timeout = Some(limit.min(LONGEST_WAIT));
        self
    }

    /// A flag that pauses the worker while `false`: it releases its leases and takes no events.
    pub fn leader_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.leader = Some(flag);
        self
    }

    /// Stops the worker gracefully when a message arrives (or the sender is dropped).
    pub fn shutdown_on(mut self, receiver: broadcast::Receiver<()>) -> Self {
        self.shutdown = Some(receiver);
        self
    }

    /// Starts the worker with `handler` on the current Tokio runtime; events are acknowledged
    /// in batches after it returns.
    pub fn run<H>(self, handler: H) -> WorkerHandle
    where
        H: Fn(TitoEvent) -> HandlerFuture + Send + Sync + 'static,
    {
        self.start(Handler::Plain(Arc::new(handler)))
    }

    /// Starts the worker with a handler that receives the transaction acknowledging its event:
    /// its writes commit if and only if the event is acknowledged. Do not commit it yourself.
    pub fn run_transactional<H>(self, handler: H) -> WorkerHandle
    where
        H: Fn(TitoEvent, TitoTransaction<B>) -> HandlerFuture + Send + Sync + 'static,
    {
        self.start(Handler::Transactional(Arc::new(handler)))
    }

    fn start(self, handler: Handler<B>) -> WorkerHandle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let id = self.settings.worker_id.clone();
        let counters = Arc::new(Counters::new(
            &self.settings.event_type,
            &self.settings.group,
        ));
        let runtime = runtime::Runtime::new(
            self.queue.engine.clone(),
            self.settings,
            handler,
            counters.clone(),
        );
        let join = tokio::spawn(runtime.run(self.leader, self.shutdown, stop_rx));
        WorkerHandle {
            id,
            stop: stop_tx,
            join,
            counters,
        }
    }
}

/// A running worker. Await it to wait for the worker to end.
#[derive(Debug)]
pub struct WorkerHandle {
    id: String,
    stop: watch::Sender<bool>,
    join: JoinHandle<Result<(), TitoError>>,
    counters: Arc<Counters>,
}

impl WorkerHandle {
    /// The worker's id, as written in its leases.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What the worker did so far.
    pub fn stats(&self) -> WorkerStats {
        self.counters.snapshot()
    }

    /// Asks the worker to stop gracefully: take no new events, finish in-flight ones (up to
    /// the shutdown timeout), release its leases. Await the handle to wait for it.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Stops the worker and waits until it has ended.
    pub async fn shutdown(self) -> Result<(), TitoError> {
        self.stop();
        self.await
    }

    /// Kills the worker at once, as a crash would: in-flight events are abandoned (they stay
    /// pending) and its leases are left to expire.
    pub fn abort(&self) {
        self.join.abort();
    }
}

impl Future for WorkerHandle {
    type Output = Result<(), TitoError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.join)
            .poll(cx)
            .map(|joined| match joined {
                Ok(result) => result,
                Err(e) if e.is_cancelled() => Ok(()),
                Err(e) => Err(TitoError::custom(format!("worker task failed: {e}"))),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn handler_calls_have_a_deadline_unless_one_is_set() {
        let db = tito_core::Embedded::temporary().await.unwrap();
        let worker = Worker::new(TitoQueue::new(db), "t");
        assert_eq!(
            worker.settings.handler_timeout,
            Some(DEFAULT_HANDLER_TIMEOUT)
        );
        let longest = worker.handler_timeout(Duration::MAX);
        assert_eq!(longest.settings.handler_timeout, Some(LONGEST_WAIT));
    }
}
