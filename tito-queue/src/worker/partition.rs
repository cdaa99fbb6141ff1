//! Handling one partition's batch, in order, on its own task.
//!
//! First the parked keys whose head is due: each key's retry entries are handled in position
//! order until one fails again (it stays the head, with a later due time) or the key's retry
//! area is empty (the key is unparked). Then the pending events: an event of a parked key is
//! moved to the retry area behind its head instead of being handled, so a key's events are
//! always handled in position (= commit) order while other keys keep flowing. A first failure
//! parks its key; the last allowed failure makes the event a dead letter and lets the key go
//! on. In strict mode a parked key holds back the whole partition.
//!
//! A partition taken over from a holder that did not release it is suspect: that worker may
//! have died inside a handler (an abort, an out-of-memory kill), which no error reports. Its
//! next batch runs with no other batch of the worker beside it, and each call is recorded
//! (`CallRecord`) before it runs; the acknowledgement removes the record. A record found again
//! names a call that never finished, and counts as an attempt of its event: an event that takes
//! down every worker that handles it is dead-lettered after its attempts instead of forever.
//!
//! The work is acknowledged in one fenced transaction at the end (or, for a transactional
//! handler, in each handler's own transaction). If an acknowledgement fails, nothing of it
//! happened: the events are still where they were and will be handled again (at least once),
//! and the cached parked keys of the partition are dropped so they are read again.

use std::sync::Arc;
use std::time::Instant;

use tito_core::backend::KeyRange;
use tito_core::event::{decode_event, encode_event};
use tito_core::keyspace::queue as keys;
use tito_core::{Backend, TitoError, TitoEvent};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{Instrument, debug, debug_span, error, warn};

use super::ack::{ACK_ATTEMPTS, AckBatch, AckError, acknowledge};
use super::retry_area::read_parked;
use super::runtime::Runtime;
use super::state::{KeyProgress, Parked};
use super::sweep::{KeyWork, Work};
use crate::handler::{FencingToken, Handler, run_guarded};
use crate::stored::{CallRecord, DeadLetter, PartitionLease, RetryEntry};

/// Why a batch stopped early.
enum Stop {
    /// Another worker holds the partition now.
    LeaseLost,
    /// The store failed; the partition's work will be read again.
    Failed(TitoError),
}

impl From<TitoError> for Stop {
    fn from(e: TitoError) -> Self {
        Stop::Failed(e)
    }
}

/// The outcome of one handler call.
enum Handled {
    Ok,
    /// The handler failed with this error.
    Failed(String),
    /// Not called: the event's recorded calls, with `attempts` before them, used up its
    /// attempts.
    GaveUp {
        attempts: u32,
        error: String,
    },
}

/// What recording a call decided.
enum CallStart {
    /// The call is recorded: run it.
    Run,
    /// The event's attempts are used up: do not call it.
    GiveUp(Handled),
    /// Another worker holds the partition.
    LeaseLost,
}

/// Removes the partition from the busy set when the task ends, however it ends; a task that
/// did not finish (aborted at shutdown, or a bug panicked) also drops the partition's cached
/// parked keys, since its writes may have been partly acknowledged.
struct BusyGuard<B: Backend> {
    rt: Arc<Runtime<B>>,
    partition: u32,
    finished: bool,
}

impl<B: Backend> Drop for BusyGuard<B> {
    fn drop(&mut self) {
        let mut state = self.rt.state.lock();
        state.busy.remove(&self.partition);
        if !self.finished {
            state.parked.remove(&self.partition);
        }
    }
}

