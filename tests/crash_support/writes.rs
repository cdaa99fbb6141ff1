//! Scenarios `writes` (model writes with unique and moving index entries) and `reindex`
//! (online reindex and repair beside writers of two model versions): the children, and the
//! parent's record of what they acknowledged with its checks.
//!
//! A child writes sequentially from one task, so at most one operation is in flight when it
//! dies. Before each it prints `intent <n> <records it leaves>`, after it `ack <n>`, `fail <n>`
//! (a definite error: nothing applied) or `unknown <n>` then `resolved <n> <records found>`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tito::backend::{CallKind, Embedded, Fault, FaultPlan, Faulty};
use tito::types::TitoModelTrait;
use tito::{Backend, RetryPolicy, TitoEngine, TitoError, TitoModel, keyspace};

use super::checks::{Intent, applied_whole_or_not, check_records};
use super::models::{GadgetV1, GadgetV2, Item};
use super::{Rng, anomaly, emit};

// ---------------------------------------------------------------------------------------------
// The child side, shared
// ---------------------------------------------------------------------------------------------

/// The child's database: the folder's embedded store behind a [`Faulty`] wrapper, whose plan
/// reports a few chosen commits as of unknown outcome (applied or not): a lost reply at an
/// exact moment. Injection starts off, so opening and loading see none.
pub async fn open_faulty(
    dir: &Path,
    plan: FaultPlan,
) -> (Faulty<Embedded>, TitoEngine<Faulty<Embedded>>) {
    let inner = Embedded::builder(dir).open_backend().unwrap();
    let faulty = Faulty::new(inner, plan);
    faulty.set_active(false);
    let db = TitoEngine::new(faulty.clone()).await.unwrap();
    (faulty, db)
}

/// Commits `3..60` chosen by `rng`, two reported unknown though applied, two though not.
fn unknown_commits(rng: &mut Rng) -> FaultPlan {
    let mut calls = || [rng.within(3..60), rng.within(3..60)];
    let (applied, not_applied) = (calls(), calls());
    FaultPlan::new(rng.next())
        .at_calls(CallKind::Commit, &applied, Fault::UnknownApplied)
        .at_calls(CallKind::Commit, &not_applied, Fault::UnknownNotApplied)
}

/// Every record of `model`'s table, by id.
pub async fn load_all<R, B>(model: &TitoModel<R, B>) -> BTreeMap<String, R>
where
    R: TitoModelTrait + DeserializeOwned,
    B: Backend,
{
    let tx = model.engine().snapshot().await.unwrap();
    let rows = tx
        .scan(keyspace::record_range(model.table()), usize::MAX)
        .await
        .unwrap();
    drop(tx);
    let mut out = BTreeMap::new();
    for (key, _) in rows {
        let (_, id) = keyspace::parse_record_key(&key).expect("a record key");
        match model.get(&id).await {
            Ok(Some(record)) => {
                out.insert(id, record);
            }
            Ok(None) => panic!("record `{id}` listed but not found"),
            Err(e) => panic!("record `{id}` listed but unreadable: {e}"),
        }
    }
    out
}

/// What the database holds for the records `intent` writes.
async fn read_back<R, B>(model: &TitoModel<R, B>, intent: &Intent<R>) -> Vec<(String, Option<R>)>
where
    R: TitoModelTrait + DeserializeOwned,
    B: Backend,
{
    let mut out = Vec::new();
    for (id, _) in &intent.after {
        match model.get(id).await {
            Ok(record) => out.push((id.clone(), record)),
            Err(e) => anomaly(&format!("reading back {id}: {e}")),
        }
    }
    out
}

/// Errors that say the operation was not applied, which a random workload meets.
fn definitely_not_applied(error: &TitoError) -> bool {
    matches!(
        error,
        TitoError::KeyExists(_)
            | TitoError::UniqueViolation { .. }
            | TitoError::Conflict(_)
            | TitoError::Unavailable(_)
    )
}

