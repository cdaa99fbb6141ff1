//! The crash campaign (issue 11, part 2): a parent test re-runs this test binary as child
//! writers over a database folder and kills them with SIGKILL at seeded random moments (a
//! delay after start, or after a number of acknowledged operations), while the children end
//! themselves with `abort()` at exact moments (in a handler after its effect was written, after
//! a reindex batch, after a replay) and meet commits whose outcome is unknown at chosen calls.
//! After every kill the parent copies the folder and checks the copy: every acknowledged write
//! present and nothing impossible, `verify()` clean for every table, no queue event lost after
//! a final drain, plain handlings first in key order, transactional effects exactly once.
//!
//! Scenarios, each a child mode on its own folder (see `crash_support`): `writes` (model
//! writes with unique and moving index entries, `build_many`, `upsert`, `update_with`),
//! `reindex` (online reindex and repair beside writers of two model versions), `queue`
//! (publish, transactional and plain handling, lease takeover, retention) and `replay`
//! (handlers failing into dead letters, replayed).
//!
//! `TITO_CRASH_SEED` (default 0x7170) seeds the campaign, `TITO_CRASH_KILLS` (default 6) is
//! the number of child runs per scenario, `TITO_CRASH_MINUTES` (default none) stops each
//! scenario after that long, `TITO_CRASH_TRACE` prints a line per run (time to `ready`, lines,
//! folder size). The seed fixes every choice, not the timing: a kill after a delay lands where
//! the machine's speed puts it. Each scenario prints its figures every 25 runs and at the end,
//! and starts a fresh folder every 50 runs or past 32 MiB. The long campaign:
//! `TITO_CRASH_KILLS=1000 TITO_CRASH_MINUTES=50 cargo test --release --all-features --test
//! crash_campaign campaign -- --nocapture --test-threads=4` (figures in
//! `docs/reliability.md`).

mod crash_support;

use std::path::Path;
use std::time::{Duration, Instant};

use crash_support::models::{GadgetV2, Item};
use crash_support::queue::QueueLog;
use crash_support::writes::{Records, check_gadgets, check_items};
use crash_support::*;
use tito::Embedded;

const DEFAULT_SEED: u64 = 0x7170;
const DEFAULT_KILLS: u64 = 6;

/// The child: runs the scenario its environment names, until killed. Ignored unless run by
/// the campaign, which sets `TITO_CRASH_CHILD_DIR`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the crash campaign as a child process"]
async fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let seed = env_u64(CHILD_SEED, 0);
    let dir = Path::new(&dir);
    match std::env::var(CHILD_SCENARIO).unwrap().as_str() {
        "writes" => writes::child_writes(dir, seed).await,
        "reindex" => writes::child_reindex(dir, seed).await,
        "queue" => queue::child_queue(dir, seed, false).await,
        "replay" => queue::child_queue(dir, seed, true).await,
        other => panic!("unknown scenario {other}"),
    }
}

/// What the parent knows of one scenario's database.
enum Known {
    Items(Records<Item>),
    Gadgets {
        records: Records<GadgetV2>,
        /// The child finished the reindex in this folder: the new indexes must be readable.
        reindex_done: bool,
    },
    Queue(QueueLog),
    Replay(QueueLog),
}

impl Known {
    fn new(scenario: &str) -> Known {
        match scenario {
            "writes" => Known::Items(Records::default()),
            "reindex" => Known::Gadgets {
                records: Records::default(),
                reindex_done: false,
            },
            "queue" => Known::Queue(QueueLog::default()),
            "replay" => Known::Replay(QueueLog::default()),
            other => panic!("unknown scenario {other}"),
        }
    }

    fn observe(&mut self, words: &[&str], figures: &mut Figures) -> Result<(), String> {
        match words[0] {
            "ack" | "pub" | "replayed" => figures.acknowledged += 1,
            "unknown" => figures.unknown_outcomes += 1,
            "reindexed" => figures.reindex_batches += 1,
            _ => {}
        }
        match self {
            Known::Items(records) => records.observe(words),
            Known::Gadgets {
                records,
                reindex_done,
            } => {
                *reindex_done |= words[0] == "reindex-done";
                records.observe(words)
            }
            Known::Queue(log) | Known::Replay(log) => log.observe(words),
        }
    }

    /// Checks the copy of the folder; returns the dead letters a queue drain met.
    async fn check(&mut self, db: &tito::TitoEngine<Embedded>) -> Result<u64, String> {
        match self {
            Known::Items(records) => check_items(db, records).await.map(|()| 0),
            Known::Gadgets {
                records,
                reindex_done,
            } => check_gadgets(db, records, *reindex_done).await.map(|()| 0),
            Known::Queue(log) => log.check(db, false).await,
            Known::Replay(log) => log.check(db, true).await,
        }
    }

