//! Unique-index races: clients claim a few contested values of a unique index (inserting a
//! record with one, or updating a record to one) and release them (updating to a value of the
//! record's own, or deleting), each client on records of its own, beside snapshot reads of the
//! index and the records. No read may show two holders of a value; two acknowledged claims of
//! one value in real-time order need a release between them; a refused claim carries the typed
//! `UniqueViolation` naming a record that may hold the value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tito::{TitoError, TitoModel, TitoTransaction};

use super::{
    Anomaly, Clock, FaultyDb, PlainDb, Rng, RunReport, Span, databases, fault_plan, jitter,
    retry_policy, scaled,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "claims")]
pub struct Claim {
    #[tito(id)]
    pub id: String,
    #[tito(unique)]
    pub slot: String,
}

/// The contested values.
const SLOTS: [&str; 3] = ["slot-0", "slot-1", "slot-2"];
const TASKS: usize = 5;
const IDS_PER_TASK: usize = 2;
const READER_TASKS: usize = 1;
/// Operations per client at `TITO_CHECK_SCALE=1`.
const WRITES_PER_TASK: usize = 75;
const READS_PER_READER: usize = 100;

/// A value nobody else claims: what a record holds once it released a contested one.
fn own_slot(id: &str) -> String {
    format!("own-{id}")
}

fn contested(slot: &str) -> bool {
    SLOTS.contains(&slot)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimKind {
    Insert,
    Update,
    Delete,
}

/// How a claim or release ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimResult {
    Ok,
    Unknown,
    /// `UniqueViolation` of the index `slot`, naming the holder.
    Violation {
        holder: String,
    },
    /// A conflict or unavailability that outlasted the retries.
    Retryable(String),
    /// Any other error.
    Other(String),
}

impl ClaimResult {
    fn of<T>(result: &Result<T, TitoError>) -> Self {
        match result {
            Ok(_) => ClaimResult::Ok,
            Err(TitoError::CommitOutcomeUnknown(_)) => ClaimResult::Unknown,
            Err(TitoError::UniqueViolation {
                index, existing_id, ..
            }) if index == "slot" => ClaimResult::Violation {
                holder: existing_id.clone(),
            },
            Err(e) if e.is_retryable() => ClaimResult::Retryable(e.to_string()),
            Err(e) => ClaimResult::Other(format!("{e:?}")),
        }
    }

    fn maybe_applied(&self) -> bool {
        matches!(self, ClaimResult::Ok | ClaimResult::Unknown)
    }
}

/// A write of record `id` from value `from` (none: not stored) to `to` (none: deleted).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimWrite {
    pub id: String,
    pub kind: ClaimKind,
    pub from: Option<String>,
    pub to: Option<String>,
    pub result: ClaimResult,
}

impl ClaimWrite {
    /// The contested value this write claims, if any.
    fn claims(&self) -> Option<&str> {
        (self.to.as_deref()).filter(|to| contested(to) && self.from.as_deref() != Some(to))
    }

    /// The contested value this write releases, if any.
    fn releases(&self) -> Option<&str> {
        (self.from.as_deref()).filter(|from| contested(from) && self.to.as_deref() != Some(from))
    }
}

