//! List append, after Elle: transactions append unique values to lists under random keys and
//! read lists, some in read-only snapshots, some aborted. Appends of unique values make every
//! read name the transactions it saw, so the checker infers the order of transactions from the
//! final lists alone: write-write (one append after another), write-read (a read saw an append)
//! and read-write (a read missed the next append) dependencies, plus real-time order. A
//! serializable, real-time store gives a history whose dependency graph has no cycle; every
//! read is a prefix of the final list; no acknowledged append is lost; no aborted one is seen.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tito::{TitoError, TitoModel, TitoTransaction};

use super::{
    Anomaly, Clock, FaultyDb, Outcome, PlainDb, Rng, RunReport, Span, abort_error, databases,
    fault_plan, jitter, retry_policy, scaled,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "append_lists")]
pub struct AppendList {
    #[tito(id)]
    pub id: String,
    pub items: Vec<u64>,
}

const KEYS: usize = 4;
const TASKS: usize = 4;
/// Transactions per client at `TITO_CHECK_SCALE=1`.
const TXNS_PER_TASK: usize = 100;

/// One step of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mop {
    Append {
        key: usize,
        value: u64,
    },
    /// A read and what it returned (`None` before the transaction ran).
    Read {
        key: usize,
        seen: Option<Vec<u64>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Txn {
    pub task: usize,
    pub span: Span,
    pub mops: Vec<Mop>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Default)]
pub struct AppendHistory {
    pub txns: Vec<Txn>,
    pub final_lists: Vec<Vec<u64>>,
}

fn key_id(key: usize) -> String {
    format!("list-{key}")
}

pub async fn run(seed: u64) -> RunReport {
    let (faulty, db, plain) = databases(fault_plan(seed)).await;
    seed_lists(&plain).await;
    faulty.set_active(true);
    let clock = Clock::start();
    let mut rng = Rng::new(seed);
    // Values are unique across the run: each names the one transaction that appended it.
    let next_value = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (db, rng, next_value) = (db.clone(), rng.fork(), next_value.clone());
        tasks.push(tokio::spawn(transactions(db, rng, clock, task, next_value)));
    }
    let mut txns = Vec::new();
    for task in tasks {
        txns.extend(task.await.unwrap());
    }
    faulty.set_active(false);
    let lists = plain.clone().model::<AppendList>();
    let mut final_lists = Vec::new();
    for key in 0..KEYS {
        final_lists.push(lists.find_by_id(&key_id(key), vec![]).await.unwrap().items);
    }
    let history = AppendHistory { txns, final_lists };
    let mut report = RunReport {
        operations: history.txns.len(),
        ..RunReport::default()
    };
    for txn in &history.txns {
        match txn.outcome {
            Outcome::Ok => {}
            Outcome::Unknown => report.unknown += 1,
            _ => report.failed += 1,
        }
    }
    let lengths: Vec<usize> = history.final_lists.iter().map(Vec::len).collect();
    report.notes = format!("final list lengths {lengths:?}");
    report.injected = faulty.injected();
    report.anomalies = check(&history);
    report
}

async fn seed_lists(plain: &PlainDb) {
    let lists = plain.clone().model::<AppendList>();
    plain
        .transaction(|tx| async move {
            for key in 0..KEYS {
                let list = AppendList {
                    id: key_id(key),
                    items: Vec::new(),
                };
                lists.build(list, &tx).await?;
            }
            Ok::<_, TitoError>(())
        })
        .await
        .unwrap();
}

/// A random transaction: one to four steps on random keys; reads only, a fifth of the time.
fn plan_txn(rng: &mut Rng, next_value: &AtomicU64) -> Vec<Mop> {
    let read_only = rng.percent(20);
    (0..1 + rng.below(4))
        .map(|_| {
            let key = rng.below(KEYS as u64) as usize;
            if read_only || rng.percent(50) {
                Mop::Read { key, seen: None }
            } else {
                let value = next_value.fetch_add(1, Ordering::Relaxed);
                Mop::Append { key, value }
            }
        })
        .collect()
}