/// Prints the intent, runs it, prints its outcome and brings `view` in line with it. An
/// unknown outcome is resolved by reading the records back; an error no operation here can
/// meet ends the child as an anomaly.
async fn perform<R, B, Fut>(
    n: u64,
    intent: Intent<R>,
    view: &mut BTreeMap<String, R>,
    read: &TitoModel<R, B>,
    run: Fut,
) where
    R: TitoModelTrait + Serialize + DeserializeOwned + Clone + PartialEq + Debug,
    B: Backend,
    Fut: Future<Output = Result<(), TitoError>>,
{
    emit(&format!(
        "intent {n} {}",
        serde_json::to_string(&intent).unwrap()
    ));
    let settled = match run.await {
        Ok(()) => {
            emit(&format!("ack {n}"));
            intent.after.clone()
        }
        Err(e) if definitely_not_applied(&e) => {
            emit(&format!("fail {n} {e}"));
            return;
        }
        Err(TitoError::CommitOutcomeUnknown(_)) => {
            emit(&format!("unknown {n}"));
            let found = read_back(read, &intent).await;
            if let Err(e) = applied_whole_or_not(&intent, view, &found) {
                anomaly(&e);
            }
            emit(&format!(
                "resolved {n} {}",
                serde_json::to_string(&found).unwrap()
            ));
            found
        }
        Err(e) => anomaly(&format!("`{}` failed: {e:?}", intent.op)),
    };
    for (id, record) in settled {
        match record {
            Some(record) => view.insert(id, record),
            None => view.remove(&id),
        };
    }
}

/// Retries on conflicts, quickly: a write that keeps conflicting fails (nothing applied).
fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 8,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
    }
}

// ---------------------------------------------------------------------------------------------
// Scenario `writes`
// ---------------------------------------------------------------------------------------------

const ITEM_IDS: u64 = 24;
const SKUS: u64 = 36;
const COLORS: [&str; 3] = ["red", "green", "blue"];

fn random_item(rng: &mut Rng, id: &str) -> Item {
    Item {
        id: id.to_string(),
        // A pool a little larger than the ids: unique violations happen, and are refused.
        sku: format!("sku-{}", rng.below(SKUS)),
        color: rng.pick(&COLORS).to_string(),
        tags: ["a", "b", "c"]
            .into_iter()
            .filter(|_| rng.one_in(2))
            .map(String::from)
            .collect(),
        rank: rng.below(1000) as i64,
    }
}

fn one(id: &str, record: Option<Item>) -> Vec<(String, Option<Item>)> {
    vec![(id.to_string(), record)]
}

