//! The web dashboard: a small server-rendered UI over a tito database, in the spirit of Oban
//! Web and River UI. It shows tables with record counts, a record browser by id and by index
//! (with cursor paging), index health (`verify`), and per event type and consumer group the
//! lag per partition as a heatmap of the 1024 partitions, throughput over time, the oldest
//! pending age, retrying events and dead letters with their errors and a replay button.
//!
//! Mount [`router`] into an axum application, or run `tito serve <database>`:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tito::web::{WebOptions, router};
//!
//! let db = tito::Embedded::open("./data").await?;
//! let app = axum::Router::new().nest("/tito", router(db, WebOptions::new().base_path("/tito")));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Every page only reads, except replaying dead letters, which needs
//! [`WebOptions::allow_replay`]; without it a replay is refused with 403. Replays are also
//! refused when the browser says the form came from another site. The dashboard has no
//! authentication of its own: [`serve`] serves where it is told (`tito serve` binds to
//! 127.0.0.1 unless given `--bind`), and an application mounting the router puts it behind its
//! own.
//!
//! The lag views read every waiting event's key (see
//! [`TitoQueue::lag`](crate::queue::TitoQueue::lag)); the queue page refreshes them every few
//! seconds while it is open.

mod error;
mod html;
mod pages;
mod queues;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tito_core::{Backend, TitoEngine};
use tito_queue::TitoQueue;
use tokio::net::TcpListener;

pub use error::WebError;

/// How the dashboard behaves: where it is mounted and whether it may write.
#[derive(Debug, Clone, Default)]
pub struct WebOptions {
    allow_replay: bool,
    base_path: String,
}

impl WebOptions {
    /// Read-only, mounted at the root.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the dead-letter pages may replay dead letters (off by default).
    pub fn allow_replay(mut self, allow: bool) -> Self {
        self.allow_replay = allow;
        self
    }

    /// The path the router is nested under (`"/tito"` for `Router::nest("/tito", ..)`), so
    /// links point inside it; empty (the default) at the root.
    pub fn base_path(mut self, base: &str) -> Self {
        self.base_path = base.trim_end_matches('/').to_string();
        self
    }

    /// Whether replays are enabled.
    pub fn replay_allowed(&self) -> bool {
        self.allow_replay
    }
}

/// What every handler shares.
pub(crate) struct State<B: Backend> {
    pub(crate) db: TitoEngine<B>,
    pub(crate) queue: Arc<TitoQueue<B>>,
    pub(crate) options: WebOptions,
}

impl<B: Backend> State<B> {
    /// The prefix of every link.
    pub(crate) fn base(&self) -> &str {
        &self.options.base_path
    }
}

/// Shared handler state.
pub(crate) type Shared<B> = axum::extract::State<Arc<State<B>>>;

/// The dashboard's routes over `db`, to serve on their own or nest into an application.
pub fn router<B: Backend>(db: TitoEngine<B>, options: WebOptions) -> Router {
    let state = Arc::new(State {
        queue: TitoQueue::new(db.clone()),
        db,
        options,
    });
    Router::new()
        .route("/", get(pages::overview::<B>))
        .route("/tables/{table}", get(pages::table::<B>))
        .route("/tables/{table}/record", get(pages::record::<B>))
        .route("/tables/{table}/indexes/{index}", get(pages::index::<B>))
        .route("/tables/{table}/verify", get(pages::verify::<B>))
        .route("/queues/{event_type}/{group}", get(queues::queue::<B>))
        .route(
            "/queues/{event_type}/{group}/stats.json",
            get(queues::stats::<B>),
        )
        .route("/queues/{event_type}/{group}/dead", get(queues::dead::<B>))
        .route(
            "/queues/{event_type}/{group}/replay",
            post(queues::replay::<B>),
        )
        .route("/assets/style.css", get(style))
        .route("/assets/dashboard.js", get(script))
        .fallback(not_found)
        .with_state(state)
}

/// Serves the dashboard over `db` on `listener` until the process stops.
pub async fn serve<B: Backend>(
    db: TitoEngine<B>,
    options: WebOptions,
    listener: TcpListener,
) -> Result<(), WebError> {
    axum::serve(listener, router(db, options)).await?;
    Ok(())
}

async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        html::STYLE,
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        html::SCRIPT,
    )
}

async fn not_found(uri: axum::http::Uri) -> WebError {
    WebError::NotFound(format!("no page at {}", uri.path()))
}