/// Runs `mops` in `tx` and returns them with what the reads saw.
async fn execute<B: tito::Backend>(
    lists: &tito::TitoModel<AppendList, B>,
    tx: &TitoTransaction<B>,
    mops: &[Mop],
    rng: &mut Rng,
) -> Result<Vec<Mop>, TitoError> {
    let mut done = Vec::new();
    for mop in mops {
        match mop {
            Mop::Read { key, .. } => {
                let list = lists.find_by_id_tx(&key_id(*key), vec![], tx).await?;
                done.push(Mop::Read {
                    key: *key,
                    seen: Some(list.items),
                });
            }
            Mop::Append { key, value } => {
                let mut list = lists.find_by_id_tx(&key_id(*key), vec![], tx).await?;
                jitter(rng).await;
                list.items.push(*value);
                lists.update(list, tx).await?;
                done.push(mop.clone());
            }
        }
    }
    Ok(done)
}

async fn transactions(
    db: FaultyDb,
    mut rng: Rng,
    clock: Clock,
    task: usize,
    next_value: Arc<AtomicU64>,
) -> Vec<Txn> {
    let lists = db.clone().model::<AppendList>();
    let mut txns = Vec::new();
    for _ in 0..scaled(TXNS_PER_TASK) {
        let mops = plan_txn(&mut rng, &next_value);
        let read_only = mops.iter().all(|m| matches!(m, Mop::Read { .. }));
        let abort = !read_only && rng.percent(5);
        let jitter_seed = rng.next_u64();
        let (result, span) = if read_only && rng.percent(50) {
            clock
                .time(async {
                    let snapshot = db.snapshot().await?;
                    let done = execute(&lists, &snapshot, &mops, &mut Rng::new(jitter_seed)).await;
                    snapshot.finish(done).await
                })
                .await
        } else {
            clock
                .time(db.transaction_with_retry(retry_policy(), |tx| {
                    let (lists, mops) = (lists.clone(), mops.clone());
                    async move {
                        let done = execute(&lists, &tx, &mops, &mut Rng::new(jitter_seed)).await?;
                        if abort {
                            return Err(abort_error());
                        }
                        Ok(done)
                    }
                }))
                .await
        };
        let outcome = Outcome::of(&result);
        txns.push(Txn {
            task,
            span,
            mops: result.unwrap_or(mops),
            outcome,
        });
    }
    txns
}

/// Judges a list-append history.
pub fn check(history: &AppendHistory) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    // Which transaction appended each value, and to which key.
    let mut appender: HashMap<u64, (usize, usize)> = HashMap::new();
    for (t, txn) in history.txns.iter().enumerate() {
        for mop in &txn.mops {
            if let Mop::Append { key, value } = mop {
                appender.insert(*value, (t, *key));
            }
        }
    }
    check_final_lists(history, &appender, &mut anomalies);
    for (t, txn) in history.txns.iter().enumerate() {
        if txn.outcome == Outcome::Ok {
            check_reads(history, &appender, t, &mut anomalies);
        }
    }
    // The graph needs each read to be a prefix of the final list; report those first.
    if anomalies.is_empty()
        && let Some(cycle) = dependency_cycle(history, &appender)
    {
        anomalies.push(cycle);
    }
    anomalies
}

/// Final lists: no duplicate, nothing from a transaction that failed or never ran, every
/// acknowledged append present.
fn check_final_lists(
    history: &AppendHistory,
    appender: &HashMap<u64, (usize, usize)>,
    anomalies: &mut Vec<Anomaly>,
) {
    for (key, list) in history.final_lists.iter().enumerate() {
        let mut seen = HashSet::new();
        for value in list {
            if !seen.insert(value) {
                anomalies.push(Anomaly::new(
                    format!("value {value} appears twice in list {key}: an append applied twice"),
                    excerpt(history, |m| touches_value(m, *value)),
                ));
            }
            match appender.get(value) {
                Some((t, k)) if *k == key && history.txns[*t].outcome.maybe_applied() => {}
                _ => anomalies.push(Anomaly::new(
                    format!(
                        "list {key} holds {value}, appended by no committed (or unknown) \
                         transaction: an aborted or failed write became visible"
                    ),
                    excerpt(history, |m| touches_value(m, *value)),
                )),
            }
        }
    }
    for txn in history.txns.iter().filter(|t| t.outcome == Outcome::Ok) {
        for mop in &txn.mops {
            if let Mop::Append { key, value } = mop
                && !history.final_lists[*key].contains(value)
            {
                anomalies.push(Anomaly::new(
                    format!("the acknowledged append of {value} to list {key} is lost"),
                    excerpt(history, |m| touches_key(m, *key)),
                ));
            }
        }
    }
}

