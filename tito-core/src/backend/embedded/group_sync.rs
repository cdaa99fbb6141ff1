//! Group commit for [`Durability::Sync`](super::Durability::Sync): one `fdatasync` makes every
//! commit applied before it durable, so concurrent committers share the flushes.

use fjall::{Database, PersistMode};
use tokio::runtime::Handle;
use tokio::sync::Mutex;

use super::oracle::Oracle;
use crate::error::{Result, TitoError};

/// The commits known durable. Holding the lock is holding the right to flush.
#[derive(Default)]
pub(super) struct GroupSync {
    durable: Mutex<u64>,
    /// Flushes so far, to check that commits share them.
    #[cfg(test)]
    pub flushes: std::sync::atomic::AtomicU64,
}

impl GroupSync {
    /// Returns once commit `number` is on disk, flushing if no flush since covered it.
    pub async fn wait(&self, number: u64, db: &Database, oracle: &Oracle) -> Result<()> {
        let mut durable = self.durable.lock().await;
        if *durable >= number {
            return Ok(());
        }
        // Every commit numbered up to `covered` is in the journal: the flush covers them all,
        // including those that applied while this one waited for the lock.
        let covered = oracle.committed();
        let db = db.clone();
        let flush = move || db.persist(PersistMode::SyncData);
        // Other committers need the runtime meanwhile, to prepare the commits the next flush
        // will share: the flush moves to a blocking thread, unless no other task exists to run
        // meanwhile (or no Tokio runtime runs this), when it spares the hop.
        let own_task = usize::from(tokio::task::try_id().is_some());
        let alone =
            Handle::try_current().map_or(true, |rt| rt.metrics().num_alive_tasks() <= own_task);
        let flushed = if alone {
            flush()
        } else {
            (tokio::task::spawn_blocking(flush).await).map_err(|e| unknown(&e))?
        };
        flushed.map_err(|e| unknown(&e))?;
        *durable = covered;
        #[cfg(test)]
        (self.flushes).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

fn unknown(e: &dyn std::fmt::Display) -> TitoError {
    TitoError::CommitOutcomeUnknown(format!("embedded storage: flushing the journal: {e}"))
}