    /// A reindex epoch is over once the reindex finished: the next run starts a fresh folder,
    /// so most kills land while there is reindexing to do.
    fn wants_fresh_folder(&self) -> bool {
        matches!(
            self,
            Known::Gadgets {
                reindex_done: true,
                ..
            }
        )
    }
}

/// The campaign's figures for one scenario.
#[derive(Debug, Default)]
struct Figures {
    runs: u64,
    killed: u64,
    aborted: u64,
    finished: u64,
    acknowledged: u64,
    unknown_outcomes: u64,
    reindex_batches: u64,
    checks: u64,
    drain_dead_letters: u64,
    /// Runs of `reindex` that ended after a reindex batch and before the reindex finished.
    ended_mid_reindex: u64,
    /// Reindex or repair runs ended by an unknown commit outcome or conflicts, run again.
    maintenance_reruns: u64,
    /// Faults injected into queue workers' commits (acknowledgements, leases, replays):
    /// applied but reported unknown, not applied and reported unknown, conflicts.
    ack_faults: [u64; 3],
    /// Folders the scenario used: a fresh one, with nothing carried over, after a finished
    /// reindex, every [`FRESH_EVERY`] runs, or once a folder passes [`FOLDER_LIMIT`].
    folders: u64,
    /// Runs in which nothing was acknowledged after `ready` (no write, publish, handling,
    /// replay or reindex batch): they tested only the open.
    idle: u64,
}

impl Figures {
    /// Figures that need a whole run's lines.
    fn count_run(&mut self, lines: &[String]) {
        let words: Vec<Vec<&str>> = lines.iter().filter_map(|l| parse(l)).collect();
        let said = |what: &str| words.iter().any(|w| w[0] == what);
        let progress = ["ack", "pub", "plain", "replayed", "reindexed", "resolved"];
        if !words.iter().any(|w| progress.contains(&w[0])) {
            self.idle += 1;
        }
        if said("reindexed") && !said("reindex-done") {
            self.ended_mid_reindex += 1;
        }
        self.maintenance_reruns += (words.iter())
            .filter(|w| w[0] == "reindex-rerun" || w[0] == "repair-rerun")
            .count() as u64;
        // The counts are cumulative within a run: its last report.
        if let Some(counts) = words.iter().rev().find(|w| w[0] == "faults") {
            for (sum, n) in self.ack_faults.iter_mut().zip(counts[1].split('/')) {
                *sum += n.parse::<u64>().unwrap_or(0);
            }
        }
    }

    /// The figures as a row of the table in `docs/reliability.md`.
    fn row(&self, scenario: &str, elapsed: Duration) -> String {
        let mut other = vec![format!("{} folders, {} idle runs", self.folders, self.idle)];
        if self.reindex_batches > 0 {
            other.push(format!(
                "{} reindex batches, {} runs ended mid-reindex, {} reindex or repair reruns",
                self.reindex_batches, self.ended_mid_reindex, self.maintenance_reruns
            ));
        }
        if self.drain_dead_letters > 0 {
            other.push(format!(
                "{} dead letters replayed by the drains",
                self.drain_dead_letters
            ));
        }
        if self.ack_faults.iter().any(|n| *n > 0) {
            let [a, b, c] = self.ack_faults;
            other.push(format!("worker commits faulted {a}/{b}/{c}"));
        }
        let unknown = match scenario {
            "writes" | "reindex" => self.unknown_outcomes.to_string(),
            _ => String::new(),
        };
        format!(
            "| `{scenario}` | {} | {} | {} | {} | {} | {unknown} | {} | none | {:.0} s |",
            self.runs,
            self.killed,
            self.aborted,
            self.finished,
            self.acknowledged,
            other.join("; "),
            elapsed.as_secs_f64()
        )
    }
}

/// Runs after which a scenario starts a fresh folder, so its size (and the time a child takes
/// to open it) stays bounded: the embedded store keeps what killed processes left behind.
const FRESH_EVERY: u64 = 50;
/// Disk use past which a scenario starts a fresh folder after the run.
const FOLDER_LIMIT: u64 = 32 << 20;
/// Runs between two printed rows of figures.
const REPORT_EVERY: u64 = 25;

/// The longest a child runs before the parent kills it.
fn longest_run(scenario: &str) -> Duration {
    match scenario {
        "writes" => Duration::from_millis(1500),
        "reindex" => Duration::from_millis(4000),
        _ => Duration::from_millis(3000),
    }
}