/// The child of scenario `writes`: random inserts, `build_many` batches, updates moving every
/// index entry, upserts, `update_with`, deletes, until killed (or 5,000 operations).
pub async fn child_writes(dir: &Path, seed: u64) {
    let mut rng = Rng(seed);
    let (faulty, db) = open_faulty(dir, unknown_commits(&mut rng)).await;
    let items = db.clone().model::<Item>();
    let mut view = load_all(&items).await;
    faulty.set_active(true);
    emit("ready");
    for n in 0..5000 {
        let id = format!("i{:02}", rng.below(ITEM_IDS));
        let exists = view.contains_key(&id);
        let (items, mut rng2) = (items.clone(), Rng(rng.next()));
        let choice = rng.below(12);
        match (exists, choice) {
            (false, 0..=3) => {
                // `id` and up to four more absent ids, in one transaction.
                let mut ids = std::collections::BTreeSet::from([id.clone()]);
                for _ in 0..rng.within(1..5) {
                    let other = format!("i{:02}", rng.below(ITEM_IDS));
                    if !view.contains_key(&other) {
                        ids.insert(other);
                    }
                }
                let batch: Vec<Item> = ids.iter().map(|id| random_item(&mut rng2, id)).collect();
                let after = batch
                    .iter()
                    .map(|i| (i.id.clone(), Some(i.clone())))
                    .collect();
                let intent = Intent {
                    op: format!("build_many {}", batch.len()),
                    after,
                };
                let run = db.transaction_with_retry(policy(), |tx| {
                    let (items, batch) = (items.clone(), batch.clone());
                    async move { items.build_many(batch, &tx).await.map(drop) }
                });
                perform(n, intent, &mut view, &items, run).await;
            }
            (false, _) => {
                let item = random_item(&mut rng2, &id);
                let intent = Intent {
                    op: format!("build {id}"),
                    after: one(&id, Some(item.clone())),
                };
                let run = db.transaction_with_retry(policy(), |tx| {
                    let (items, item) = (items.clone(), item.clone());
                    async move { items.build(item, &tx).await.map(drop) }
                });
                perform(n, intent, &mut view, &items, run).await;
            }
            (true, 0..=3) => {
                let item = random_item(&mut rng2, &id);
                let intent = Intent {
                    op: format!("update {id}"),
                    after: one(&id, Some(item.clone())),
                };
                let run = db.transaction_with_retry(policy(), |tx| {
                    let (items, item) = (items.clone(), item.clone());
                    async move { items.update(item, &tx).await.map(drop) }
                });
                perform(n, intent, &mut view, &items, run).await;
            }
            (true, 4..=5) => {
                let item = random_item(&mut rng2, &id);
                let intent = Intent {
                    op: format!("upsert {id}"),
                    after: one(&id, Some(item.clone())),
                };
                let run = db.transaction_with_retry(policy(), |tx| {
                    let (items, item) = (items.clone(), item.clone());
                    async move { items.upsert(item, &tx).await.map(drop) }
                });
                perform(n, intent, &mut view, &items, run).await;
            }
            (true, 6..=8) => {
                // A change of the record as read in the transaction: colour and tags move.
                let fresh = random_item(&mut rng2, &id);
                let mut changed = view[&id].clone();
                (changed.color, changed.tags) = (fresh.color.clone(), fresh.tags.clone());
                let intent = Intent {
                    op: format!("update_with {id}"),
                    after: one(&id, Some(changed)),
                };
                let run = async {
                    let change = |item: &mut Item| {
                        (item.color, item.tags) = (fresh.color.clone(), fresh.tags.clone());
                    };
                    items.update_with(&id, change).await.map(drop)
                };
                perform(n, intent, &mut view, &items, run).await;
            }
            (true, _) => {
                let intent = Intent {
                    op: format!("delete {id}"),
                    after: one(&id, None),
                };
                let run = db.transaction_with_retry(policy(), |tx| {
                    let (items, id) = (items.clone(), id.clone());
                    async move { items.delete_by_id(&id, &tx).await }
                });
                perform(n, intent, &mut view, &items, run).await;
            }
        }
    }
    emit("done");
}

// ---------------------------------------------------------------------------------------------
// Scenario `reindex`
// ---------------------------------------------------------------------------------------------

/// Records a reindex epoch starts with, written by the version without the new indexes.
const SEEDED: usize = 300;
/// Records per `build_many` while seeding.
const SEED_BATCH: usize = 30;
/// Records per reindex (and repair) transaction: small, so kills land between batches.
pub const REINDEX_BATCH: usize = 10;

fn gadget(rng: &mut Rng, id: &str, tag: u64) -> GadgetV2 {
    GadgetV2 {
        id: id.to_string(),
        color: rng.pick(&COLORS).to_string(),
        // Unique by construction (`tag` is unique per write): the new unique index can be built.
        serial: format!("s-{id}-{tag:x}"),
        shelf: rng.below(8) as i64,
    }
}