/// Handles a partition's due retries and the due events of its keys, then acknowledges. A
/// permit of `permits` bounds handling only: it is given back before the acknowledgement, which
/// other partitions' batches share.
pub(crate) async fn process<B: Backend>(
    rt: Arc<Runtime<B>>,
    partition: u32,
    token: u64,
    work: Work,
    permits: Arc<Semaphore>,
) {
    let mut busy = BusyGuard {
        rt: rt.clone(),
        partition,
        finished: false,
    };
    let span = debug_span!(
        "tito.queue.batch",
        event_type = %rt.settings.event_type,
        group = %rt.settings.group,
        partition,
        keys = work.keys.len()
    );
    let suspect = rt.state.lock().suspect.contains(&partition);
    let mut run = PartitionRun {
        rt: rt.clone(),
        partition,
        token,
        suspect,
        parked: Parked::new(),
        batch: AckBatch::default(),
        taken: Vec::new(),
        pending_prefix: keys::group_prefix(&rt.settings.event_type, &rt.settings.group, "pending"),
    };
    let more: Vec<String> = (work.keys.iter())
        .filter(|key| key.more)
        .map(|key| key.partition_key.clone())
        .collect();
    // The phase lock before the permit: a batch waiting for exclusivity holds no permit that
    // the batches it waits for need.
    let (_alone, _shared) = if suspect {
        warn!(
            partition,
            "queue partition taken over from a worker that did not release it: its batch runs \
             alone, each handler call recorded first"
        );
        (Some(rt.alone.write().await), None)
    } else {
        (None, Some(rt.alone.read().await))
    };
    let outcome = match permits.acquire_owned().await {
        Ok(permit) => run.execute(work, permit).instrument(span).await,
        Err(_) => Ok(()),
    };
    busy.finished = true;
    let mut state = rt.state.lock();
    match outcome {
        Ok(()) if state.holds(partition, token) => {
            if suspect {
                state.suspect.remove(&partition);
            }
            state.parked.insert(partition, run.parked);
            for (partition_key, after) in &run.taken {
                let progress = KeyProgress {
                    after: *after,
                    not_before: 0,
                };
                state.learned(partition, partition_key, Some(progress));
            }
            for partition_key in &more {
                state.hint(partition, partition_key);
            }
        }
        Ok(()) => {}
        Err(Stop::LeaseLost) => {
            rt.counters.abandoned_batch();
            rt.counters.leases(0, 1);
            debug!(
                partition,
                "queue lease lost before acknowledging; events stay pending"
            );
            state.forget(partition, token);
        }
        Err(Stop::Failed(e)) => {
            rt.counters.abandoned_batch();
            warn!(partition, error = %e, "queue batch not acknowledged; it will be handled again");
            state.parked.remove(&partition);
        }
    }
}

struct PartitionRun<B: Backend> {
    rt: Arc<Runtime<B>>,
    partition: u32,
    token: u64,
    /// Taken over uncleanly: every handler call is recorded before it runs.
    suspect: bool,
    /// Parked keys as they will be once `batch` is acknowledged.
    parked: Parked,
    /// Writes not acknowledged yet.
    batch: AckBatch,
    /// Per partition key, the position of its last pending event taken off (handled, parked
    /// or dead-lettered).
    taken: Vec<(String, u64)>,
    /// The prefix of the group's pending events.
    pending_prefix: Vec<u8>,
}

impl<B: Backend> PartitionRun<B> {
    async fn execute(&mut self, work: Work, permit: OwnedSemaphorePermit) -> Result<(), Stop> {
        self.load_parked().await?;
        self.handle_due_retries().await?;
        for key in work.keys {
            if !self.handle_key(key).await? {
                break;
            }
        }
        drop(permit);
        self.acknowledge().await
    }

