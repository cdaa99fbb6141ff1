//! A worker's main loop: heartbeats, sweeps, task bookkeeping and graceful shutdown.
//!
//! Heartbeats and sweeps run on this one task, one at a time, so a sweep never sees a lease
//! change half made; partition tasks run beside it, bounded by a semaphore of `concurrency`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tito_core::event::PublishedEvents;
use tito_core::{Backend, TitoEngine, TitoError};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{RwLock, Semaphore, broadcast, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};
use tracing::{info, warn};

use super::ack::Acks;
use super::state::SharedState;
use super::stats::Counters;
use super::sweep::Found;
use super::{Settings, lease, sweep};
use crate::handler::Handler;
use crate::queue::TitoQueue;

/// One running worker: its settings, handler and partition state.
pub(crate) struct Runtime<B: Backend> {
    pub engine: TitoEngine<B>,
    pub settings: Settings,
    pub handler: Handler<B>,
    pub state: SharedState,
    pub counters: Arc<Counters>,
    pub acks: Acks,
    /// Batches of suspect partitions hold it exclusively, all others shared: a handler call that
    /// may take the worker down runs with no other call beside it, so a call record names the
    /// call that did.
    pub alone: RwLock<()>,
}

async fn signalled(receiver: &mut Option<broadcast::Receiver<()>>) {
    match receiver {
        // A message, a lagged receiver and a dropped sender all mean "stop".
        Some(receiver) => {
            let _ = receiver.recv().await;
        }
        None => std::future::pending().await,
    }
}