/// Reads of an acknowledged transaction: each a prefix of its key's final list, its own earlier
/// appends at its end, and nothing from a failed transaction.
fn check_reads(
    history: &AppendHistory,
    appender: &HashMap<u64, (usize, usize)>,
    t: usize,
    anomalies: &mut Vec<Anomaly>,
) {
    let txn = &history.txns[t];
    let mut own: HashMap<usize, Vec<u64>> = HashMap::new();
    for mop in &txn.mops {
        match mop {
            Mop::Append { key, value } => own.entry(*key).or_default().push(*value),
            Mop::Read {
                key,
                seen: Some(seen),
            } => {
                let list = &history.final_lists[*key];
                let mine = own.get(key).map_or(&[][..], Vec::as_slice);
                if !list.starts_with(seen) {
                    anomalies.push(Anomaly::new(
                        format!(
                            "task {} read list {key} as {seen:?} at {}, not a prefix of its final \
                             {list:?}",
                            txn.task, txn.span
                        ),
                        excerpt(history, |m| touches_key(m, *key)),
                    ));
                } else if !seen.ends_with(mine) {
                    anomalies.push(Anomaly::new(
                        format!(
                            "task {} read list {key} as {seen:?} after appending {mine:?} in the \
                             same transaction",
                            txn.task
                        ),
                        excerpt(history, |m| touches_key(m, *key)),
                    ));
                }
                for value in seen {
                    let failed = appender
                        .get(value)
                        .is_some_and(|(a, _)| !history.txns[*a].outcome.maybe_applied());
                    if failed {
                        anomalies.push(Anomaly::new(
                            format!("task {} read {value} in list {key}, written by a failed or aborted transaction", txn.task),
                            excerpt(history, |m| touches_value(m, *value)),
                        ));
                    }
                }
            }
            Mop::Read { seen: None, .. } => {}
        }
    }
}

/// The dependency edges between transactions that may have committed, and the first cycle
/// among them, if any.
fn dependency_cycle(
    history: &AppendHistory,
    appender: &HashMap<u64, (usize, usize)>,
) -> Option<Anomaly> {
    let n = history.txns.len();
    let node = |t: usize| {
        let txn = &history.txns[t];
        txn.outcome == Outcome::Ok
            || (txn.outcome == Outcome::Unknown
                && txn.mops.iter().any(|m| match m {
                    Mop::Append { key, value } => history.final_lists[*key].contains(value),
                    Mop::Read { .. } => false,
                }))
    };
    let mut edges: Vec<HashMap<usize, &'static str>> = vec![HashMap::new(); n];
    let mut add = |from: usize, to: usize, why: &'static str| {
        if from != to {
            edges[from].entry(to).or_insert(why);
        }
    };
    let writer = |value: &u64| appender.get(value).map(|(t, _)| *t);
    for list in &history.final_lists {
        for pair in list.windows(2) {
            if let (Some(a), Some(b)) = (writer(&pair[0]), writer(&pair[1])) {
                add(a, b, "ww");
            }
        }
    }
    for (t, txn) in history.txns.iter().enumerate() {
        if txn.outcome != Outcome::Ok {
            continue;
        }
        let mut appended: HashSet<usize> = HashSet::new();
        for mop in &txn.mops {
            match mop {
                Mop::Append { key, .. } => {
                    appended.insert(*key);
                }
                // Only reads of state others wrote: a read after the transaction's own append
                // shows that append, not an order.
                Mop::Read {
                    key,
                    seen: Some(seen),
                } if !appended.contains(key) => {
                    let list = &history.final_lists[*key];
                    if let Some(a) = seen.last().and_then(writer) {
                        add(a, t, "wr");
                    }
                    if let Some(b) = list.get(seen.len()).and_then(writer) {
                        add(t, b, "rw");
                    }
                }
                Mop::Read { .. } => {}
            }
        }
    }
    let nodes: Vec<usize> = (0..n).filter(|&t| node(t)).collect();
    for &a in &nodes {
        for &b in &nodes {
            if history.txns[a].span.before(&history.txns[b].span) {
                add(a, b, "realtime");
            }
        }
    }
    let found = find_cycle(&nodes, &edges)?;
    // The shortest cycle through one of the found cycle's transactions: the smallest excerpt.
    let cycle = (found.iter())
        .filter_map(|&t| shortest_cycle_through(t, &nodes, &edges))
        .min_by_key(Vec::len)
        .unwrap_or(found);
    let mut lines = Vec::new();
    for (i, &t) in cycle.iter().enumerate() {
        let next = cycle[(i + 1) % cycle.len()];
        let txn = &history.txns[t];
        lines.push(format!(
            "T{t} {} task {} {:?}: {:?}  --{}--> T{next}",
            txn.span, txn.task, txn.outcome, txn.mops, edges[t][&next]
        ));
    }
    Some(Anomaly::new(
        format!(
            "the transactions' dependencies form a cycle of {}: no single commit order explains \
             the reads",
            cycle.len()
        ),
        lines,
    ))
}