/// One snapshot: holders of each contested value by the index, and every record's value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClaimRead {
    pub by_index: BTreeMap<String, Vec<String>>,
    pub records: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOp {
    Write(ClaimWrite),
    Read(ClaimRead),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClaimEvent {
    pub task: usize,
    pub span: Span,
    pub op: ClaimOp,
}

#[derive(Debug, Clone, Default)]
pub struct ClaimHistory {
    pub events: Vec<ClaimEvent>,
    /// The final snapshot, read without faults once every client finished.
    pub final_read: ClaimRead,
    /// What each record should hold at the end, by its client's account.
    pub expected: BTreeMap<String, Option<String>>,
}

pub async fn run(seed: u64) -> RunReport {
    let (faulty, db, plain) = databases(fault_plan(seed)).await;
    faulty.set_active(true);
    let clock = Clock::start();
    let mut rng = Rng::new(seed);
    let mut writers = Vec::new();
    for task in 0..TASKS {
        let (db, plain, rng) = (db.clone(), plain.clone(), rng.fork());
        writers.push(tokio::spawn(claims(db, plain, rng, clock, task)));
    }
    let mut readers = Vec::new();
    for reader in 0..READER_TASKS {
        let (db, rng) = (db.clone(), rng.fork());
        readers.push(tokio::spawn(reads(db, rng, clock, TASKS + reader)));
    }
    let (mut events, mut expected) = (Vec::new(), BTreeMap::new());
    for writer in writers {
        let (task_events, task_expected) = writer.await.unwrap();
        events.extend(task_events);
        expected.extend(task_expected);
    }
    for reader in readers {
        events.extend(reader.await.unwrap());
    }
    faulty.set_active(false);
    let snapshot = plain.snapshot().await.unwrap();
    let final_read = read_claims(&plain, &snapshot, expected.keys())
        .await
        .unwrap();
    snapshot.commit().await.unwrap();
    let history = ClaimHistory {
        events,
        final_read,
        expected,
    };
    let mut report = RunReport::default();
    let (mut reads, mut violations) = (0, 0);
    for event in &history.events {
        report.operations += 1;
        match &event.op {
            ClaimOp::Read(_) => reads += 1,
            ClaimOp::Write(write) => match write.result {
                ClaimResult::Ok => {}
                ClaimResult::Unknown => report.unknown += 1,
                ClaimResult::Violation { .. } => {
                    violations += 1;
                    report.failed += 1;
                }
                _ => report.failed += 1,
            },
        }
    }
    report.notes = format!("{reads} snapshot reads, {violations} claims refused as taken");
    report.injected = faulty.injected();
    report.anomalies = check(&history);
    report
}

fn all_ids() -> Vec<String> {
    (0..TASKS)
        .flat_map(|task| (0..IDS_PER_TASK).map(move |n| format!("claim-{task}-{n}")))
        .collect()
}

/// The next write of a record now holding `now`: claim a contested value when it holds none,
/// else release it (to a value of its own, or by deleting) or move to another contested one.
fn next_write(rng: &mut Rng, id: &str, now: &Option<String>) -> (ClaimKind, Option<String>) {
    let pick = |rng: &mut Rng| SLOTS[rng.below(SLOTS.len() as u64) as usize].to_string();
    match now {
        None => (ClaimKind::Insert, Some(pick(rng))),
        Some(slot) if contested(slot) => match rng.below(100) {
            0..40 => (ClaimKind::Update, Some(own_slot(id))),
            40..65 => (ClaimKind::Delete, None),
            _ => (ClaimKind::Update, Some(pick(rng))),
        },
        Some(_) if rng.percent(30) => (ClaimKind::Delete, None),
        Some(_) => (ClaimKind::Update, Some(pick(rng))),
    }
}

/// One client's claims and releases on its own records. It knows what each holds; after an
/// unknown outcome it reads the record again without faults.
async fn claims(
    db: FaultyDb,
    plain: PlainDb,
    mut rng: Rng,
    clock: Clock,
    task: usize,
) -> (Vec<ClaimEvent>, BTreeMap<String, Option<String>>) {
    let model = db.clone().model::<Claim>();
    let ids: Vec<String> = (0..IDS_PER_TASK)
        .map(|n| format!("claim-{task}-{n}"))
        .collect();
    let mut state: BTreeMap<String, Option<String>> =
        ids.iter().map(|id| (id.clone(), None)).collect();
    let mut events = Vec::new();
    for _ in 0..scaled(WRITES_PER_TASK) {
        let id = ids[rng.below(ids.len() as u64) as usize].clone();
        let from = state[&id].clone();
        let (kind, to) = next_write(&mut rng, &id, &from);
        let jitter_seed = rng.next_u64();
        let (result, span) = clock
            .time(db.transaction_with_retry(retry_policy(), |tx| {
                let (model, id, to) = (model.clone(), id.clone(), to.clone());
                async move {
                    match (kind, to) {
                        (ClaimKind::Insert, Some(slot)) => {
                            model.build(Claim { id, slot }, &tx).await.map(drop)
                        }
                        (ClaimKind::Update, Some(slot)) => {
                            // A read-modify-write with a pause inside: races widen.
                            let mut claim = model.find_by_id_tx(&id, vec![], &tx).await?;
                            jitter(&mut Rng::new(jitter_seed)).await;
                            claim.slot = slot;
                            model.update(claim, &tx).await.map(drop)
                        }
                        _ => model.delete_by_id(&id, &tx).await,
                    }
                }
            }))
            .await;
        let result = ClaimResult::of(&result);
        let now = match &result {
            ClaimResult::Ok => to.clone(),
            ClaimResult::Unknown => {
                let stored = plain.clone().model::<Claim>().get(&id).await.unwrap();
                stored.map(|claim| claim.slot)
            }
            _ => from.clone(),
        };
        state.insert(id.clone(), now);
        events.push(ClaimEvent {
            task,
            span,
            op: ClaimOp::Write(ClaimWrite {
                id,
                kind,
                from,
                to,
                result,
            }),
        });
    }
    (events, state)
}

/// Reads the holders of each contested value by the index and every record by id, in `tx`.
async fn read_claims<B: tito::Backend>(
    db: &tito::TitoEngine<B>,
    tx: &TitoTransaction<B>,
    ids: impl Iterator<Item = &String>,
) -> Result<ClaimRead, TitoError> {
    let model = db.clone().model::<Claim>();
    let mut read = ClaimRead::default();
    for slot in SLOTS {
        let page = model
            .query_by_index("slot")
            .value(slot)
            .execute_tx(tx)
            .await?;
        let holders = page.items.into_iter().map(|claim| claim.id).collect();
        read.by_index.insert(slot.to_string(), holders);
    }
    for id in ids {
        if let Some(claim) = model.find_optional_tx(id, vec![], tx).await? {
            read.records.insert(id.clone(), claim.slot);
        }
    }
    Ok(read)
}

async fn reads(db: FaultyDb, mut rng: Rng, clock: Clock, task: usize) -> Vec<ClaimEvent> {
    let ids = all_ids();
    let mut events = Vec::new();
    for _ in 0..scaled(READS_PER_READER) {
        let (result, span) = clock
            .time(async {
                let snapshot = db.snapshot().await?;
                let read = read_claims(&db, &snapshot, ids.iter()).await;
                snapshot.finish(read).await
            })
            .await;
        if let Ok(read) = result {
            events.push(ClaimEvent {
                task,
                span,
                op: ClaimOp::Read(read),
            });
        }
        jitter(&mut rng).await;
    }
    events
}

/// Judges a claim history: errors of refused writes, holders in every read and the final one,
/// releases between real-time ordered claims, and the final records against their clients.
pub fn check(history: &ClaimHistory) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    let writes: Vec<(&ClaimEvent, &ClaimWrite)> = (history.events.iter())
        .filter_map(|e| match &e.op {
            ClaimOp::Write(w) => Some((e, w)),
            ClaimOp::Read(_) => None,
        })
        .collect();
    for (event, write) in &writes {
        check_error(history, &writes, event, write, &mut anomalies);
    }
    for event in &history.events {
        if let ClaimOp::Read(read) = &event.op {
            check_read(
                history,
                read,
                &format!("the read at {}", event.span),
                &mut anomalies,
            );
        }
    }
    check_read(
        history,
        &history.final_read,
        "the final read",
        &mut anomalies,
    );
    check_releases(history, &writes, &mut anomalies);
    for (id, expected) in &history.expected {
        let found = history.final_read.records.get(id);
        if found != expected.as_ref() {
            anomalies.push(Anomaly::new(
                format!("record {id} ends as {found:?}, its client expected {expected:?}"),
                excerpt(history, |w| &w.id == id, |_| false),
            ));
        }
    }
    anomalies
}

