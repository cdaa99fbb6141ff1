//! Bank: transfers between accounts in the retrying runner (read both, refuse an overdraft,
//! write both), beside snapshot reads of every account. Transfers keep the total, so every
//! consistent read sees the initial total and no balance is ever negative; each account's final
//! balance is its initial one plus its acknowledged transfers plus some of its unknown ones.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tito::{TitoError, TitoModel};

use super::{
    Anomaly, Clock, FaultyDb, Outcome, PlainDb, Rng, RunReport, Span, abort_error, databases,
    fault_plan, jitter, retry_policy, scaled,
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "bank_accounts")]
pub struct Account {
    #[tito(id)]
    pub id: String,
    pub balance: i64,
}

const ACCOUNTS: usize = 5;
const INITIAL: i64 = 100;
const TRANSFER_TASKS: usize = 4;
const READER_TASKS: usize = 2;
/// Operations per client at `TITO_CHECK_SCALE=1`.
const TRANSFERS_PER_TASK: usize = 100;
const READS_PER_READER: usize = 60;

/// What a client did and saw.
#[derive(Debug, Clone, PartialEq)]
pub enum BankOp {
    /// Move `amount` from account `from` to `to`; `refused` when the guard saw too little.
    Transfer {
        from: usize,
        to: usize,
        amount: i64,
        refused: bool,
        outcome: Outcome,
    },
    /// Balances of every account read in one transaction.
    Read { balances: Vec<i64> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct BankEvent {
    pub task: usize,
    pub span: Span,
    pub op: BankOp,
}

#[derive(Debug, Clone, Default)]
pub struct BankHistory {
    pub initial: Vec<i64>,
    pub events: Vec<BankEvent>,
    pub final_balances: Vec<i64>,
}

fn account_id(n: usize) -> String {
    format!("acct-{n}")
}

pub async fn run(seed: u64) -> RunReport {
    let (faulty, db, plain) = databases(fault_plan(seed)).await;
    seed_accounts(&plain).await;
    faulty.set_active(true);
    let clock = Clock::start();
    let mut rng = Rng::new(seed);
    let mut tasks = Vec::new();
    for task in 0..TRANSFER_TASKS {
        let (db, rng) = (db.clone(), rng.fork());
        tasks.push(tokio::spawn(transfers(db, rng, clock, task)));
    }
    for reader in 0..READER_TASKS {
        let (db, rng) = (db.clone(), rng.fork());
        tasks.push(tokio::spawn(reads(db, rng, clock, TRANSFER_TASKS + reader)));
    }
    let mut events = Vec::new();
    for task in tasks {
        events.extend(task.await.unwrap());
    }
    faulty.set_active(false);
    let history = BankHistory {
        initial: vec![INITIAL; ACCOUNTS],
        final_balances: final_balances(&plain).await,
        events,
    };
    let transfers = history.events.iter().filter_map(|e| match &e.op {
        BankOp::Transfer {
            outcome, refused, ..
        } => Some((outcome, refused)),
        BankOp::Read { .. } => None,
    });
    let (mut report, mut refused) = (RunReport::default(), 0);
    for (outcome, was_refused) in transfers {
        report.operations += 1;
        match outcome {
            Outcome::Unknown => report.unknown += 1,
            Outcome::Ok => refused += usize::from(*was_refused),
            _ => report.failed += 1,
        }
    }
    let reads = history.events.len() - report.operations;
    report.operations += reads;
    report.notes = format!("{reads} snapshot reads, {refused} overdrafts refused");
    report.injected = faulty.injected();
    report.anomalies = check(&history);
    report
}

async fn seed_accounts(plain: &PlainDb) {
    let accounts = plain.clone().model::<Account>();
    plain
        .transaction(|tx| async move {
            for n in 0..ACCOUNTS {
                let account = Account {
                    id: account_id(n),
                    balance: INITIAL,
                };
                accounts.build(account, &tx).await?;
            }
            Ok::<_, TitoError>(())
        })
        .await
        .unwrap();
}

async fn final_balances(plain: &PlainDb) -> Vec<i64> {
    let accounts = plain.clone().model::<Account>();
    let mut balances = Vec::new();
    for n in 0..ACCOUNTS {
        balances.push(
            accounts
                .find_by_id(&account_id(n), vec![])
                .await
                .unwrap()
                .balance,
        );
    }
    balances
}

/// One client's transfers between random accounts, some aborted after writing.
async fn transfers(db: FaultyDb, mut rng: Rng, clock: Clock, task: usize) -> Vec<BankEvent> {
    let accounts = db.clone().model::<Account>();
    let mut events = Vec::new();
    for _ in 0..scaled(TRANSFERS_PER_TASK) {
        let from = rng.below(ACCOUNTS as u64) as usize;
        let to = (from + 1 + rng.below(ACCOUNTS as u64 - 1) as usize) % ACCOUNTS;
        // Amounts up to half an initial balance: some transfers meet an empty account.
        let amount = 1 + rng.below(INITIAL as u64 / 2) as i64;
        let abort = rng.percent(5);
        let attempt_rng = Arc::new(std::sync::Mutex::new(rng.fork()));
        let (result, span) = clock
            .time(db.transaction_with_retry(retry_policy(), |tx| {
                let (accounts, attempt_rng) = (accounts.clone(), attempt_rng.clone());
                async move {
                    let mut rng = attempt_rng.lock().unwrap().fork();
                    let mut a = accounts
                        .find_by_id_tx(&account_id(from), vec![], &tx)
                        .await?;
                    jitter(&mut rng).await;
                    let mut b = accounts.find_by_id_tx(&account_id(to), vec![], &tx).await?;
                    // The guard under test: a transfer never overdraws.
                    if a.balance < amount {
                        return Ok(true);
                    }
                    a.balance -= amount;
                    b.balance += amount;
                    accounts.update(a, &tx).await?;
                    jitter(&mut rng).await;
                    accounts.update(b, &tx).await?;
                    if abort {
                        return Err(abort_error());
                    }
                    Ok(false)
                }
            }))
            .await;
        events.push(BankEvent {
            task,
            span,
            op: BankOp::Transfer {
                from,
                to,
                amount,
                refused: matches!(result, Ok(true)),
                outcome: Outcome::of(&result),
            },
        });
    }
    events
}

/// One client's reads of every account in one transaction: a read-only snapshot, or (every
/// third read) a read-write transaction, whose reads are validated at commit.
async fn reads(db: FaultyDb, mut rng: Rng, clock: Clock, task: usize) -> Vec<BankEvent> {
    let accounts = db.clone().model::<Account>();
    let mut events = Vec::new();
    for n in 0..scaled(READS_PER_READER) {
        let read_all = |tx: tito::TitoTransaction<_>| {
            let accounts = accounts.clone();
            async move {
                let mut balances = Vec::new();
                for n in 0..ACCOUNTS {
                    let account = accounts.find_by_id_tx(&account_id(n), vec![], &tx).await?;
                    balances.push(account.balance);
                }
                Ok::<_, TitoError>(balances)
            }
        };
        let (result, span) = if n % 3 == 2 {
            clock
                .time(db.transaction_with_retry(retry_policy(), read_all))
                .await
        } else {
            clock
                .time(async {
                    let snapshot = db.snapshot().await?;
                    let result = read_all(snapshot.clone()).await;
                    snapshot.finish(result).await
                })
                .await
        };
        // A read that failed (an injected error) saw nothing to judge.
        if let Ok(balances) = result {
            events.push(BankEvent {
                task,
                span,
                op: BankOp::Read { balances },
            });
        }
        jitter(&mut rng).await;
    }
    events
}

/// Judges a bank history: totals of reads, negative balances, and each final balance against
/// the transfers that may have reached it.
pub fn check(history: &BankHistory) -> Vec<Anomaly> {
    let total: i64 = history.initial.iter().sum();
    let mut anomalies = Vec::new();
    for event in &history.events {
        let BankOp::Read { balances } = &event.op else {
            continue;
        };
        let seen: i64 = balances.iter().sum();
        if seen != total {
            anomalies.push(Anomaly::new(
                format!("a read saw total {seen}, not {total}: a transfer seen half-applied"),
                excerpt(history, |e| e.span.overlaps(&event.span)),
            ));
        }
        if let Some(account) = balances.iter().position(|&b| b < 0) {
            anomalies.push(Anomaly::new(
                format!("a read saw account {account} negative: the overdraft guard was bypassed"),
                excerpt(history, |e| {
                    touches(e, account) && !event.span.before(&e.span)
                }),
            ));
        }
    }
    let final_total: i64 = history.final_balances.iter().sum();
    if final_total != total {
        anomalies.push(Anomaly::new(
            format!("the final total is {final_total}, not {total}"),
            excerpt(history, |_| true),
        ));
    }
    for (account, &balance) in history.final_balances.iter().enumerate() {
        let (low, high) = final_bounds(history, account);
        if balance < 0 || balance < low || balance > high {
            anomalies.push(Anomaly::new(
                format!(
                    "account {account} ends at {balance}, outside [{low}, {high}] that its \
                     acknowledged and unknown transfers allow (a lost, duplicated or aborted \
                     transfer), or negative"
                ),
                excerpt(history, |e| touches(e, account)),
            ));
        }
    }
    anomalies
}

/// The lowest and highest final balance of `account`: its initial balance and acknowledged
/// transfers, plus any subset of its transfers whose outcome is unknown.
fn final_bounds(history: &BankHistory, account: usize) -> (i64, i64) {
    let start = history.initial[account];
    let (mut low, mut high) = (start, start);
    for event in &history.events {
        let BankOp::Transfer {
            from,
            to,
            amount,
            refused,
            outcome,
        } = &event.op
        else {
            continue;
        };
        let delta = if *from == account {
            -amount
        } else if *to == account {
            *amount
        } else {
            continue;
        };
        match outcome {
            Outcome::Ok if !refused => {
                low += delta;
                high += delta;
            }
            Outcome::Unknown => {
                low += delta.min(0);
                high += delta.max(0);
            }
            _ => {}
        }
    }
    (low, high)
}

fn touches(event: &BankEvent, account: usize) -> bool {
    match &event.op {
        BankOp::Transfer { from, to, .. } => *from == account || *to == account,
        BankOp::Read { .. } => true,
    }
}

fn excerpt(history: &BankHistory, keep: impl Fn(&BankEvent) -> bool) -> Vec<String> {
    let mut lines: Vec<String> = (history.events.iter())
        .filter(|e| keep(e))
        .map(|e| format!("{} task {}: {:?}", e.span, e.task, e.op))
        .collect();
    lines.sort();
    lines.push(format!("final balances: {:?}", history.final_balances));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(invoked: u64, completed: u64) -> Span {
        Span { invoked, completed }
    }

    fn transfer(from: usize, to: usize, amount: i64, outcome: Outcome, span: Span) -> BankEvent {
        BankEvent {
            task: 0,
            span,
            op: BankOp::Transfer {
                from,
                to,
                amount,
                refused: false,
                outcome,
            },
        }
    }

    fn read(balances: Vec<i64>, span: Span) -> BankEvent {
        BankEvent {
            task: 1,
            span,
            op: BankOp::Read { balances },
        }
    }

    fn history(events: Vec<BankEvent>, final_balances: Vec<i64>) -> BankHistory {
        BankHistory {
            initial: vec![10, 10],
            events,
            final_balances,
        }
    }

    #[test]
    fn a_consistent_history_passes() {
        let h = history(
            vec![
                transfer(0, 1, 4, Outcome::Ok, at(0, 10)),
                transfer(1, 0, 7, Outcome::Unknown, at(5, 20)),
                transfer(0, 1, 9, Outcome::Failed("conflict".into()), at(5, 20)),
                read(vec![6, 14], at(11, 12)),
            ],
            vec![13, 7],
        );
        assert!(check(&h).is_empty(), "{:?}", check(&h));
    }

    #[test]
    fn a_read_of_a_half_applied_transfer_is_reported() {
        let h = history(
            vec![
                transfer(0, 1, 4, Outcome::Ok, at(0, 10)),
                read(vec![6, 10], at(5, 6)),
            ],
            vec![6, 14],
        );
        let found = check(&h);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].what.contains("total 16"), "{found:?}");
    }

