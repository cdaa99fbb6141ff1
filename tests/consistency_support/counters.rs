//! Counters: concurrent read-modify-write increments, through `update_with` (its own retried
//! transaction) and through a retried transaction doing get + update, some aborted, beside
//! snapshot reads. A counter ends between its acknowledged increments and those plus the ones
//! whose outcome is unknown; a read sees at least the increments acknowledged before it began,
//! at most those begun before it ended, and one reader never sees a counter go back.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tito::{TitoError, TitoModel};

use super::{
    Anomaly, Clock, FaultyDb, Outcome, PlainDb, Rng, RunReport, Span, abort_error, databases,
    fault_plan, jitter, retry_policy, scaled,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "check_counters")]
pub struct Counter {
    #[tito(id)]
    pub id: String,
    pub value: u64,
}

const COUNTERS: usize = 3;
const INCREMENT_TASKS: usize = 4;
const READER_TASKS: usize = 1;
/// Operations per client at `TITO_CHECK_SCALE=1`.
const INCREMENTS_PER_TASK: usize = 75;
const READS_PER_READER: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub enum CounterOp {
    Increment { counter: usize, outcome: Outcome },
    Read { counter: usize, value: u64 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CounterEvent {
    pub task: usize,
    pub span: Span,
    pub op: CounterOp,
}

#[derive(Debug, Clone, Default)]
pub struct CounterHistory {
    pub events: Vec<CounterEvent>,
    pub final_values: Vec<u64>,
}

fn counter_id(n: usize) -> String {
    format!("counter-{n}")
}

pub async fn run(seed: u64) -> RunReport {
    let (faulty, db, plain) = databases(fault_plan(seed)).await;
    seed_counters(&plain).await;
    faulty.set_active(true);
    let clock = Clock::start();
    let mut rng = Rng::new(seed);
    let mut tasks = Vec::new();
    for task in 0..INCREMENT_TASKS {
        let (db, rng) = (db.clone(), rng.fork());
        tasks.push(tokio::spawn(increments(db, rng, clock, task)));
    }
    for reader in 0..READER_TASKS {
        let (db, rng) = (db.clone(), rng.fork());
        tasks.push(tokio::spawn(reads(
            db,
            rng,
            clock,
            INCREMENT_TASKS + reader,
        )));
    }
    let mut events = Vec::new();
    for task in tasks {
        events.extend(task.await.unwrap());
    }
    faulty.set_active(false);
    let counters = plain.clone().model::<Counter>();
    let mut final_values = Vec::new();
    for n in 0..COUNTERS {
        final_values.push(
            counters
                .find_by_id(&counter_id(n), vec![])
                .await
                .unwrap()
                .value,
        );
    }
    let history = CounterHistory {
        events,
        final_values,
    };
    let mut report = RunReport::default();
    let mut reads = 0;
    for event in &history.events {
        report.operations += 1;
        match &event.op {
            CounterOp::Increment { outcome, .. } => match outcome {
                Outcome::Ok => {}
                Outcome::Unknown => report.unknown += 1,
                _ => report.failed += 1,
            },
            CounterOp::Read { .. } => reads += 1,
        }
    }
    report.notes = format!("{reads} reads, final values {:?}", history.final_values);
    report.injected = faulty.injected();
    report.anomalies = check(&history);
    report
}

async fn seed_counters(plain: &PlainDb) {
    let counters = plain.clone().model::<Counter>();
    plain
        .transaction(|tx| async move {
            for n in 0..COUNTERS {
                let counter = Counter {
                    id: counter_id(n),
                    value: 0,
                };
                counters.build(counter, &tx).await?;
            }
            Ok::<_, TitoError>(())
        })
        .await
        .unwrap();
}

/// One client's increments: half through `update_with`, half through a retried get + update
/// with a pause between them (some aborted after the write).
async fn increments(db: FaultyDb, mut rng: Rng, clock: Clock, task: usize) -> Vec<CounterEvent> {
    let counters = db.clone().model::<Counter>();
    let mut events = Vec::new();
    for _ in 0..scaled(INCREMENTS_PER_TASK) {
        let counter = rng.below(COUNTERS as u64) as usize;
        let id = counter_id(counter);
        let (result, span) = if rng.percent(50) {
            clock
                .time(counters.update_with(&id, |c| c.value += 1))
                .await
        } else {
            let abort = rng.percent(5);
            let jitter_seed = rng.next_u64();
            clock
                .time(db.transaction_with_retry(retry_policy(), |tx| {
                    let (counters, id) = (counters.clone(), id.clone());
                    let mut rng = Rng::new(jitter_seed);
                    async move {
                        let mut c = counters.find_by_id_tx(&id, vec![], &tx).await?;
                        jitter(&mut rng).await;
                        c.value += 1;
                        let c = counters.update(c, &tx).await?;
                        if abort {
                            return Err(abort_error());
                        }
                        Ok(c)
                    }
                }))
                .await
        };
        events.push(CounterEvent {
            task,
            span,
            op: CounterOp::Increment {
                counter,
                outcome: Outcome::of(&result),
            },
        });
    }
    events
}

/// One client's snapshot reads of random counters.
async fn reads(db: FaultyDb, mut rng: Rng, clock: Clock, task: usize) -> Vec<CounterEvent> {
    let counters = db.clone().model::<Counter>();
    let mut events = Vec::new();
    for _ in 0..scaled(READS_PER_READER) {
        let counter = rng.below(COUNTERS as u64) as usize;
        let (result, span) = clock
            .time(counters.find_by_id(&counter_id(counter), vec![]))
            .await;
        if let Ok(c) = result {
            events.push(CounterEvent {
                task,
                span,
                op: CounterOp::Read {
                    counter,
                    value: c.value,
                },
            });
        }
        jitter(&mut rng).await;
    }
    events
}

/// Judges a counter history: final values against acknowledged and unknown increments, each
/// read against the increments surely before it and possibly before it, and each reader's reads
/// against its earlier ones.
pub fn check(history: &CounterHistory) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    for (counter, &value) in history.final_values.iter().enumerate() {
        let increments = || increments_of(history, counter);
        let acked = increments().filter(|(_, o)| **o == Outcome::Ok).count() as u64;
        let unknown = increments()
            .filter(|(_, o)| **o == Outcome::Unknown)
            .count() as u64;
        if value < acked || value > acked + unknown {
            anomalies.push(Anomaly::new(
                format!(
                    "counter {counter} ends at {value}, outside [{acked}, {}]: {}",
                    acked + unknown,
                    if value < acked {
                        "an acknowledged increment was lost"
                    } else {
                        "an increment was applied twice, or a failed or aborted one applied"
                    }
                ),
                excerpt(history, counter, |_| true),
            ));
        }
    }
    let mut last_read: HashMap<(usize, usize), (u64, Span)> = HashMap::new();
    for event in &history.events {
        let CounterOp::Read { counter, value } = event.op else {
            continue;
        };
        let surely_before = (increments_of(history, counter))
            .filter(|(span, outcome)| **outcome == Outcome::Ok && span.before(&event.span))
            .count() as u64;
        let possibly_before = (increments_of(history, counter))
            .filter(|(span, outcome)| {
                outcome.maybe_applied() && span.invoked < event.span.completed
            })
            .count() as u64;
        if value < surely_before || value > possibly_before {
            anomalies.push(Anomaly::new(
                format!(
                    "a read of counter {counter} at {} saw {value}, outside [{surely_before}, \
                     {possibly_before}]: {}",
                    event.span,
                    if value < surely_before {
                        "a stale read"
                    } else {
                        "a read of a value not yet (or never) written"
                    }
                ),
                excerpt(history, counter, |e| !event.span.before(&e.span)),
            ));
        }
        if let Some((previous, at)) = last_read.insert((event.task, counter), (value, event.span))
            && previous > value
        {
            anomalies.push(Anomaly::new(
                format!(
                    "reader {} saw counter {counter} go back from {previous} at {at} to {value} \
                     at {}",
                    event.task, event.span
                ),
                excerpt(history, counter, |e| !event.span.before(&e.span)),
            ));
        }
    }
    anomalies
}

fn increments_of(
    history: &CounterHistory,
    counter: usize,
) -> impl Iterator<Item = (&Span, &Outcome)> {
    history.events.iter().filter_map(move |e| match &e.op {
        CounterOp::Increment {
            counter: c,
            outcome,
        } if *c == counter => Some((&e.span, outcome)),
        _ => None,
    })
}

fn excerpt(
    history: &CounterHistory,
    counter: usize,
    keep: impl Fn(&CounterEvent) -> bool,
) -> Vec<String> {
    let mut lines: Vec<String> = (history.events.iter())
        .filter(|e| match e.op {
            CounterOp::Increment { counter: c, .. } | CounterOp::Read { counter: c, .. } => {
                c == counter
            }
        })
        .filter(|e| keep(e))
        .map(|e| format!("{} task {}: {:?}", e.span, e.task, e.op))
        .collect();
    lines.sort();
    lines.push(format!("final values: {:?}", history.final_values));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(invoked: u64, completed: u64) -> Span {
        Span { invoked, completed }
    }

    fn increment(outcome: Outcome, span: Span) -> CounterEvent {
        CounterEvent {
            task: 0,
            span,
            op: CounterOp::Increment {
                counter: 0,
                outcome,
            },
        }
    }

    fn read(value: u64, span: Span) -> CounterEvent {
        CounterEvent {
            task: 9,
            span,
            op: CounterOp::Read { counter: 0, value },
        }
    }

    #[test]
    fn a_consistent_history_passes() {
        let h = CounterHistory {
            events: vec![
                increment(Outcome::Ok, at(0, 10)),
                increment(Outcome::Unknown, at(5, 15)),
                increment(Outcome::Failed("conflict".into()), at(5, 15)),
                read(1, at(11, 12)),
                read(2, at(16, 17)),
            ],
            final_values: vec![2],
        };
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }

    #[test]
    fn a_lost_update_is_reported() {
        // Two increments acknowledged from the same read: the counter moved once.
        let h = CounterHistory {
            events: vec![
                increment(Outcome::Ok, at(0, 10)),
                increment(Outcome::Ok, at(1, 11)),
            ],
            final_values: vec![1],
        };
        let found = check(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].what.contains("lost"), "{found:?}");
    }

    #[test]
    fn an_increment_applied_twice_is_reported() {
        let h = CounterHistory {
            events: vec![
                increment(Outcome::Ok, at(0, 10)),
                increment(Outcome::Aborted, at(20, 30)),
            ],
            final_values: vec![2],
        };
        assert_eq!(check(&h).len(), 1, "{:?}", check(&h));
    }

    #[test]
    fn a_stale_read_and_a_read_going_back_are_reported() {
        let h = CounterHistory {
            events: vec![
                increment(Outcome::Ok, at(0, 10)),
                increment(Outcome::Ok, at(20, 30)),
                read(2, at(31, 32)),
                read(1, at(40, 41)),
            ],
            final_values: vec![2],
        };
        let found = check(&h);
        assert!(found.iter().any(|a| a.what.contains("stale")), "{found:?}");
        assert!(
            found.iter().any(|a| a.what.contains("go back")),
            "{found:?}"
        );
    }
}