/// A refused claim must carry `UniqueViolation` naming another record that may hold the value;
/// nothing else but faults that outlasted the retries may refuse a write.
fn check_error(
    history: &ClaimHistory,
    writes: &[(&ClaimEvent, &ClaimWrite)],
    event: &ClaimEvent,
    write: &ClaimWrite,
    anomalies: &mut Vec<Anomaly>,
) {
    let slot = write.to.clone().unwrap_or_default();
    let near = |w: &ClaimWrite| w.id == write.id || w.to.as_deref() == Some(&slot);
    match &write.result {
        ClaimResult::Other(error) => anomalies.push(Anomaly::new(
            format!(
                "{:?} of {} failed with an untyped error: {error}",
                write.kind, write.id
            ),
            excerpt(history, near, |_| false),
        )),
        ClaimResult::Violation { holder } => {
            let holder_claimed = writes.iter().any(|(e, w)| {
                &w.id == holder
                    && w.result.maybe_applied()
                    && w.to.as_deref() == Some(&slot)
                    && e.span.invoked < event.span.completed
            });
            if write.claims().is_none() || holder == &write.id || !holder_claimed {
                anomalies.push(Anomaly::new(
                    format!(
                        "{:?} of {} to {slot} at {} was refused as held by {holder}, which never \
                         claimed it before",
                        write.kind, write.id, event.span
                    ),
                    excerpt(history, |w| near(w) || &w.id == holder, |_| false),
                ));
            }
        }
        _ => {}
    }
}

