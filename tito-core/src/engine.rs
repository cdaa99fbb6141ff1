//! The database handle: begins transactions and runs transaction closures.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use tracing::{Instrument, debug, info, info_span};

use crate::backend::{Backend, Embedded, TxKind};
use crate::error::{Result, TitoError};
use crate::event::{PublishedEvents, QueueHub};
use crate::keyspace::{self, FORMAT_VERSION};
use crate::query::CursorKeys;
use crate::registry::Registry;
use crate::txn::{RetryPolicy, TitoTransaction};

/// A tito database on backend `B`. Cheap to clone; clones share the backend.
#[derive(Clone, Debug)]
pub struct TitoEngine<B: Backend = Embedded> {
    backend: B,
    queue: Arc<QueueHub>,
    registry: Arc<Registry>,
    cursor_keys: Arc<CursorKeys>,
    slow: Duration,
}

impl<B: Backend> TitoEngine<B> {
    /// Wraps an opened backend, checking (or, on a new database, recording) the format version.
    pub async fn new(backend: B) -> Result<Self> {
        Self::wrap(backend, true).await
    }

    /// Wraps an opened backend that must already hold a tito database: a store without tito's
    /// format marker is refused with [`TitoError::NotFound`], and nothing is written to it.
    pub async fn existing(backend: B) -> Result<Self> {
        Self::wrap(backend, false).await
    }

    async fn wrap(backend: B, create: bool) -> Result<Self> {
        let mut engine = TitoEngine {
            backend,
            queue: Arc::default(),
            registry: Arc::default(),
            cursor_keys: Arc::new(CursorKeys::new([0; 32], &[])),
            slow: crate::observe::DEFAULT_SLOW_THRESHOLD,
        };
        engine.check_format(create).await?;
        engine.cursor_keys = Arc::new(engine.stored_cursor_keys().await?);
        Ok(engine)
    }

    /// Seals page cursors with `keys` instead of the key stored in the database: a secret the
    /// application keeps, shared by the services that hand out and take back each other's
    /// cursors, with the previous secrets of a rotation.
    pub fn with_cursor_keys(mut self, keys: CursorKeys) -> Self {
        self.cursor_keys = Arc::new(keys);
        self
    }

    /// Logs operations (reads, queries, writes) at least `threshold` slow at WARN, with their
    /// table and duration; one second by default, `Duration::MAX` for never.
    pub fn slow_threshold(mut self, threshold: Duration) -> Self {
        self.slow = threshold;
        self
    }

    /// The slow-operation threshold.
    pub(crate) fn slow(&self) -> Duration {
        self.slow
    }

    /// The keys page cursors are sealed with.
    pub(crate) fn cursor_keys(&self) -> &CursorKeys {
        &self.cursor_keys
    }

    /// The database's own cursor key, created and stored the first time it is opened.
    async fn stored_cursor_keys(&self) -> Result<CursorKeys> {
        const KEY_V1: u8 = 1;
        let key = keyspace::meta_key("cursor-key");
        let secret = self
            .transaction_with_retry(RetryPolicy::default(), |tx| {
                let key = key.clone();
                async move {
                    if let Some(stored) = tx.get(&key).await? {
                        return match stored.split_first() {
                            Some((&KEY_V1, secret)) => <[u8; 32]>::try_from(secret).map_err(|_| {
                                crate::model::record::decode_error(&key, "not a cursor key".into())
                            }),
                            _ => Err(crate::model::record::decode_error(
                                &key,
                                "unknown cursor key format".into(),
                            )),
                        };
                    }
                    let secret = CursorKeys::random_secret();
                    let mut bytes = vec![KEY_V1];
                    bytes.extend_from_slice(&secret);
                    tx.put(key, bytes).await?;
                    Ok(secret)
                }
            })
            .await?;
        Ok(CursorKeys::new(secret, &[]))
    }

    async fn check_format(&self, create: bool) -> Result<()> {
        let tx = self.begin().await?;
        let result = async {
            match tx.get(&keyspace::format_key()).await? {
                Some(bytes) => {
                    let found = <[u8; 4]>::try_from(bytes.as_slice())
                        .map(u32::from_be_bytes)
                        .map_err(|_| {
                            TitoError::IncompatibleFormat("the format marker is corrupt".into())
                        })?;
                    if found > FORMAT_VERSION {
                        return Err(TitoError::IncompatibleFormat(format!(
                            "the database has format {found}; this tito reads up to {FORMAT_VERSION}"
                        )));
                    }
                    Ok(Some(found))
                }
                None if !create => Err(TitoError::NotFound(
                    "no tito database here (its format marker is missing)".into(),
                )),
                None => {
                    tx.put(
                        keyspace::format_key(),
                        FORMAT_VERSION.to_be_bytes().to_vec(),
                    )
                    .await?;
                    Ok(None)
                }
            }
        }
        .await;
        match tx.finish(result).await? {
            Some(found) if found < FORMAT_VERSION => {
                info!(
                    from = found,
                    to = FORMAT_VERSION,
                    "upgrading the database format"
                );
                crate::upgrade::upgrade(self, found).await?;
                self.transaction_with_retry(RetryPolicy::default(), |tx| async move {
                    tx.put(
                        keyspace::format_key(),
                        FORMAT_VERSION.to_be_bytes().to_vec(),
                    )
                    .await
                })
                .await
            }
            _ => Ok(()),
        }
    }