    #[test]
    fn a_negative_balance_is_reported() {
        let h = history(
            vec![
                transfer(0, 1, 15, Outcome::Ok, at(0, 10)),
                read(vec![-5, 25], at(11, 12)),
            ],
            vec![-5, 25],
        );
        let found = check(&h);
        assert!(
            found.iter().any(|a| a.what.contains("negative")),
            "{found:?}"
        );
    }

    #[test]
    fn a_lost_acknowledged_transfer_is_reported() {
        // The second transfer was acknowledged, but the final balances show only the first:
        // a lost update (two read-modify-writes of account 0 from the same snapshot).
        let h = history(
            vec![
                transfer(0, 1, 3, Outcome::Ok, at(0, 10)),
                transfer(0, 1, 2, Outcome::Ok, at(1, 11)),
            ],
            vec![7, 13],
        );
        let found = check(&h);
        assert!(
            found.iter().any(|a| a.what.contains("account 0 ends at 7")),
            "{found:?}"
        );
    }

    #[test]
    fn an_applied_aborted_transfer_is_reported() {
        let h = history(
            vec![transfer(0, 1, 3, Outcome::Aborted, at(0, 10))],
            vec![7, 13],
        );
        assert_eq!(check(&h).len(), 2, "{:?}", check(&h));
    }
}