    /// Acknowledges the batch so far.
    async fn acknowledge(&mut self) -> Result<(), Stop> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        match self
            .rt
            .acks
            .submit(&self.rt, self.partition, self.token, batch)
            .await
        {
            Ok(expires_at) => {
                self.renewed(expires_at);
                Ok(())
            }
            Err(AckError::LeaseLost) => Err(Stop::LeaseLost),
            Err(AckError::Store(e)) => Err(Stop::Failed(e)),
        }
    }

    /// In a suspect batch, acknowledges each call's outcome before the next call, so that a
    /// call record is only ever replaced by the record of a call that has not run yet.
    async fn settle_call(&mut self) -> Result<(), Stop> {
        match self.suspect {
            true => self.acknowledge().await,
            false => Ok(()),
        }
    }

    /// The parked keys: cached, or read from the retry area.
    async fn load_parked(&mut self) -> Result<(), Stop> {
        if let Some(parked) = self.rt.state.lock().parked.get(&self.partition) {
            self.parked = parked.clone();
            return Ok(());
        }
        let p = self.partition;
        let mut read = read_parked(&self.rt, p..p + 1).await?;
        self.parked = read.remove(&p).unwrap_or_default();
        Ok(())
    }

    async fn handle_due_retries(&mut self) -> Result<(), Stop> {
        let now = self.rt.settings.now_micros();
        let due: Vec<String> = (self.parked.iter())
            .filter(|(_, due)| **due <= now)
            .map(|(key, _)| key.clone())
            .collect();
        if due.is_empty() {
            return Ok(());
        }
        let rt = self.rt.clone();
        let s = &rt.settings;
        let snapshot = rt.engine.snapshot().await?;
        for park_key in due {
            let prefix = keys::retry_key_prefix(&s.event_type, &s.group, self.partition, &park_key);
            let rows = snapshot
                .scan(KeyRange::prefix(&prefix), s.batch_size)
                .await?;
            let more = rows.len() == s.batch_size;
            let mut cleared = true;
            for (key, value) in rows {
                let entry = match RetryEntry::decode(&key, &value) {
                    Ok(entry) => entry,
                    Err(e) => {
                        self.set_aside(key, value, &e);
                        continue;
                    }
                };
                let (attempts, error) =
                    match self.handle(&entry.event, &key, entry.attempts).await? {
                        Handled::Ok => {
                            self.settle_call().await?;
                            continue;
                        }
                        Handled::Failed(error) => (entry.attempts.saturating_add(1), error),
                        Handled::GaveUp { attempts, error } => (attempts, error),
                    };
                cleared = !self.failed(entry.event, key, attempts, error)?;
                self.settle_call().await?;
                if !cleared {
                    break;
                }
            }
            if cleared && more {
                self.parked.insert(park_key, now);
            } else if cleared {
                self.parked.remove(&park_key);
            }
        }
        Ok(())
    }

    /// Handles the due events of one partition key in order. Returns `false` when strict mode
    /// stops the partition (a key is parked), leaving the rest pending.
    async fn handle_key(&mut self, work: KeyWork) -> Result<bool, Stop> {
        let prefix_len = self.pending_prefix.len();
        let strict = self.rt.settings.strict;
        for (key, value) in work.rows {
            if strict && !self.parked.is_empty() {
                return Ok(false);
            }
            if let Some((_, _, position)) = keys::pending_key_parts(&key, prefix_len) {
                self.took(&work.partition_key, position);
            }
            let event = match decode_event(&key, &value) {
                Ok(event) => event,
                Err(e) => {
                    self.set_aside(key, value, &e);
                    continue;
                }
            };
            if self.parked.contains_key(&event.partition_key) {
                let entry = RetryEntry {
                    event,
                    attempts: 0,
                    next_at: 0,
                    last_error: None,
                };
                self.remove(key);
                self.batch
                    .put(self.retry_key(&entry.event), entry.encode()?);
                continue;
            }
            match self.handle(&event, &key, 0).await? {
                Handled::Ok => {}
                Handled::Failed(error) => {
                    self.failed(event, key, 1, error)?;
                }
                Handled::GaveUp { attempts, error } => {
                    self.failed(event, key, attempts, error)?;
                }
            }
            self.settle_call().await?;
        }
        Ok(true)
    }

    /// Removes an entry taken off: a pending event's key, written once, or a retry entry's.
    fn remove(&mut self, key: Vec<u8>) {
        if key.starts_with(&self.pending_prefix) {
            self.batch.delete_pending(key);
        } else {
            self.batch.delete(key);
        }
    }

    /// Records that the event of `partition_key` at `position` was taken off.
    fn took(&mut self, partition_key: &str, position: u64) {
        match self.taken.last_mut() {
            Some((key, after)) if key == partition_key => *after = position,
            _ => self.taken.push((partition_key.to_string(), position)),
        }
    }

    /// Moves an undecodable entry to the group's corrupt section, bytes intact, so it cannot
    /// block its partition (`TitoQueue::corrupt_entries` lists them).
    fn set_aside(&mut self, key: Vec<u8>, value: Vec<u8>, error: &TitoError) {
        let s = &self.rt.settings;
        error!(partition = self.partition, %error, "undecodable queue entry set aside");
        self.batch
            .put(keys::corrupt_key(&s.event_type, &s.group, &key), value);
        self.remove(key);
    }

    fn retry_key(&self, event: &TitoEvent) -> Vec<u8> {
        let s = &self.rt.settings;
        keys::retry_key(
            &s.event_type,
            &s.group,
            self.partition,
            &event.partition_key,
            event.run_at,
            &event.id,
        )
    }

    /// Records failed attempt number `attempts` of the event stored at `source`: a dead letter
    /// after the last attempt, otherwise the parked head of its key. Returns whether the key
    /// is (still) parked.
    fn failed(
        &mut self,
        event: TitoEvent,
        source: Vec<u8>,
        attempts: u32,
        error: String,
    ) -> Result<bool, TitoError> {
        let rt = self.rt.clone();
        let s = &rt.settings;
        let now = s.now_micros();
        self.rt.counters.failed_attempt();
        if attempts >= s.retry.max_attempts {
            warn!(event_id = %event.id, attempts, %error, "queue event dead-lettered");
            let key = keys::dead_key(
                &s.event_type,
                &s.group,
                self.partition,
                event.run_at,
                &event.id,
            );
            self.batch.dead_lettered(&event);
            let dead = DeadLetter {
                group: s.group.clone(),
                event,
                error,
                attempts,
                failed_at: now,
            };
            self.remove(source);
            self.batch.put(key, dead.encode()?);
            return Ok(false);
        }
        let retry_key = self.retry_key(&event);
        if source != retry_key {
            self.remove(source);
        }
        let delay = s.retry.delay(attempts);
        let next_at = now.saturating_add(super::lease::micros(delay));
        debug!(event_id = %event.id, attempts, ?delay, %error, "queue event failed; key parked");
        self.parked.insert(event.partition_key.clone(), next_at);
        let entry = RetryEntry {
            event,
            attempts,
            next_at,
            last_error: Some(error),
        };
        self.batch.put(retry_key, entry.encode()?);
        Ok(true)
    }

    /// Runs the handler on `event`, stored at `source` after `attempts` failed attempts. A
    /// success is recorded in the batch (or, for a transactional handler, acknowledged with the
    /// handler's writes right away).
    async fn handle(
        &mut self,
        event: &TitoEvent,
        source: &[u8],
        attempts: u32,
    ) -> Result<Handled, Stop> {
        self.check_lease()?;
        if self.suspect
            && let Some(gave_up) = self.record_call(event, attempts).await?
        {
            return Ok(gave_up);
        }
        match &self.rt.handler {
            Handler::Plain(handler) => {
                let handler = handler.clone();
                let timeout = self.rt.settings.handler_timeout;
                let started = Instant::now();
                let token = self.fencing_token();
                let outcome = run_guarded(token, timeout, || handler(event.clone()))
                    .instrument(handle_span(event, attempts))
                    .await;
                self.rt.counters.handler_ran(started.elapsed());
                match outcome {
                    Ok(()) => {
                        self.succeeded(event, source)?;
                        Ok(Handled::Ok)
                    }
                    Err(error) => Ok(Handled::Failed(error)),
                }
            }
            Handler::Transactional(handler) => {
                let handler = handler.clone();
                let mut attempt = 1;
                loop {
                    let tx = self.rt.engine.begin().await?;
                    let timeout = self.rt.settings.handler_timeout;
                    let started = Instant::now();
                    let token = self.fencing_token();
                    let outcome =
                        run_guarded(token, timeout, || handler(event.clone(), tx.clone()))
                            .instrument(handle_span(event, attempts))
                            .await;
                    self.rt.counters.handler_ran(started.elapsed());
                    if let Err(error) = outcome {
                        // A store error the handler passed on (a conflict, a busy cluster) is not
                        // the handler's failure: it runs again without using its retries.
                        let store_failed = tx.saw_conflict() && attempt < ACK_ATTEMPTS;
                        let _ = tx.rollback().await;
                        if !store_failed {
                            return Ok(Handled::Failed(error));
                        }
                        tokio::time::sleep(tito_core::RetryPolicy::default().delay(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    let saved = self.batch.clone();
                    self.succeeded(event, source)?;
                    match acknowledge(&self.rt, self.partition, self.token, &tx, &self.batch).await
                    {
                        Ok(expires_at) => {
                            self.batch = AckBatch::default();
                            self.renewed(expires_at);
                            return Ok(Handled::Ok);
                        }
                        Err(AckError::LeaseLost) => return Err(Stop::LeaseLost),
                        Err(AckError::Store(e)) if e.is_retryable() && attempt < ACK_ATTEMPTS => {
                            self.batch = saved;
                            tokio::time::sleep(tito_core::RetryPolicy::default().delay(attempt))
                                .await;
                            attempt += 1;
                        }
                        Err(AckError::Store(e)) => return Err(Stop::Failed(e)),
                    }
                }
            }
        }
    }

    /// Records the call about to run on `event` in the partition's call record, in a fenced
    /// transaction, and has the acknowledgement remove it. When the record already names the
    /// event, its calls never finished; once they and the `attempts` before them use up the
    /// event's attempts, it is not called again (`Some(GaveUp)`).
    async fn record_call(
        &mut self,
        event: &TitoEvent,
        attempts: u32,
    ) -> Result<Option<Handled>, Stop> {
        let s = &self.rt.settings;
        let key = keys::call_key(&s.event_type, &s.group, self.partition);
        let lease_key = keys::lease_key(&s.event_type, &s.group, self.partition);
        let tx = self.rt.engine.begin().await?;
        let outcome: Result<CallStart, TitoError> = async {
            let found = tx.batch_get(&[key.clone(), lease_key.clone()]).await?;
            let held = match &found[1] {
                Some(bytes) => {
                    PartitionLease::decode(&lease_key, bytes)?.is_held_by(&s.worker_id, self.token)
                }
                None => false,
            };
            if !held {
                return Ok(CallStart::LeaseLost);
            }
            // A corrupt record counts as none: it names no call.
            let unfinished = (found[0].as_deref())
                .and_then(|bytes| CallRecord::decode(&key, bytes).ok())
                .filter(|record| record.event_id == event.id)
                .map_or(0, |record| record.calls);
            let used = attempts.saturating_add(unfinished);
            if used >= s.retry.max_attempts {
                return Ok(CallStart::GiveUp(Handled::GaveUp {
                    attempts: used,
                    error: format!(
                        "the worker stopped during {unfinished} calls of the handler and never \
                         finished them (a crash, an abort or an out-of-memory kill)"
                    ),
                }));
            }
            let record = CallRecord {
                event_id: event.id.clone(),
                calls: unfinished.saturating_add(1),
            };
            tx.put(key.clone(), record.encode()?).await?;
            Ok(CallStart::Run)
        }
        .await;
        let gave_up = match tx.finish(outcome).await? {
            CallStart::LeaseLost => return Err(Stop::LeaseLost),
            CallStart::GiveUp(gave_up) => Some(gave_up),
            CallStart::Run => None,
        };
        debug!(partition = self.partition, event_id = %event.id, "queue handler call recorded");
        self.batch.delete(key);
        Ok(gave_up)
    }

    /// Stops the batch unless the lease is still held with this batch's token and has at least
    /// a tenth of its TTL (at most a second) left: a worker paused past its lease, whose
    /// partition another worker may hold by now, must not handle more of the key's events,
    /// which would run beside or before the new holder's.
    fn check_lease(&self) -> Result<(), Stop> {
        let margin = super::lease::micros(self.rt.settings.lease_ttl / 10).min(1_000_000);
        let held = self.rt.state.lock().held.get(&self.partition).copied();
        match held {
            Some(held)
                if held.token == self.token
                    && held.expires_at > self.rt.settings.now_micros().saturating_add(margin) =>
            {
                Ok(())
            }
            _ => Err(Stop::LeaseLost),
        }
    }

    /// Records the handled event: its stored entry goes, the checkpoint advances, and with
    /// retention a copy is kept under `done`.
    fn succeeded(&mut self, event: &TitoEvent, source: &[u8]) -> Result<(), TitoError> {
        self.remove(source.to_vec());
        let s = &self.rt.settings;
        if s.retention.is_some() {
            let key = keys::done_key(&s.event_type, &s.group, s.now_micros(), &event.id);
            self.batch.put(key, encode_event(event)?);
        }
        self.batch.handled(event);
        Ok(())
    }

    fn fencing_token(&self) -> FencingToken {
        FencingToken {
            partition: self.partition,
            token: self.token,
        }
    }

    fn renewed(&self, expires_at: u64) {
        let mut state = self.rt.state.lock();
        state.renewed(self.partition, self.token, expires_at);
    }
}

/// The span of one handler call.
fn handle_span(event: &TitoEvent, attempts: u32) -> tracing::Span {
    debug_span!(
        "tito.queue.handle",
        event_id = %event.id,
        partition_key = %event.partition_key,
        attempt = attempts + 1
    )
}
