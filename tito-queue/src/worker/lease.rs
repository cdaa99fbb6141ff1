//! Heartbeats: membership, partition assignment and lease changes.
//!
//! Each heartbeat announces the worker as a member of its group, reads the live members and
//! the leases, and computes the partitions this worker should hold (rendezvous hashing, see
//! `assign.rs`). The worker then, in one transaction,
//! renews the leases it keeps, releases those it should not hold (once idle) and takes free or
//! expired ones it should. Every lease write re-reads the lease in its transaction, and a taken
//! lease gets the next fencing token, so an older holder can no longer acknowledge.

use std::collections::{BTreeSet, HashMap};

use tito_core::backend::KeyRange;
use tito_core::event::PARTITIONS;
use tito_core::keyspace::queue as keys;
use tito_core::{Backend, RetryPolicy, TitoError, TitoTransaction};
use tracing::{debug, warn};

use super::assign::assign;
use super::marks;
use super::prune;
use super::retry_area::read_parked;
use super::runtime::Runtime;
use super::state::Held;
use crate::stored::{Member, PartitionLease};

/// Lease transactions retried on conflict before waiting for the next heartbeat.
const ATTEMPTS: u32 = 3;

/// Most group members read per heartbeat (those gone for a lease TTL are removed, so only a
/// group with this many live workers reaches it).
const MEMBERS: usize = 100_000;

/// Most gone members removed per heartbeat.
const GONE_PER_HEARTBEAT: usize = 256;

pub(crate) fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What one heartbeat changes.
#[derive(Debug, Default)]
struct Plan {
    renew: Vec<(u32, u64)>,
    release: Vec<(u32, u64)>,
    acquire: Vec<u32>,
    /// Members gone for a whole lease TTL, whose entries are removed.
    gone: Vec<String>,
    /// Held partitions with a task running whose lease needs renewing.
    renew_busy: Vec<(u32, u64)>,
}

/// One heartbeat; `active == false` (paused or stopping) releases everything idle.
pub(crate) async fn heartbeat<B: Backend>(rt: &Runtime<B>, active: bool) -> Result<(), TitoError> {
    let s = &rt.settings;
    let now = s.now_micros();
    let ttl = micros(s.lease_ttl);
    let (members, leases) = read_view(rt).await?;
    let targets = if active {
        assign(
            &s.worker_id,
            s.partitions.start,
            s.partitions.end,
            &members,
            now,
        )
    } else {
        BTreeSet::new()
    };
    let plan = {
        let mut state = rt.state.lock();
        let mut lost = Vec::new();
        for (&p, held) in &state.held {
            if !leases
                .get(&p)
                .is_some_and(|l| l.is_held_by(&s.worker_id, held.token))
            {
                lost.push((p, held.token));
            }
        }
        rt.counters.leases(0, lost.len() as u64);
        for (p, token) in lost {
            debug!(partition = p, "queue lease lost");
            state.forget(p, token);
        }
        let mut plan = Plan {
            gone: (members.iter())
                .filter(|(id, m)| *id != s.worker_id && m.expires_at.saturating_add(ttl) < now)
                .map(|(id, _)| id.clone())
                .take(GONE_PER_HEARTBEAT)
                .collect(),
            ..Plan::default()
        };
        for (&p, held) in &state.held {
            // Renewed once half the TTL is left, so about every other heartbeat; busy
            // partitions are usually renewed by their acknowledgements first.
            let due = held.expires_at < now.saturating_add(ttl / 2);
            match (state.busy.contains(&p), targets.contains(&p)) {
                (false, true) if due => plan.renew.push((p, held.token)),
                (false, false) => plan.release.push((p, held.token)),
                (true, _) if due => plan.renew_busy.push((p, held.token)),
                _ => {}
            }
        }
        // Sweeps run beside heartbeats: a partition being released is kept busy, so no task
        // starts on it while its marks are handed over and its lease let go.
        state.busy.extend(plan.release.iter().map(|(p, _)| *p));
        for &p in &targets {
            let takeable = leases
                .get(&p)
                .is_none_or(|l| l.is_free(now) || l.owner == s.worker_id);
            if !state.held.contains_key(&p) && takeable {
                plan.acquire.push(p);
            }
        }
        plan
    };
    let result = change_leases(rt, &plan, active, now, ttl).await;
    {
        let mut state = rt.state.lock();
        for (p, _) in &plan.release {
            state.busy.remove(p);
        }
    }
    for (p, token) in plan.renew_busy {
        // Races with the partition's own acknowledgement, which renews the lease as well.
        if let Err(e) = renew_one(rt, p, token, now.saturating_add(ttl)).await {
            debug!(partition = p, error = %e, "renewing a busy lease failed");
        }
    }
    if active && let Err(e) = prune::prune(rt, now).await {
        warn!(error = %e, "pruning retained queue events or dead letters failed");
    }
    result
}

