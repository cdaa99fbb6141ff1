//! Event handlers as the worker stores them, the guard that turns a panicking handler into
//! an ordinary failure, so a panic is retried and dead-lettered like an error instead of killing
//! the worker, and the fencing token a handler call runs under.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tito_core::{Backend, TitoError, TitoEvent, TitoTransaction};

/// A boxed, sendable future: the return type of queue handlers.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The future a handler returns.
pub type HandlerFuture = BoxFuture<'static, Result<(), TitoError>>;

type PlainFn = dyn Fn(TitoEvent) -> HandlerFuture + Send + Sync;
type TransactionalFn<B> = dyn Fn(TitoEvent, TitoTransaction<B>) -> HandlerFuture + Send + Sync;

/// The two kinds of handler a worker runs.
pub(crate) enum Handler<B: Backend> {
    /// Handles events; the worker acknowledges them in batches afterwards.
    Plain(Arc<PlainFn>),
    /// Handles an event inside the transaction that acknowledges it.
    Transactional(Arc<TransactionalFn<B>>),
}

/// The lease a handler call runs under: its partition, and the lease's fencing token, which
/// grows with every acquisition of the partition by any worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FencingToken {
    /// The partition of the event being handled.
    pub partition: u32,
    /// The token of the worker's lease on it.
    pub token: u64,
}

tokio::task_local! {
    static FENCING_TOKEN: FencingToken;
}

/// The fencing token of the handler call running on this task; `None` outside a handler.
///
/// A worker paused past its lease may still be inside a handler call when another worker takes
/// the partition over. A system the handler writes to can refuse such late writes by keeping,
/// per partition, the highest token it has seen and rejecting writes that carry a lower one.
pub fn fencing_token() -> Option<FencingToken> {
    FENCING_TOKEN.try_with(|token| *token).ok()
}

impl<B: Backend> Clone for Handler<B> {
    fn clone(&self) -> Self {
        match self {
            Handler::Plain(f) => Handler::Plain(f.clone()),
            Handler::Transactional(f) => Handler::Transactional(f.clone()),
        }
    }
}

/// The longest handler error kept, in bytes: retry entries and dead letters store it beside the
/// event, and must fit in a stored value (see `tito_core::event::MAX_EVENT_LEN`).
pub const MAX_ERROR_LEN: usize = 4 * 1024;

/// Runs a handler under `token` (see [`fencing_token`]): its error, its panic (while building
/// or polling its future), or running longer than `timeout` becomes `Err(message)`, cut to
/// [`MAX_ERROR_LEN`].
pub(crate) async fn run_guarded(
    token: FencingToken,
    timeout: Option<Duration>,
    make: impl FnOnce() -> HandlerFuture,
) -> Result<(), String> {
    let made = FENCING_TOKEN.sync_scope(token, || catch_unwind(AssertUnwindSafe(make)));
    let future = match made {
        Ok(future) => FENCING_TOKEN.scope(token, CatchUnwind(future)),
        Err(panic) => return Err(bounded(panic_message(panic))),
    };
    let outcome = match timeout {
        Some(limit) => tokio::time::timeout(limit, future)
            .await
            .unwrap_or_else(|_| Err(format!("handler timed out after {limit:?}"))),
        None => future.await,
    };
    outcome.map_err(bounded)
}

/// `error`, cut to at most [`MAX_ERROR_LEN`] bytes (on a character boundary) with a note of how
/// long it was.
fn bounded(mut error: String) -> String {
    if error.len() <= MAX_ERROR_LEN {
        return error;
    }
    let total = error.len();
    let mut cut = MAX_ERROR_LEN - 64;
    while !error.is_char_boundary(cut) {
        cut -= 1;
    }
    error.truncate(cut);
    error.push_str(&format!("... (cut from {total} bytes)"));
    error
}

/// Polls a handler future, catching a panic of any poll.
struct CatchUnwind(HandlerFuture);

impl Future for CatchUnwind {
    type Output = Result<(), String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => Poll::Ready(result.map_err(|e| e.to_string())),
            Err(panic) => Poll::Ready(Err(panic_message(panic))),
        }
    }
}

fn panic_message(panic: Box<dyn Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_string());
    format!("handler panicked: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: FencingToken = FencingToken {
        partition: 7,
        token: 3,
    };

    #[tokio::test]
    async fn handlers_see_their_fencing_token_while_they_are_built_and_run() {
        assert_eq!(fencing_token(), None);
        let seen = run_guarded(TOKEN, None, || {
            let built = fencing_token();
            Box::pin(async move {
                tokio::task::yield_now().await;
                match (built, fencing_token()) {
                    (Some(TOKEN), Some(TOKEN)) => Ok(()),
                    other => Err(TitoError::custom(format!("{other:?}"))),
                }
            })
        })
        .await;
        assert_eq!(seen, Ok(()));
        assert_eq!(fencing_token(), None);
    }

    #[tokio::test]
    async fn panics_and_errors_become_failures() {
        let ok = run_guarded(TOKEN, None, || Box::pin(async { Ok(()) })).await;
        assert_eq!(ok, Ok(()));
        let err = run_guarded(TOKEN, None, || {
            Box::pin(async { Err(TitoError::custom("nope")) })
        })
        .await;
        assert_eq!(err, Err("nope".to_string()));
        let polled = run_guarded(TOKEN, None, || Box::pin(async { panic!("boom") })).await;
        assert_eq!(polled, Err("handler panicked: boom".to_string()));
        let built = run_guarded(TOKEN, None, || panic!("early {}", 1)).await;
        assert_eq!(built, Err("handler panicked: early 1".to_string()));
    }

    #[tokio::test]
    async fn long_errors_are_cut_to_the_limit_on_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR_LEN);
        let error = long.clone();
        let cut = run_guarded(TOKEN, None, move || {
            Box::pin(async move { Err(TitoError::custom(error)) })
        })
        .await
        .unwrap_err();
        assert!(cut.len() <= MAX_ERROR_LEN, "{}", cut.len());
        assert!(cut.ends_with(&format!("... (cut from {} bytes)", long.len())));
        assert!(long.starts_with(cut.split("...").next().unwrap()));
        let panicked = run_guarded(TOKEN, None, move || panic!("{}", "x".repeat(1 << 20)))
            .await
            .unwrap_err();
        assert!(panicked.len() <= MAX_ERROR_LEN);
    }

    #[tokio::test]
    async fn a_handler_running_too_long_fails() {
        let limit = Some(Duration::from_millis(10));
        let hung = run_guarded(TOKEN, limit, || Box::pin(std::future::pending())).await;
        assert_eq!(hung, Err("handler timed out after 10ms".to_string()));
        let quick = run_guarded(TOKEN, limit, || Box::pin(async { Ok(()) })).await;
        assert_eq!(quick, Ok(()));
    }
}
