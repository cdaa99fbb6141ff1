//! The queue handle and its consumer groups.
//!
//! Every consumer group of an event type sees every event published while it is registered,
//! with its own pending events, checkpoints, leases, retries and dead letters. The registry of
//! an event type is one key; absent, it means just the default group. Publishes read it in their
//! transaction, so a group sees the events of transactions that start after its registration
//! committed.

use std::sync::Arc;

use tito_core::backend::{KeyRange, key_after};
use tito_core::event;
use tito_core::keyspace::queue as keys;
use tito_core::{Backend, Embedded, RetryPolicy, TitoEngine, TitoError, TitoTransaction};

/// The durable event queue of a tito database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TitoQueue<B: Backend = Embedded> {
    /// The database holding the events.
    pub engine: TitoEngine<B>,
}

/// How many keys a maintenance transaction deletes at most.
pub(crate) const PAGE: usize = 1_000;

impl<B: Backend> TitoQueue<B> {
    /// A queue over `engine`, shared by workers.
    pub fn new(engine: TitoEngine<B>) -> Arc<Self> {
        Arc::new(TitoQueue { engine })
    }

    /// The event types with anything in the queue (events, groups, checkpoints, dead letters),
    /// by name, from one snapshot.
    pub async fn event_types(&self) -> Result<Vec<String>, TitoError> {
        let tx = self.engine.snapshot().await?;
        let mut types = Vec::new();
        let mut next = tito_core::keyspace::queue_range();
        // Skip from type to type: read one key, note its type, jump past the type's keys.
        while let Some((key, _)) = tx.scan(next.clone(), 1).await?.pop() {
            let Some(event_type) = keys::event_type_in_key(&key) else {
                next.start = key_after(&key);
                continue;
            };
            let end = keys::event_type_range(&event_type).end;
            types.push(event_type);
            match end {
                Some(end) => next.start = end,
                None => break,
            }
        }
        Ok(types)
    }

    /// The consumer groups of `event_type`.
    pub async fn groups(&self, event_type: &str) -> Result<Vec<String>, TitoError> {
        let tx = self.engine.snapshot().await?;
        event::consumer_groups(&tx, event_type).await
    }

    /// Registers consumer group `group` of `event_type`; it sees events published from now on.
    /// Registering a group that exists changes nothing.
    pub async fn register_group(&self, event_type: &str, group: &str) -> Result<(), TitoError> {
        self.update_groups(event_type, |groups| {
            if groups.iter().any(|g| g == group) {
                return false;
            }
            groups.push(group.to_string());
            true
        })
        .await
    }

    /// Unregisters consumer group `group` of `event_type` and deletes everything it holds
    /// (pending events, retries, dead letters, checkpoints, leases). Stop its workers first.
    pub async fn remove_group(&self, event_type: &str, group: &str) -> Result<(), TitoError> {
        self.update_groups(event_type, |groups| {
            let before = groups.len();
            groups.retain(|g| g != group);
            groups.len() != before
        })
        .await?;
        for section in keys::GROUP_SECTIONS {
            let range = KeyRange::prefix(&keys::group_prefix(event_type, group, section));
            while self.delete_page(range.clone()).await? == PAGE {}
        }
        Ok(())
    }

    async fn update_groups(
        &self,
        event_type: &str,
        change: impl Fn(&mut Vec<String>) -> bool,
    ) -> Result<(), TitoError> {
        self.engine
            .transaction_with_retry(RetryPolicy::default(), |tx| {
                let change = &change;
                async move {
                    let mut groups = event::consumer_groups(&tx, event_type).await?;
                    if change(&mut groups) {
                        let bytes = serde_json::to_vec(&groups)
                            .map_err(|e| TitoError::Serialize(e.to_string()))?;
                        tx.put(keys::groups_key(event_type), bytes).await?;
                    }
                    Ok::<_, TitoError>(())
                }
            })
            .await
    }

    /// Deletes up to [`PAGE`] keys of `range` in one transaction; returns how many.
    pub(crate) async fn delete_page(&self, range: KeyRange) -> Result<usize, TitoError> {
        let rows = {
            let snapshot = self.engine.snapshot().await?;
            snapshot.scan(range, PAGE).await?
        };
        if rows.is_empty() {
            return Ok(0);
        }
        self.engine
            .transaction(|tx: TitoTransaction<B>| {
                let rows = &rows;
                async move {
                    for (key, _) in rows {
                        tx.delete(key.clone()).await?;
                    }
                    Ok::<_, TitoError>(rows.len())
                }
            })
            .await
    }
}