/// Hands the marks of the partitions `plan` releases over, then renews, releases and acquires
/// leases as it says, in one transaction (retried on conflicts).
async fn change_leases<B: Backend>(
    rt: &Runtime<B>,
    plan: &Plan,
    active: bool,
    now: u64,
    ttl: u64,
) -> Result<(), TitoError> {
    if !plan.release.is_empty() {
        marks::hand_over(rt, &plan.release).await;
    }
    let mut result = Ok(());
    for attempt in 1..=ATTEMPTS {
        let tx = rt.engine.begin().await?;
        let outcome = apply(rt, &tx, plan, active, now, ttl).await;
        match tx.finish(outcome).await {
            Ok(changes) => {
                let acquired: Vec<u32> = changes.acquired.iter().map(|(p, ..)| *p).collect();
                record(rt, changes, now.saturating_add(ttl));
                if let Err(e) = load_parked(rt, &acquired).await {
                    debug!(error = %e, "reading retry areas failed; partitions will read their own");
                }
                result = Ok(());
                break;
            }
            Err(e) if e.is_retryable() && attempt < ATTEMPTS => {
                tokio::time::sleep(RetryPolicy::default().delay(attempt)).await;
                result = Err(e);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    result
}

/// Reads the retry areas of newly acquired partitions with one scan, so they need not be read
/// one partition at a time.
async fn load_parked<B: Backend>(rt: &Runtime<B>, acquired: &[u32]) -> Result<(), TitoError> {
    let (Some(&first), Some(&last)) = (acquired.iter().min(), acquired.iter().max()) else {
        return Ok(());
    };
    let parked = read_parked(rt, first..last + 1).await?;
    let mut state = rt.state.lock();
    for p in acquired {
        // Only if still held and not read by a task meanwhile.
        if state.held.contains_key(p)
            && !state.parked.contains_key(p)
            && let Some(keys) = parked.get(p)
        {
            state.parked.insert(*p, keys.clone());
        }
    }
    Ok(())
}

/// Live members and this worker's range of leases, from one snapshot.
async fn read_view<B: Backend>(
    rt: &Runtime<B>,
) -> Result<(Vec<(String, Member)>, HashMap<u32, PartitionLease>), TitoError> {
    let s = &rt.settings;
    let tx = rt.engine.snapshot().await?;
    let member_prefix = keys::group_prefix(&s.event_type, &s.group, "member");
    let mut members = Vec::new();
    let rows = tx.scan(KeyRange::prefix(&member_prefix), MEMBERS).await?;
    if rows.len() == MEMBERS {
        warn!(
            members = MEMBERS,
            "too many queue group members; the rest are ignored"
        );
    }
    for (key, value) in rows {
        let id = tito_core::codec::take_value(&key[member_prefix.len()..], Default::default())
            .ok()
            .and_then(|(v, _)| match v {
                tito_core::codec::KeyValue::Str(id) => Some(id),
                _ => None,
            });
        match (id, Member::decode(&key, &value)) {
            (Some(id), Ok(member)) => members.push((id, member)),
            _ => {
                warn!(key = %tito_core::keyspace::display_key(&key), "ignoring a corrupt member entry")
            }
        }
    }
    let lease_prefix_len = keys::group_prefix(&s.event_type, &s.group, "lease").len();
    let range = KeyRange::new(
        keys::lease_key(&s.event_type, &s.group, s.partitions.start),
        keys::lease_key(&s.event_type, &s.group, s.partitions.end.min(PARTITIONS)),
    );
    let mut leases = HashMap::new();
    let now = s.now_micros();
    for (key, value) in tx.scan(range, PARTITIONS as usize).await? {
        if let Some(p) = keys::partition_in_key(&key, lease_prefix_len) {
            leases.insert(p, read_lease(&key, &value, now));
        }
    }
    Ok((members, leases))
}

/// The lease stored at `key`. A corrupt value counts as a free lease whose token is the time in
/// micros, above any token counted up from 1, so the partition is taken over instead of every
/// heartbeat failing on it, and the next holder's token is still new.
fn read_lease(key: &[u8], bytes: &[u8], now: u64) -> PartitionLease {
    PartitionLease::decode(key, bytes).unwrap_or_else(|e| {
        warn!(error = %e, "taking over a corrupt queue lease as free");
        PartitionLease {
            owner: String::new(),
            token: now,
            expires_at: 0,
        }
    })
}

/// Lease changes a heartbeat committed.
#[derive(Debug, Default)]
struct Changes {
    renewed: Vec<(u32, u64)>,
    /// Partition, token, and whether the previous holder had not released it.
    acquired: Vec<(u32, u64, bool)>,
    dropped: Vec<(u32, u64)>,
}

async fn apply<B: Backend>(
    rt: &Runtime<B>,
    tx: &TitoTransaction<B>,
    plan: &Plan,
    active: bool,
    now: u64,
    ttl: u64,
) -> Result<Changes, TitoError> {
    let s = &rt.settings;
    let expires_at = now.saturating_add(ttl);
    let member_key = keys::member_key(&s.event_type, &s.group, &s.worker_id);
    if active {
        let member = Member {
            expires_at,
            start: s.partitions.start,
            end: s.partitions.end,
        };
        tx.put(member_key, member.encode()).await?;
    } else {
        tx.delete(member_key).await?;
    }
    for id in &plan.gone {
        tx.delete(keys::member_key(&s.event_type, &s.group, id))
            .await?;
    }
    let partitions: Vec<u32> = (plan.renew.iter().chain(&plan.release))
        .map(|(p, _)| *p)
        .chain(plan.acquire.iter().copied())
        .collect();
    let lease_keys: Vec<Vec<u8>> = partitions
        .iter()
        .map(|&p| keys::lease_key(&s.event_type, &s.group, p))
        .collect();
    let found = tx.batch_get(&lease_keys).await?;
    let mut stored = HashMap::new();
    for ((p, key), value) in partitions.iter().zip(&lease_keys).zip(found) {
        if let Some(bytes) = value {
            stored.insert(*p, read_lease(key, &bytes, now));
        }
    }
    let me = &s.worker_id;
    let mut changes = Changes::default();
    let write = |p: u32, lease: PartitionLease| {
        tx.put(keys::lease_key(&s.event_type, &s.group, p), lease.encode())
    };
    for &(p, token) in &plan.renew {
        if stored.get(&p).is_some_and(|l| l.is_held_by(me, token)) {
            write(
                p,
                PartitionLease {
                    owner: me.clone(),
                    token,
                    expires_at,
                },
            )
            .await?;
            changes.renewed.push((p, token));
        } else {
            changes.dropped.push((p, token));
        }
    }
    for &(p, token) in &plan.release {
        if stored.get(&p).is_some_and(|l| l.is_held_by(me, token)) {
            write(
                p,
                PartitionLease {
                    owner: String::new(),
                    token,
                    expires_at: 0,
                },
            )
            .await?;
            debug!(partition = p, "queue lease released");
        }
        changes.dropped.push((p, token));
    }
    for &p in &plan.acquire {
        let current = stored.get(&p);
        if current.is_none_or(|l| l.is_free(now) || &l.owner == me) {
            let token = current.map_or(1, |l| l.token.saturating_add(1));
            write(
                p,
                PartitionLease {
                    owner: me.clone(),
                    token,
                    expires_at,
                },
            )
            .await?;
            let unreleased = current.is_some_and(|l| !l.owner.is_empty());
            changes.acquired.push((p, token, unreleased));
        }
    }
    Ok(changes)
}

fn record<B: Backend>(rt: &Runtime<B>, changes: Changes, expires_at: u64) {
    rt.counters.leases(changes.acquired.len() as u64, 0);
    let mut state = rt.state.lock();
    for (p, token) in changes.dropped {
        state.forget(p, token);
    }
    for (p, token) in changes.renewed {
        state.renewed(p, token, expires_at);
    }
    for (p, token, unreleased) in changes.acquired {
        debug!(partition = p, token, unreleased, "queue lease acquired");
        state.acquired(p, Held { token, expires_at }, unreleased);
    }
}

async fn renew_one<B: Backend>(
    rt: &Runtime<B>,
    partition: u32,
    token: u64,
    expires_at: u64,
) -> Result<(), TitoError> {
    let s = &rt.settings;
    let key = keys::lease_key(&s.event_type, &s.group, partition);
    let tx = rt.engine.begin().await?;
    let outcome = async {
        let bytes = tx.get(&key).await?;
        let held = match bytes {
            Some(bytes) => PartitionLease::decode(&key, &bytes)?.is_held_by(&s.worker_id, token),
            None => false,
        };
        if held {
            let lease = PartitionLease {
                owner: s.worker_id.clone(),
                token,
                expires_at,
            };
            tx.put(key.clone(), lease.encode()).await?;
        }
        Ok(held)
    }
    .await;
    if tx.finish(outcome).await? {
        rt.state.lock().renewed(partition, token, expires_at);
    }
    Ok(())
}