/// The child of scenario `reindex`. A fresh folder is first seeded through `GadgetV1` (no
/// unique or shelf index); then the new version's `reindex` runs (from the start again after a
/// kill) beside a writer that inserts, updates (moving every entry) and deletes through either
/// version, then `repair`, while the writer goes on. `abort_after` crashes the process right
/// after that reindex batch committed.
pub async fn child_reindex(dir: &Path, seed: u64) {
    let mut rng = Rng(seed);
    let (faulty, db) = open_faulty(dir, unknown_commits(&mut rng)).await;
    let (v1, v2) = (
        db.clone().model::<GadgetV1>(),
        db.clone().model::<GadgetV2>(),
    );
    let mut view = load_all(&v2).await;
    faulty.set_active(true);
    emit("ready");
    let mut n = 0;
    while view.len() < SEEDED {
        if n > 2 * (SEEDED / SEED_BATCH) as u64 {
            anomaly(&format!("seeding does not advance: {} records", view.len()));
        }
        let batch: Vec<GadgetV2> = (next_seed_ids(&view).into_iter())
            .map(|id| gadget(&mut rng, &id, seed))
            .collect();
        let after = batch
            .iter()
            .map(|g| (g.id.clone(), Some(g.clone())))
            .collect();
        let intent = Intent {
            op: format!("seed {}", batch.len()),
            after,
        };
        let run = db.transaction_with_retry(policy(), |tx| {
            let batch: Vec<GadgetV1> = batch.iter().cloned().map(GadgetV1::from).collect();
            let v1 = v1.clone();
            async move { v1.build_many(batch, &tx).await.map(drop) }
        });
        perform(n, intent, &mut view, &v2, run).await;
        n += 1;
    }
    let abort_after = rng
        .one_in(3)
        .then(|| rng.within(1..(SEEDED / REINDEX_BATCH) as u64));
    let maintenance = async {
        let mut batches = 0;
        loop {
            let done = v2
                .reindex(REINDEX_BATCH, |p| {
                    batches += 1;
                    emit(&format!("reindexed {} {}", p.records, p.added));
                    if abort_after == Some(batches) {
                        emit("abort-after-batch");
                        std::process::abort();
                    }
                })
                .await;
            match done {
                Ok(p) => break emit(&format!("reindex-done {} {}", p.records, p.added)),
                // A batch whose commit outcome is unknown (or that kept conflicting with the
                // writer): run it again, as an operator would.
                Err(e) if rerun(&e) => emit(&format!("reindex-rerun {e}")),
                Err(e) => anomaly(&format!("reindex failed: {e:?}")),
            }
        }
        loop {
            match v2.repair(REINDEX_BATCH).await {
                Ok((orphans, p)) => break emit(&format!("repaired {orphans} {}", p.added)),
                Err(e) if rerun(&e) => emit(&format!("repair-rerun {e}")),
                Err(e) => anomaly(&format!("repair failed: {e:?}")),
            }
        }
    };
    let writer = write_gadgets(&db, &mut rng, &mut view, n, seed);
    // The writer runs on until killed; maintenance ends, after which the writer goes on alone.
    let (_, ()) = tokio::join!(maintenance, writer);
    emit("done");
}

/// The ids of the next seed batch: seed ids not stored. Seeding goes on after a kill, and ids
/// counted from the number of records collided with stored ones once the writer had deleted a
/// record, so every later child failed its first seed batch forever (the 450-run stall).
pub fn next_seed_ids<R>(view: &BTreeMap<String, R>) -> Vec<String> {
    (0..SEEDED)
        .map(|k| format!("g{k:04}"))
        .filter(|id| !view.contains_key(id))
        .take(SEED_BATCH)
        .collect()
}

/// Errors after which a reindex or repair is simply run again.
fn rerun(error: &TitoError) -> bool {
    matches!(error, TitoError::CommitOutcomeUnknown(_)) || definitely_not_applied(error)
}

