//! Instrumentation of public operations: a tracing span each (named and labelled after
//! OpenTelemetry's database conventions), counts and latencies through the `metrics` facade
//! (no exporter is installed: the application chooses one), and a warning for slow ones.
//!
//! Metrics:
//! - `tito_operations_total{operation, table, outcome}`: `outcome` is `ok` or the error's
//!   [`kind`](crate::TitoError::kind);
//! - `tito_operation_duration_seconds{operation, table}`: a histogram;
//! - `tito_transaction_retries_total{reason}`: transactions run again by
//!   `transaction_with_retry`, `reason` the kind of error that caused it (`conflict`,
//!   `unavailable`).

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::{Instrument, debug_span, field, warn};

use crate::error::Result;
use crate::model::schema::Schema;

/// Operations at least this slow are logged at WARN unless the engine is told otherwise
/// ([`TitoEngine::slow_threshold`](crate::TitoEngine::slow_threshold)).
pub const DEFAULT_SLOW_THRESHOLD: Duration = Duration::from_secs(1);

/// One public operation on a table (`index` for queries), for [`run`].
#[derive(Debug, Clone)]
pub(crate) struct Operation<'a> {
    pub name: &'static str,
    pub schema: &'a Schema,
    pub index: Option<&'a str>,
}

impl<'a> Operation<'a> {
    pub fn new(name: &'static str, schema: &'a Schema) -> Self {
        Operation {
            name,
            schema,
            index: None,
        }
    }

    pub fn on_index(mut self, index: &'a str) -> Self {
        self.index = Some(index);
        self
    }

    /// Runs `work` as this operation: in its span, counted and timed, warning past `slow`;
    /// `rows` tells how many records the result holds.
    pub async fn run<T>(
        self,
        slow: Duration,
        work: impl Future<Output = Result<T>>,
        rows: impl FnOnce(&T) -> usize,
    ) -> Result<T> {
        let span = debug_span!(
            "tito.operation",
            otel.name = %format_args!("{} {}", self.name, self.schema.table),
            db.system.name = "tito",
            db.operation.name = self.name,
            db.collection.name = self.schema.table,
            tito.index = self.index,
            db.response.returned_rows = field::Empty,
            duration_ms = field::Empty,
            error.type = field::Empty,
        );
        let start = Instant::now();
        let result = work.instrument(span.clone()).await;
        let elapsed = start.elapsed();
        span.record("duration_ms", elapsed.as_secs_f64() * 1e3);
        let outcome = match &result {
            Ok(value) => {
                span.record("db.response.returned_rows", rows(value));
                "ok"
            }
            Err(e) => {
                span.record("error.type", e.kind());
                e.kind()
            }
        };
        let (operation, table) = (self.name, &self.schema.table_label);
        metrics::counter!("tito_operations_total", "operation" => operation, "table" => table.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("tito_operation_duration_seconds", "operation" => operation, "table" => table.clone())
            .record(elapsed);
        if elapsed >= slow {
            warn!(
                operation = self.name,
                table = self.schema.table,
                index = self.index,
                duration_ms = elapsed.as_secs_f64() * 1e3,
                outcome,
                "slow tito operation"
            );
        }
        result
    }
}

/// Counts a transaction run again after `error`.
pub(crate) fn retried(error: &crate::TitoError) {
    metrics::counter!("tito_transaction_retries_total", "reason" => error.kind()).increment(1);
}