/// A cycle through `edges` restricted to `nodes`, if there is one: a depth-first search for a
/// back edge, then the path along the search stack.
fn find_cycle(nodes: &[usize], edges: &[HashMap<usize, &'static str>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let included: HashSet<usize> = nodes.iter().copied().collect();
    let mut mark = vec![Mark::New; edges.len()];
    for &root in nodes {
        if mark[root] != Mark::New {
            continue;
        }
        // Each frame: a node and its remaining successors.
        let mut stack: Vec<(usize, Vec<usize>)> = Vec::new();
        let successors = |t: usize| -> Vec<usize> {
            let mut next: Vec<usize> = edges[t]
                .keys()
                .copied()
                .filter(|s| included.contains(s))
                .collect();
            next.sort_unstable();
            next
        };
        mark[root] = Mark::OnStack;
        stack.push((root, successors(root)));
        while let Some((t, rest)) = stack.last_mut() {
            let t = *t;
            match rest.pop() {
                Some(s) if mark[s] == Mark::OnStack => {
                    let start = stack.iter().position(|(u, _)| *u == s).unwrap_or(0);
                    return Some(stack[start..].iter().map(|(u, _)| *u).collect());
                }
                Some(s) if mark[s] == Mark::New => {
                    mark[s] = Mark::OnStack;
                    stack.push((s, successors(s)));
                }
                Some(_) => {}
                None => {
                    mark[t] = Mark::Done;
                    stack.pop();
                }
            }
        }
    }
    None
}

/// The shortest cycle from `start` back to it (breadth-first), if any.
fn shortest_cycle_through(
    start: usize,
    nodes: &[usize],
    edges: &[HashMap<usize, &'static str>],
) -> Option<Vec<usize>> {
    let included: HashSet<usize> = nodes.iter().copied().collect();
    let mut parent: HashMap<usize, usize> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(t) = queue.pop_front() {
        let mut next: Vec<usize> = edges[t].keys().copied().collect();
        next.sort_unstable();
        for s in next.into_iter().filter(|s| included.contains(s)) {
            if s == start {
                let mut cycle = vec![t];
                while let Some(&p) = parent.get(cycle.last()?) {
                    cycle.push(p);
                }
                if cycle.last() != Some(&start) {
                    cycle.push(start);
                }
                cycle.reverse();
                return Some(cycle);
            }
            if s != start && !parent.contains_key(&s) {
                parent.insert(s, t);
                queue.push_back(s);
            }
        }
    }
    None
}

fn touches_key(mop: &Mop, k: usize) -> bool {
    match mop {
        Mop::Append { key, .. } | Mop::Read { key, .. } => *key == k,
    }
}

fn touches_value(mop: &Mop, v: u64) -> bool {
    match mop {
        Mop::Append { value, .. } => *value == v,
        Mop::Read { seen, .. } => seen.as_ref().is_some_and(|s| s.contains(&v)),
    }
}

/// The transactions with a step that `keep` selects, in invocation order, and the final lists.
fn excerpt(history: &AppendHistory, keep: impl Fn(&Mop) -> bool) -> Vec<String> {
    let mut txns: Vec<(usize, &Txn)> = (history.txns.iter().enumerate())
        .filter(|(_, t)| t.mops.iter().any(&keep))
        .collect();
    txns.sort_by_key(|(_, t)| t.span.invoked);
    let mut lines: Vec<String> = txns
        .into_iter()
        .map(|(i, t)| {
            format!(
                "T{i} {} task {} {:?}: {:?}",
                t.span, t.task, t.outcome, t.mops
            )
        })
        .collect();
    lines.push(format!("final lists: {:?}", history.final_lists));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(invoked: u64, completed: u64) -> Span {
        Span { invoked, completed }
    }

    fn append(key: usize, value: u64) -> Mop {
        Mop::Append { key, value }
    }

    fn read(key: usize, seen: &[u64]) -> Mop {
        Mop::Read {
            key,
            seen: Some(seen.to_vec()),
        }
    }

    fn txn(mops: Vec<Mop>, outcome: Outcome, span: Span) -> Txn {
        Txn {
            task: 0,
            span,
            mops,
            outcome,
        }
    }

    #[test]
    fn a_serializable_history_passes() {
        let h = AppendHistory {
            txns: vec![
                txn(vec![append(0, 1), append(1, 2)], Outcome::Ok, at(0, 10)),
                txn(
                    vec![read(0, &[1]), append(0, 3), read(0, &[1, 3])],
                    Outcome::Ok,
                    at(5, 20),
                ),
                txn(vec![append(1, 4)], Outcome::Unknown, at(5, 30)),
                txn(vec![append(1, 5)], Outcome::Aborted, at(5, 30)),
                txn(
                    vec![read(0, &[1, 3]), read(1, &[2])],
                    Outcome::Ok,
                    at(21, 22),
                ),
            ],
            final_lists: vec![vec![1, 3], vec![2, 4]],
        };
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }

    #[test]
    fn a_read_that_is_not_a_prefix_is_reported() {
        let h = AppendHistory {
            txns: vec![
                txn(vec![append(0, 1)], Outcome::Ok, at(0, 10)),
                txn(vec![append(0, 2)], Outcome::Ok, at(0, 10)),
                txn(vec![read(0, &[2])], Outcome::Ok, at(11, 12)),
            ],
            final_lists: vec![vec![1, 2]],
        };
        let found = check(&h);
        assert!(
            found.iter().any(|a| a.what.contains("not a prefix")),
            "{found:?}"
        );
    }

    #[test]
    fn a_lost_append_and_an_aborted_read_are_reported() {
        let h = AppendHistory {
            txns: vec![
                txn(vec![append(0, 1)], Outcome::Ok, at(0, 10)),
                txn(vec![append(0, 2)], Outcome::Aborted, at(0, 10)),
                txn(vec![read(0, &[2])], Outcome::Ok, at(11, 12)),
            ],
            final_lists: vec![vec![2]],
        };
        let found = check(&h);
        assert!(found.iter().any(|a| a.what.contains("lost")), "{found:?}");
        assert!(
            found.iter().any(|a| a.what.contains("aborted")),
            "{found:?}"
        );
    }

    #[test]
    fn read_skew_forms_a_cycle() {
        // T0 appends to both lists; T1 sees T0's append to list 0 but not to list 1.
        let h = AppendHistory {
            txns: vec![
                txn(vec![append(0, 1), append(1, 2)], Outcome::Ok, at(0, 10)),
                txn(vec![read(0, &[1]), read(1, &[])], Outcome::Ok, at(0, 10)),
            ],
            final_lists: vec![vec![1], vec![2]],
        };
        let found = check(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].what.contains("cycle of 2"), "{found:?}");
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_append_forms_a_cycle() {
        // Real time: T1 began after T0 was acknowledged, yet missed T0's append.
        let h = AppendHistory {
            txns: vec![
                txn(vec![append(0, 1)], Outcome::Ok, at(0, 10)),
                txn(vec![read(0, &[])], Outcome::Ok, at(11, 12)),
            ],
            final_lists: vec![vec![1]],
        };
        let found = check(&h);
        assert!(found.iter().any(|a| a.what.contains("cycle")), "{found:?}");
    }
}