fn check_read(history: &ClaimHistory, read: &ClaimRead, at: &str, anomalies: &mut Vec<Anomaly>) {
    for slot in SLOTS {
        let by_index = read.by_index.get(slot).cloned().unwrap_or_default();
        let mut by_records: Vec<String> = (read.records.iter())
            .filter(|(_, held)| held.as_str() == slot)
            .map(|(id, _)| id.clone())
            .collect();
        by_records.sort();
        let mut indexed = by_index.clone();
        indexed.sort();
        let touching =
            |w: &ClaimWrite| w.from.as_deref() == Some(slot) || w.to.as_deref() == Some(slot);
        if by_index.len() > 1 || by_records.len() > 1 {
            anomalies.push(Anomaly::new(
                format!(
                    "{at} shows {slot} held twice: by the index {by_index:?}, by the records \
                     {by_records:?}"
                ),
                excerpt(history, touching, |r| r == read),
            ));
        } else if indexed != by_records {
            anomalies.push(Anomaly::new(
                format!(
                    "{at}: the index says {slot} is held by {by_index:?}, the records by \
                     {by_records:?}"
                ),
                excerpt(history, touching, |r| r == read),
            ));
        }
    }
}

/// Two acknowledged claims of one value by different records, the first ended before the second
/// began: the first holder released the value (or may have) in between. Unknown claims are only
/// possible holds, so they start no such pair.
fn check_releases(
    history: &ClaimHistory,
    writes: &[(&ClaimEvent, &ClaimWrite)],
    anomalies: &mut Vec<Anomaly>,
) {
    let acked_claims =
        || (writes.iter()).filter(|(_, w)| w.result == ClaimResult::Ok && w.claims().is_some());
    for (first, x) in acked_claims() {
        for (second, y) in acked_claims() {
            if x.id == y.id || x.claims() != y.claims() || !first.span.before(&second.span) {
                continue;
            }
            let released = writes.iter().any(|(r, w)| {
                w.id == x.id
                    && w.result.maybe_applied()
                    && w.releases() == x.claims()
                    && r.span.invoked > first.span.invoked
                    && r.span.invoked < second.span.completed
            });
            if !released {
                let slot = x.claims().unwrap_or_default();
                anomalies.push(Anomaly::new(
                    format!(
                        "{} claimed {slot} at {} and {} claimed it at {}, with no release by {} \
                         between: two holders",
                        x.id, first.span, y.id, second.span, x.id
                    ),
                    excerpt(history, |w| w.id == x.id || w.id == y.id, |_| false),
                ));
                // One report per first claim is enough to reproduce.
                break;
            }
        }
    }
}