/// Writes gadgets one at a time through a random version of the model, 2 ms apart (so the
/// reindex advances), for 600 operations.
async fn write_gadgets(
    db: &TitoEngine<Faulty<Embedded>>,
    rng: &mut Rng,
    view: &mut BTreeMap<String, GadgetV2>,
    first: u64,
    seed: u64,
) {
    let (v1, v2) = (
        db.clone().model::<GadgetV1>(),
        db.clone().model::<GadgetV2>(),
    );
    for n in first..first + 600 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let old = rng.one_in(2);
        let ids: Vec<&String> = view.keys().collect();
        let choice = rng.below(10);
        let tag = seed ^ n;
        if choice < 2 || ids.is_empty() {
            let id = format!("n{:x}-{n}", seed & 0xffff);
            let record = gadget(rng, &id, tag);
            let intent = Intent {
                op: format!("build {id} v{}", if old { 1 } else { 2 }),
                after: vec![(id, Some(record.clone()))],
            };
            let run = db.transaction_with_retry(policy(), |tx| {
                let (v1, v2, record) = (v1.clone(), v2.clone(), record.clone());
                async move {
                    match old {
                        true => v1.build(record.into(), &tx).await.map(drop),
                        false => v2.build(record, &tx).await.map(drop),
                    }
                }
            });
            perform(n, intent, view, &v2, run).await;
        } else if choice < 9 {
            let id = rng.pick(&ids).to_string();
            let record = gadget(rng, &id, tag);
            let intent = Intent {
                op: format!("update {id} v{}", if old { 1 } else { 2 }),
                after: vec![(id, Some(record.clone()))],
            };
            let run = db.transaction_with_retry(policy(), |tx| {
                let (v1, v2, record) = (v1.clone(), v2.clone(), record.clone());
                async move {
                    match old {
                        true => v1.update(record.into(), &tx).await.map(drop),
                        false => v2.update(record, &tx).await.map(drop),
                    }
                }
            });
            perform(n, intent, view, &v2, run).await;
        } else {
            let id = rng.pick(&ids).to_string();
            let intent = Intent {
                op: format!("delete {id} v{}", if old { 1 } else { 2 }),
                after: vec![(id.clone(), None)],
            };
            let run = db.transaction_with_retry(policy(), |tx| {
                let (v1, v2, id) = (v1.clone(), v2.clone(), id.clone());
                async move {
                    match old {
                        true => v1.delete_by_id(&id, &tx).await,
                        false => v2.delete_by_id(&id, &tx).await,
                    }
                }
            });
            perform(n, intent, view, &v2, run).await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent side
// ---------------------------------------------------------------------------------------------

/// What the parent knows of one table: the records as acknowledged, and the operation in
/// flight (printed, not yet settled).
#[derive(Debug)]
pub struct Records<R> {
    pub state: BTreeMap<String, R>,
    pub open: Option<(u64, Intent<R>)>,
    pub acknowledged: u64,
    pub failed: u64,
    pub unknown: u64,
}

impl<R> Default for Records<R> {
    fn default() -> Self {
        Records {
            state: BTreeMap::new(),
            open: None,
            acknowledged: 0,
            failed: 0,
            unknown: 0,
        }
    }
}

impl<R: Clone + PartialEq + Debug + DeserializeOwned> Records<R> {
    /// Folds in one protocol line; an error is a contradiction in what the child printed.
    pub fn observe(&mut self, words: &[&str]) -> Result<(), String> {
        let number = || words.get(1).and_then(|n| n.parse::<u64>().ok());
        match words[0] {
            "intent" => {
                if let Some((open, _)) = &self.open {
                    return Err(format!("intent {:?} while {open} is in flight", number()));
                }
                let intent = serde_json::from_str(words[2]).map_err(|e| e.to_string())?;
                self.open = Some((number().unwrap(), intent));
            }
            "ack" => {
                let intent = self.take(number())?;
                self.acknowledged += 1;
                self.settle(&intent.after);
            }
            "fail" => {
                self.take(number())?;
                self.failed += 1;
            }
            "unknown" => self.unknown += 1,
            "resolved" => {
                let intent = self.take(number())?;
                let found: Vec<(String, Option<R>)> =
                    serde_json::from_str(words[2]).map_err(|e| e.to_string())?;
                applied_whole_or_not(&intent, &self.state, &found)?;
                self.settle(&found);
            }
            _ => {}
        }
        Ok(())
    }

    fn take(&mut self, number: Option<u64>) -> Result<Intent<R>, String> {
        match self.open.take() {
            Some((open, intent)) if Some(open) == number => Ok(intent),
            other => Err(format!(
                "outcome of {number:?} while {:?} is in flight",
                other.map(|o| o.0)
            )),
        }
    }

    fn settle(&mut self, records: &[(String, Option<R>)]) {
        for (id, record) in records {
            match record {
                Some(record) => self.state.insert(id.clone(), record.clone()),
                None => self.state.remove(id),
            };
        }
    }

    /// Checks the records found after a kill against what was acknowledged, then takes them
    /// as the truth (the operation in flight is settled, one way or the other).
    pub fn check_and_settle(&mut self, stored: &BTreeMap<String, R>) -> Result<(), String> {
        check_records(&self.state, self.open.as_ref().map(|(_, i)| i), stored)?;
        self.state = stored.clone();
        self.open = None;
        Ok(())
    }
}

/// Index checks every scenario's table gets after a kill: `verify` finds every entry and
/// manifest in step with its record.
pub async fn verified<R: TitoModelTrait, B: Backend>(
    model: &TitoModel<R, B>,
) -> Result<u64, String> {
    let report = model
        .verify()
        .await
        .map_err(|e| format!("verify failed: {e}"))?;
    if !report.is_consistent() {
        return Err(format!("`{}` is not consistent: {report:?}", model.table()));
    }
    Ok(report.entries)
}

/// Scenario `writes`, after a kill: the records, `verify`, and every index answering as the
/// records say (each sku finds its item alone; each colour and tag finds exactly its items).
pub async fn check_items(
    db: &TitoEngine<Embedded>,
    records: &mut Records<Item>,
) -> Result<(), String> {
    let items = db.clone().model::<Item>();
    let stored = load_all(&items).await;
    records.check_and_settle(&stored)?;
    verified(&items).await?;
    for item in stored.values() {
        let found = items
            .query_by_index("sku")
            .value(item.sku.as_str())
            .execute()
            .await;
        let found = found.map_err(|e| e.to_string())?.items;
        if found != vec![item.clone()] {
            return Err(format!("sku {} finds {found:?}, not {item:?}", item.sku));
        }
    }
    for (index, value) in COLORS
        .map(|c| ("color", c))
        .into_iter()
        .chain(["a", "b", "c"].map(|t| ("tags", t)))
    {
        let page = items
            .query_by_index(index)
            .value(value)
            .limit(1000)
            .execute()
            .await;
        let mut found: Vec<String> = page
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .map(|i| i.id)
            .collect();
        found.sort();
        let wanted: Vec<String> = (stored.values())
            .filter(|i| {
                if index == "color" {
                    i.color == value
                } else {
                    i.tags.iter().any(|t| t == value)
                }
            })
            .map(|i| i.id.clone())
            .collect();
        if found != wanted {
            return Err(format!(
                "{index} = {value} finds {found:?}, the records say {wanted:?}"
            ));
        }
    }
    Ok(())
}

/// Scenario `reindex`, after a kill: the records; then, as an operator restarting would,
/// reindex to the end (if the child had finished it, the indexes must already be readable and
/// in step, before anything is run); `verify`; the new unique index finds every serial; a
/// repair with no writer finds nothing to do.
pub async fn check_gadgets(
    db: &TitoEngine<Embedded>,
    records: &mut Records<GadgetV2>,
    reindex_done: bool,
) -> Result<(), String> {
    let v2 = db.clone().model::<GadgetV2>();
    let stored = load_all(&v2).await;
    records.check_and_settle(&stored)?;
    if reindex_done {
        verified(&v2)
            .await
            .map_err(|e| format!("after the child's reindex: {e}"))?;
    } else {
        v2.reindex(100, |_| {})
            .await
            .map_err(|e| format!("reindex after restart: {e:?}"))?;
    }
    verified(&v2).await?;
    for gadget in stored.values() {
        let found = v2
            .query_by_index("serial")
            .value(gadget.serial.as_str())
            .execute()
            .await;
        let found = found.map_err(|e| format!("serial query: {e}"))?.items;
        if found != vec![gadget.clone()] {
            return Err(format!(
                "serial {} finds {found:?}, not {gadget:?}",
                gadget.serial
            ));
        }
    }
    for shelf in 0..8i64 {
        let count = v2
            .query_by_index("shelf")
            .value(shelf)
            .count()
            .await
            .map_err(|e| e.to_string())?;
        let wanted = stored.values().filter(|g| g.shelf == shelf).count();
        if count != wanted {
            return Err(format!(
                "shelf {shelf} counts {count}, the records say {wanted}"
            ));
        }
    }
    let (orphans, p) = v2.repair(100).await.map_err(|e| format!("repair: {e:?}"))?;
    if (orphans, p.added, p.removed) != (0, 0, 0) {
        return Err(format!(
            "repair with no writer found work: {orphans} orphans, {p:?}"
        ));
    }
    Ok(())
}
