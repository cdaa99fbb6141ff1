//! The judgements, as plain functions over what the parent knows and what the database holds,
//! so each can be fed a hand-made bad state in a unit test.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use serde::{Deserialize, Serialize};

/// An operation a child started: the records it leaves when it commits (`None`: deleted). A
/// transaction commits whole or not at all, so it is judged on all its records together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Intent<R> {
    pub op: String,
    pub after: Vec<(String, Option<R>)>,
}

impl<R: Clone> Intent<R> {
    /// What the intent's records held before it, per `state`.
    pub fn before(&self, state: &BTreeMap<String, R>) -> Vec<(String, Option<R>)> {
        (self.after.iter())
            .map(|(id, _)| (id.clone(), state.get(id).cloned()))
            .collect()
    }
}

/// Whether `found` (the intent's records as stored) is all of the intent or none of it.
pub fn applied_whole_or_not<R: Clone + PartialEq + Debug>(
    intent: &Intent<R>,
    state: &BTreeMap<String, R>,
    found: &[(String, Option<R>)],
) -> Result<bool, String> {
    if found == intent.after.as_slice() {
        return Ok(true);
    }
    if found == intent.before(state).as_slice() {
        return Ok(false);
    }
    Err(format!(
        "`{}` is neither applied nor not applied: it should leave {:?} or keep {:?}, the \
         database holds {found:?}",
        intent.op,
        intent.after,
        intent.before(state)
    ))
}

/// Every record the parent knows was acknowledged is stored as acknowledged, nothing else is,
/// and the one operation in flight at the kill (`open`) is applied whole or not at all.
pub fn check_records<R: Clone + PartialEq + Debug>(
    state: &BTreeMap<String, R>,
    open: Option<&Intent<R>>,
    stored: &BTreeMap<String, R>,
) -> Result<(), String> {
    let uncertain: BTreeSet<&String> = open
        .iter()
        .flat_map(|i| i.after.iter().map(|(id, _)| id))
        .collect();
    for id in state.keys().chain(stored.keys()) {
        if uncertain.contains(id) {
            continue;
        }
        let (want, got) = (state.get(id), stored.get(id));
        if want != got {
            return Err(format!(
                "record `{id}`: acknowledged {want:?}, stored {got:?} (in flight: {:?})",
                open.map(|i| &i.op)
            ));
        }
    }
    if let Some(intent) = open {
        let found: Vec<(String, Option<R>)> = (intent.after.iter())
            .map(|(id, _)| (id.clone(), stored.get(id).cloned()))
            .collect();
        applied_whole_or_not(intent, state, &found)?;
    }
    Ok(())
}

/// A transactional handler's effects in key order, each event once: exactly `0..published`.
pub fn check_ledger_in_order(
    owner: &str,
    applied: &[String],
    published: u64,
) -> Result<(), String> {
    let wanted: Vec<String> = (0..published).map(|seq| seq.to_string()).collect();
    if applied != wanted.as_slice() {
        return Err(format!(
            "{owner}: {published} events published, the handler's effects are {applied:?}"
        ));
    }
    Ok(())
}

/// Effects with dead letters replayed: every event of `0..published` applied exactly once;
/// those `replayed` says must fail until replayed were applied from a replay (`<seq>r`), and
/// the others were first applied in key order.
pub fn check_ledger_once(
    owner: &str,
    applied: &[String],
    published: u64,
    replayed: impl Fn(u64) -> bool,
) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    let mut last_in_order = None;
    for effect in applied {
        let (seq, from_replay) = split_effect(owner, effect)?;
        if !seen.insert(seq) {
            return Err(format!("{owner}: event {seq} applied twice: {applied:?}"));
        }
        if replayed(seq) && !from_replay {
            return Err(format!(
                "{owner}: event {seq} applied without its replay: {applied:?}"
            ));
        }
        if !from_replay {
            if last_in_order.is_some_and(|last| last > seq) {
                return Err(format!(
                    "{owner}: event {seq} applied out of key order: {applied:?}"
                ));
            }
            last_in_order = Some(seq);
        }
    }
    let wanted: BTreeSet<u64> = (0..published).collect();
    if seen != wanted {
        let lost: Vec<&u64> = wanted.difference(&seen).collect();
        let extra: Vec<&u64> = seen.difference(&wanted).collect();
        return Err(format!(
            "{owner}: {published} events published; lost {lost:?}, never published {extra:?}"
        ));
    }
    Ok(())
}

/// A plain (at-least-once) handler's calls for one key, in call order, repeats included, as
/// `<seq>` or `<seq>r` (a replayed event): every published event was called, and the first
/// calls of events not replayed come in key order.
pub fn check_first_handlings(owner: &str, calls: &[String], published: u64) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    let mut last = None;
    for call in calls {
        let (seq, replayed) = split_effect(owner, call)?;
        // A repeat is a redelivery after a crash or a failed acknowledgement.
        if !seen.insert(seq) || replayed {
            continue;
        }
        if last.is_some_and(|last| last > seq) {
            return Err(format!(
                "{owner}: event {seq} first handled after a later one: {calls:?}"
            ));
        }
        last = Some(seq);
    }
    let wanted: BTreeSet<u64> = (0..published).collect();
    if seen != wanted {
        let lost: Vec<&u64> = wanted.difference(&seen).collect();
        return Err(format!(
            "{owner}: {published} events published; never handled {lost:?}, calls {calls:?}"
        ));
    }
    Ok(())
}

/// An effect or call `<seq>` or `<seq>r`: the event's number, and whether it was replayed.
fn split_effect(owner: &str, effect: &str) -> Result<(u64, bool), String> {
    let (seq, replayed) = match effect.strip_suffix('r') {
        Some(seq) => (seq, true),
        None => (effect, false),
    };
    let seq = seq
        .parse()
        .map_err(|_| format!("{owner}: bad effect {effect}"))?;
    Ok((seq, replayed))
}

/// Publishes: every acknowledged one is committed, and at most the one in flight beyond them.
pub fn check_published(
    owner: &str,
    acknowledged: u64,
    committed: u64,
    in_flight: bool,
) -> Result<(), String> {
    let most = acknowledged + u64::from(in_flight);
    if committed < acknowledged || committed > most {
        return Err(format!(
            "{owner}: {acknowledged} publishes acknowledged (one more in flight: {in_flight}), \
             {committed} committed"
        ));
    }
    Ok(())
}