fn excerpt(
    history: &ClaimHistory,
    keep_write: impl Fn(&ClaimWrite) -> bool,
    keep_read: impl Fn(&ClaimRead) -> bool,
) -> Vec<String> {
    (history.events.iter())
        .filter(|e| match &e.op {
            ClaimOp::Write(w) => keep_write(w),
            ClaimOp::Read(r) => keep_read(r),
        })
        .map(|e| format!("{} task {}: {:?}", e.span, e.task, e.op))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(invoked: u64, completed: u64) -> Span {
        Span { invoked, completed }
    }

    fn write(
        id: &str,
        from: Option<&str>,
        to: Option<&str>,
        result: ClaimResult,
        span: Span,
    ) -> ClaimEvent {
        let kind = match (from, to) {
            (None, _) => ClaimKind::Insert,
            (_, None) => ClaimKind::Delete,
            _ => ClaimKind::Update,
        };
        ClaimEvent {
            task: 0,
            span,
            op: ClaimOp::Write(ClaimWrite {
                id: id.into(),
                kind,
                from: from.map(String::from),
                to: to.map(String::from),
                result,
            }),
        }
    }

    fn read(holders: &[(&str, &str)]) -> ClaimRead {
        let mut read = ClaimRead::default();
        for slot in SLOTS {
            read.by_index.insert(slot.into(), vec![]);
        }
        for (id, slot) in holders {
            read.records.insert(id.to_string(), slot.to_string());
            if let Some(ids) = read.by_index.get_mut(*slot) {
                ids.push(id.to_string());
            }
        }
        read
    }

    fn history(events: Vec<ClaimEvent>, holders: &[(&str, &str)]) -> ClaimHistory {
        let expected = holders
            .iter()
            .map(|(id, slot)| (id.to_string(), Some(slot.to_string())))
            .collect();
        ClaimHistory {
            events,
            final_read: read(holders),
            expected,
        }
    }

    #[test]
    fn a_consistent_history_passes() {
        let h = history(
            vec![
                write("a", None, Some("slot-0"), ClaimResult::Ok, at(0, 10)),
                write(
                    "b",
                    None,
                    Some("slot-0"),
                    ClaimResult::Violation { holder: "a".into() },
                    at(11, 20),
                ),
                write(
                    "a",
                    Some("slot-0"),
                    Some("own-a"),
                    ClaimResult::Unknown,
                    at(21, 30),
                ),
                write("b", None, Some("slot-0"), ClaimResult::Ok, at(31, 40)),
            ],
            &[("a", "own-a"), ("b", "slot-0")],
        );
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }

    #[test]
    fn two_holders_in_a_read_are_reported() {
        let mut h = history(vec![], &[("a", "slot-1")]);
        h.events.push(ClaimEvent {
            task: 1,
            span: at(0, 1),
            op: ClaimOp::Read(read(&[("a", "slot-1"), ("b", "slot-1")])),
        });
        let found = check(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].what.contains("held twice"), "{found:?}");
    }

    #[test]
    fn two_acknowledged_claims_without_a_release_are_reported() {
        let h = history(
            vec![
                write("a", None, Some("slot-0"), ClaimResult::Ok, at(0, 10)),
                write("b", None, Some("slot-0"), ClaimResult::Ok, at(11, 20)),
            ],
            &[("a", "slot-0")],
        );
        let found = check(&h);
        assert!(
            found.iter().any(|a| a.what.contains("two holders")),
            "{found:?}"
        );
    }

    #[test]
    fn a_refusal_without_the_typed_error_is_reported() {
        let h = history(
            vec![
                write("a", None, Some("slot-0"), ClaimResult::Ok, at(0, 10)),
                write(
                    "b",
                    None,
                    Some("slot-0"),
                    ClaimResult::Other("KeyExists(\"b\")".into()),
                    at(11, 20),
                ),
                write(
                    "c",
                    None,
                    Some("slot-2"),
                    ClaimResult::Violation { holder: "a".into() },
                    at(21, 30),
                ),
            ],
            &[("a", "slot-0")],
        );
        let found = check(&h);
        assert!(
            found.iter().any(|a| a.what.contains("untyped")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|a| a.what.contains("never claimed")),
            "{found:?}"
        );
    }
}