/// Runs `TITO_CRASH_KILLS` children of `scenario`, checking a copy of the folder after each.
async fn campaign(scenario: &str, salt: u64) {
    let seed = env_u64("TITO_CRASH_SEED", DEFAULT_SEED);
    let runs = env_u64("TITO_CRASH_KILLS", DEFAULT_KILLS);
    let mut rng = Rng(mix(seed ^ salt));
    let mut known = Known::new(scenario);
    let mut figures = Figures::default();
    let mut dir = scratch(scenario);
    figures.folders = 1;
    let trace = std::env::var_os("TITO_CRASH_TRACE").is_some();
    let minutes = env_u64("TITO_CRASH_MINUTES", 0);
    let started = Instant::now();
    for run in 0..runs {
        if minutes > 0 && started.elapsed() > Duration::from_secs(60 * minutes) {
            eprintln!("crash campaign `{scenario}`: stopped after {minutes} min, {run} runs");
            break;
        }
        let child_seed = rng.next();
        let kill = KillAt::random(&mut rng, longest_run(scenario));
        let outcome = run_child(scenario, &dir, child_seed, kill);
        let fail = |evidence: String| -> ! {
            panic!(
                "crash campaign failed: seed {seed:#x}, scenario `{scenario}`, run {run} (child \
                 seed {child_seed:#x}, {kill:?}, ended {}); folder {} kept.\nEvidence: \
                 {evidence}\nLast lines: {:#?}\nReproduce: TITO_CRASH_SEED={seed:#x} \
                 TITO_CRASH_KILLS={} cargo test --all-features --test crash_campaign {scenario}",
                outcome.status,
                dir.display(),
                &outcome.lines[outcome.lines.len().saturating_sub(12)..],
                run + 1
            )
        };
        figures.runs += 1;
        figures.killed += u64::from(outcome.killed);
        figures.aborted += u64::from(outcome.aborted());
        figures.finished += u64::from(outcome.status.success());
        if let Some(failure) = outcome.failure() {
            fail(failure);
        }
        for line in &outcome.lines {
            let words = parse(line).expect("only protocol lines are kept");
            if let Err(e) = known.observe(&words, &mut figures) {
                fail(format!(
                    "the child's lines contradict each other: {e} (at `{line}`)"
                ));
            }
        }
        figures.count_run(&outcome.lines);
        if trace {
            let said = |what: &str| {
                (outcome.lines.iter())
                    .filter(|l| parse(l).is_some_and(|w| w[0] == what))
                    .count()
            };
            eprintln!(
                "trace `{scenario}` run {run}: {kill:?}, ended {}, ready after {:?} ms, ran \
                 {:.2} s, {} lines, {} ack, {} fail, {} reindexed, done {}, folder {} KiB",
                outcome.status,
                outcome.ready_after.map(|d| d.as_millis()),
                outcome.ran.as_secs_f64(),
                outcome.lines.len(),
                said("ack") + said("pub"),
                said("fail"),
                said("reindexed"),
                said("reindex-done"),
                dir_size(&dir) / 1024,
            );
        }
        let checking = Instant::now();
        let copy = dir.with_extension("check");
        copy_dir(&dir, &copy);
        let db = Embedded::open(&copy).await.unwrap();
        match known.check(&db).await {
            Ok(dead) => figures.drain_dead_letters += dead,
            Err(evidence) => fail(format!("{evidence} (checked copy {})", copy.display())),
        }
        drop(db);
        let _ = std::fs::remove_dir_all(&copy);
        figures.checks += 1;
        if trace {
            eprintln!(
                "trace `{scenario}` run {run}: checked in {:.2} s",
                checking.elapsed().as_secs_f64()
            );
        }
        let full = (run + 1) % FRESH_EVERY == 0 || dir_size(&dir) > FOLDER_LIMIT;
        if (known.wants_fresh_folder() || full) && run + 1 < runs {
            let _ = std::fs::remove_dir_all(&dir);
            dir = scratch(scenario);
            known = Known::new(scenario);
            figures.folders += 1;
        }
        if (run + 1) % REPORT_EVERY == 0 {
            eprintln!(
                "crash campaign (seed {seed:#x}) so far: {}",
                figures.row(scenario, started.elapsed())
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "crash campaign (seed {seed:#x}) done: {}\n{figures:?}",
        figures.row(scenario, started.elapsed())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_campaign_writes() {
    campaign("writes", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_campaign_reindex() {
    campaign("reindex", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_campaign_queue() {
    campaign("queue", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_campaign_replay() {
    campaign("replay", 4).await;
}

/// The checks fed hand-made bad states: each must object.
mod checks_object {
    use std::collections::BTreeMap;

    use super::crash_support::checks::*;
    use super::crash_support::writes::Records;

    fn state(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn intent(after: &[(&str, Option<u32>)]) -> Intent<u32> {
        Intent {
            op: "test".into(),
            after: after.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn a_lost_acknowledged_write_is_reported() {
        let err = check_records(&state(&[("a", 1), ("b", 2)]), None, &state(&[("a", 1)]));
        assert!(err.unwrap_err().contains("record `b`"));
    }

    #[test]
    fn an_unacknowledged_write_outside_the_one_in_flight_is_reported() {
        let err = check_records(&state(&[("a", 1)]), None, &state(&[("a", 1), ("z", 9)]));
        assert!(err.unwrap_err().contains("record `z`"));
        let stale = check_records(&state(&[("a", 1)]), None, &state(&[("a", 7)]));
        assert!(stale.is_err());
    }

    #[test]
    fn the_write_in_flight_is_whole_or_absent_never_half() {
        let before = state(&[("a", 1)]);
        let batch = intent(&[("a", Some(2)), ("b", Some(3))]);
        assert!(check_records(&before, Some(&batch), &state(&[("a", 1)])).is_ok());
        assert!(check_records(&before, Some(&batch), &state(&[("a", 2), ("b", 3)])).is_ok());
        let half = check_records(&before, Some(&batch), &state(&[("a", 2)]));
        assert!(
            half.unwrap_err()
                .contains("neither applied nor not applied")
        );
    }

    #[test]
    fn a_resolved_outcome_that_is_neither_is_reported() {
        let mut records: Records<u32> = Records::default();
        records
            .observe(&["intent", "0", r#"{"op":"x","after":[["a",1]]}"#])
            .unwrap();
        records.observe(&["ack", "0"]).unwrap();
        records
            .observe(&["intent", "1", r#"{"op":"y","after":[["a",2]]}"#])
            .unwrap();
        records.observe(&["unknown", "1"]).unwrap();
        assert!(records.observe(&["resolved", "1", r#"[["a",5]]"#]).is_err());
        // And a second intent while one is in flight contradicts the one-at-a-time writer.
        let mut records: Records<u32> = Records::default();
        records
            .observe(&["intent", "0", r#"{"op":"x","after":[["a",1]]}"#])
            .unwrap();
        assert!(
            records
                .observe(&["intent", "1", r#"{"op":"x","after":[["a",1]]}"#])
                .is_err()
        );
    }

    #[test]
    fn an_effect_applied_twice_or_lost_or_out_of_order_is_reported() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(check_ledger_in_order("o", &s(&["0", "1", "2"]), 3).is_ok());
        assert!(check_ledger_in_order("o", &s(&["0", "1", "1", "2"]), 3).is_err());
        assert!(check_ledger_in_order("o", &s(&["0", "2"]), 3).is_err());
        assert!(check_ledger_in_order("o", &s(&["1", "0", "2"]), 3).is_err());
        let never = |_| false;
        assert!(check_ledger_once("o", &s(&["0", "2", "1r"]), 3, |seq| seq == 1).is_ok());
        let twice = check_ledger_once("o", &s(&["0", "1", "1r", "2"]), 3, never);
        assert!(twice.unwrap_err().contains("twice"));
        let unreplayed = check_ledger_once("o", &s(&["0", "1", "2"]), 3, |seq| seq == 1);
        assert!(unreplayed.unwrap_err().contains("without its replay"));
        assert!(
            check_ledger_once("o", &s(&["0", "2"]), 3, never)
                .unwrap_err()
                .contains("lost")
        );
        assert!(check_ledger_once("o", &s(&["1", "0"]), 2, never).is_err());
    }

    #[test]
    fn plain_handlings_first_out_of_key_order_or_missing_are_reported() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // Redelivery after a crash repeats events; first handlings stay in order.
        assert!(check_first_handlings("o", &s(&["0", "1", "1", "2", "2"]), 3).is_ok());
        assert!(check_first_handlings("o", &s(&["0", "2", "1"]), 3).is_err());
        assert!(check_first_handlings("o", &s(&["0", "1"]), 3).is_err());
        // A replayed event comes after newer ones of its key, and says so.
        assert!(check_first_handlings("o", &s(&["0", "2", "1r"]), 3).is_ok());
    }

    #[test]
    fn seeding_after_a_delete_picks_absent_ids() {
        use super::crash_support::writes::next_seed_ids;
        // 300 seeded, one deleted by the writer, one added: the next child seeds the gap.
        let mut view: BTreeMap<String, ()> = (0..300).map(|k| (format!("g{k:04}"), ())).collect();
        view.remove("g0005");
        view.insert("n1-0".into(), ());
        view.remove("g0007");
        assert_eq!(next_seed_ids(&view), ["g0005", "g0007"]);
        view.clear();
        assert_eq!(next_seed_ids(&view).len(), 30);
    }

    #[test]
    fn a_lost_or_invented_publish_is_reported() {
        assert!(check_published("o", 5, 5, false).is_ok());
        assert!(check_published("o", 5, 6, true).is_ok());
        assert!(check_published("o", 5, 4, true).is_err());
        assert!(check_published("o", 5, 6, false).is_err());
    }
}