async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    // A dropped handle is not a stop request: the worker keeps running.
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl<B: Backend> Runtime<B> {
    pub fn new(
        engine: TitoEngine<B>,
        settings: Settings,
        handler: Handler<B>,
        counters: Arc<Counters>,
    ) -> Arc<Self> {
        Arc::new(Runtime {
            engine,
            settings,
            handler,
            state: SharedState::default(),
            counters,
            acks: Acks::default(),
            alone: RwLock::new(()),
        })
    }

    /// Runs until stopped, then drains in-flight work and releases the leases.
    pub async fn run(
        self: Arc<Self>,
        leader: Option<Arc<AtomicBool>>,
        mut shutdown: Option<broadcast::Receiver<()>>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), TitoError> {
        let s = &self.settings;
        // Registering is idempotent, so a failure the store may recover from (an unknown commit
        // outcome included) is retried until it succeeds or the worker is stopped: a worker
        // that ended here would stall its group with no error in sight.
        let queue = TitoQueue {
            engine: self.engine.clone(),
        };
        loop {
            match queue.register_group(&s.event_type, &s.group).await {
                Ok(()) => break,
                Err(e) if e.is_retryable() || matches!(e, TitoError::CommitOutcomeUnknown(_)) => {
                    warn!(error = %e, group = %s.group, "registering the queue group failed; retrying");
                    tokio::select! {
                        () = signalled(&mut shutdown) => return Ok(()),
                        () = stop_requested(&mut stop) => return Ok(()),
                        () = tokio::time::sleep(s.poll_interval) => {}
                    }
                }
                Err(e) => return Err(e),
            }
        }
        info!(event_type = %s.event_type, group = %s.group, worker = %s.worker_id, "queue worker started");
        let permits = Arc::new(Semaphore::new(s.concurrency));
        let mut tasks = JoinSet::new();
        let mut beat = JoinSet::new();
        let mut heartbeat = interval(s.heartbeat());
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut published = self.engine.published(&s.event_type);
        let mut next_sweep = Instant::now();
        // Reading all marks finds events published elsewhere: every poll interval while that
        // finds work, backing off to the idle poll interval otherwise. Events announced by this
        // engine, and keys with more events than a sweep read, are read at once without it.
        let mut full_every = s.poll_interval;
        let mut last_full: Option<Instant> = None;
        let mut cursor = s.partitions.start;
        // No sweep runs sooner than `linger` after the previous one; one that announcements or
        // finished batches call for runs at once otherwise.
        let mut last_sweep: Option<Instant> = None;
        let lingered = |last_sweep: Option<Instant>, at: Instant| {
            last_sweep.map_or(at, |last| at.max(last + s.linger))
        };
        loop {
            let active = leader
                .as_ref()
                .is_none_or(|flag| flag.load(Ordering::Acquire));
            tokio::select! {
                () = signalled(&mut shutdown) => break,
                () = stop_requested(&mut stop) => break,
                _ = heartbeat.tick() => {
                    // On a task of its own: a heartbeat that reads and writes every lease must
                    // not hold back the handling of announced events. One at a time.
                    if beat.is_empty() {
                        let rt = self.clone();
                        beat.spawn(async move {
                            if let Err(e) = lease::heartbeat(&rt, active).await {
                                warn!(error = %e, "queue heartbeat failed");
                            }
                        });
                    }
                }
                Some(done) = beat.join_next() => {
                    report(done);
                    // Partitions it acquired are read at once.
                    next_sweep = next_sweep.min(lingered(last_sweep, Instant::now()));
                }
                Some(done) = tasks.join_next() => {
                    report(done);
                    next_sweep = next_sweep.min(lingered(last_sweep, Instant::now()));
                }
                keys = published.recv() => {
                    self.hint(keys, &mut published);
                    next_sweep = next_sweep.min(lingered(last_sweep, Instant::now()));
                }
                () = sleep_until(next_sweep) => {
                    let now = Instant::now();
                    last_sweep = Some(now);
                    let full = last_full.is_none_or(|at| now >= at + full_every);
                    if full {
                        last_full = Some(now);
                    }
                    let found = if active {
                        sweep::sweep(&self, &permits, &mut tasks, &mut published, &mut cursor, full)
                            .await
                            .unwrap_or_else(|e| {
                                warn!(error = %e, "queue sweep failed");
                                Found::default()
                            })
                    } else {
                        Found::default()
                    };
                    if full {
                        full_every = if found.unhinted {
                            s.poll_interval
                        } else {
                            (full_every * 2).clamp(s.poll_interval, s.idle_poll_interval)
                        };
                    }
                    next_sweep = last_full.map_or(now, |at| at + full_every);
                    if let Some(due) = self.state.lock().next_due() {
                        // At least a millisecond: a due retry the sweep could not start waits
                        // for its partition's task to end, which wakes the loop anyway.
                        let wait = due.saturating_sub(s.now_micros()).max(1_000);
                        next_sweep = next_sweep.min(Instant::now() + Duration::from_micros(wait));
                    }
                    next_sweep = lingered(last_sweep, next_sweep);
                }
            }
        }
        // A heartbeat under way may have taken leases not recorded yet: it ends before the
        // drain releases what is held.
        while let Some(done) = beat.join_next().await {
            report(done);
        }
        self.drain(tasks, heartbeat).await
    }

    /// Notes the events committed through this engine announced so far as hints for the next
    /// sweep.
    pub(crate) fn take_announced(&self, published: &mut broadcast::Receiver<PublishedEvents>) {
        match published.try_recv() {
            Ok(events) => self.hint(Ok(events), published),
            Err(TryRecvError::Lagged(n)) => self.hint(Err(RecvError::Lagged(n)), published),
            Err(TryRecvError::Empty | TryRecvError::Closed) => {}
        }
    }

    /// Notes the events committed through this engine, `received` and any others already
    /// announced, as hints for the next sweep.
    fn hint(
        &self,
        mut received: Result<PublishedEvents, RecvError>,
        published: &mut broadcast::Receiver<PublishedEvents>,
    ) {
        let (start, end) = (self.settings.partitions.start, self.settings.partitions.end);
        let mut state = self.state.lock();
        loop {
            match received {
                Ok(events) => {
                    for event in events.iter() {
                        if (start..end).contains(&event.partition) {
                            state.announced(event);
                        }
                    }
                }
                // Announcements were missed: the next sweep reads all marks. The engine keeps
                // its senders, so the channel never closes.
                Err(RecvError::Lagged(_) | RecvError::Closed) => state.hints_lost(),
            }
            received = match published.try_recv() {
                Ok(keys) => Ok(keys),
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            };
        }
    }

    /// Graceful shutdown: releases idle partitions at once, lets in-flight tasks finish (up to
    /// the timeout, renewing their leases meanwhile), then releases everything.
    async fn drain(
        &self,
        mut tasks: JoinSet<()>,
        mut heartbeat: tokio::time::Interval,
    ) -> Result<(), TitoError> {
        info!(in_flight = tasks.len(), "queue worker stopping");
        let deadline = Instant::now() + self.settings.shutdown_timeout;
        if let Err(e) = lease::heartbeat(self, false).await {
            warn!(error = %e, "releasing queue leases failed");
        }
        while !tasks.is_empty() {
            tokio::select! {
                Some(done) = tasks.join_next() => report(done),
                _ = heartbeat.tick() => {
                    if let Err(e) = lease::heartbeat(self, false).await {
                        warn!(error = %e, "queue heartbeat failed");
                    }
                }
                () = sleep_until(deadline) => {
                    warn!(abandoned = tasks.len(), "queue shutdown timed out; unacknowledged events stay pending");
                    tasks.shutdown().await;
                }
            }
        }
        lease::heartbeat(self, false).await
    }
}

fn report(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && !e.is_cancelled()
    {
        warn!(error = %e, "queue worker task failed");
    }
}