    /// The storage backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The table schemas this engine has read.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Begins an optimistic read-write transaction; commit or roll it back yourself.
    pub async fn begin(&self) -> Result<TitoTransaction<B>> {
        self.begin_with(TxKind::Optimistic).await
    }

    /// Begins a transaction of the given kind.
    pub async fn begin_with(&self, kind: TxKind) -> Result<TitoTransaction<B>> {
        let tx = self.backend.begin(kind).await?;
        Ok(TitoTransaction::new(tx, kind, self.queue.clone()))
    }

    /// A receiver of the partition keys of the events of `event_type` that each transaction
    /// begun on this engine (or a clone of it) commits: queue workers read those keys at once.
    /// Events committed through other engines or processes are found by polling.
    pub fn published(&self, event_type: &str) -> broadcast::Receiver<PublishedEvents> {
        self.queue.subscribe(event_type)
    }

    /// A consistent read-only snapshot of the database.
    pub async fn snapshot(&self) -> Result<TitoTransaction<B>> {
        self.begin_with(TxKind::ReadOnly).await
    }

    /// Runs `read` on a snapshot and closes it.
    pub(crate) async fn read<'a, T, F, Fut>(&'a self, read: F) -> Result<T>
    where
        F: FnOnce(TitoTransaction<B>) -> Fut,
        Fut: std::future::Future<Output = Result<T>> + 'a,
    {
        let tx = self.snapshot().await?;
        let result = read(tx.clone()).await;
        tx.finish(result).await
    }

    /// Runs `f` in a transaction: commits when it returns `Ok`, rolls back when it returns `Err`.
    ///
    /// The closure runs once. A commit conflict is returned as [`TitoError::Conflict`]; use
    /// [`transaction_with_retry`](Self::transaction_with_retry) for closures that can run again.
    pub async fn transaction<F, Fut, T, E>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(TitoTransaction<B>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<TitoError>,
    {
        let tx = self.begin().await?;
        let outcome = f(tx.clone())
            .instrument(info_span!(
                "tito.transaction",
                backend = self.backend.name()
            ))
            .await;
        tx.finish(outcome).await
    }

    /// Runs `f` in a transaction, running it again in a fresh transaction when the backend
    /// reports a retryable conflict or a retryable unavailability (at begin too), with jittered
    /// exponential backoff per `policy`.
    ///
    /// Errors of the closure that are not backend conflicts are returned at once. A commit
    /// whose outcome is unknown is never replayed: it returns
    /// [`TitoError::CommitOutcomeUnknown`]. When attempts run out, the last conflict is returned.
    pub async fn transaction_with_retry<F, Fut, T, E>(
        &self,
        policy: RetryPolicy,
        f: F,
    ) -> Result<T, E>
    where
        F: Fn(TitoTransaction<B>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<TitoError>,
    {
        let mut attempt = 1;
        loop {
            let may_retry = attempt < policy.max_attempts;
            let retryable = match self.begin().await {
                // Nothing ran yet: a begin that failed for now is retried like a conflict.
                Err(e) if e.is_retryable() && may_retry => e,
                Err(e) => return Err(e.into()),
                Ok(tx) => {
                    let span =
                        info_span!("tito.transaction", backend = self.backend.name(), attempt);
                    match f(tx.clone()).instrument(span).await {
                        Ok(value) => match tx.commit().await {
                            Ok(()) => return Ok(value),
                            Err(e) if e.is_retryable() && may_retry => e,
                            Err(e) => return Err(e.into()),
                        },
                        Err(e) => {
                            tx.rollback_quietly().await;
                            if !(tx.saw_conflict() && may_retry) {
                                return Err(e);
                            }
                            TitoError::Conflict("conflict during the transaction".into())
                        }
                    }
                }
            };
            let delay = policy.delay(attempt);
            debug!(attempt, ?delay, error = %retryable, "retrying transaction");
            crate::observe::retried(&retryable);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}
