//! What tito tells an operator: a span per operation (OpenTelemetry's database attributes, rows,
//! duration), counts and latencies through the `metrics` facade, queue counters and lag gauges,
//! and a warning for slow operations.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{SharedString, Unit};
use metrics_util::CompositeKey;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde::{Deserialize, Serialize};
use tito::queue::{DEFAULT_GROUP, TitoQueue, Worker};
use tito::{Embedded, TitoEngine, TitoError, TitoModel, TitoOperation, TitoOptions};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "gauge_city", events("city"))]
struct City {
    #[tito(id)]
    id: String,
    #[tito(index(name = "by_country"))]
    country: String,
    #[tito(relation(model = City, into = twins))]
    twin_ids: Vec<String>,
    #[serde(default)]
    twins: Vec<City>,
}

/// A closed span or an event: its name (an event's message) and fields.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    level: tracing::Level,
    fields: BTreeMap<String, String>,
}

/// Records the fields of every span when it closes, and every event.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Seen>>>);

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields(BTreeMap::new());
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            let fields =
                (span.extensions_mut().remove::<Fields>()).map_or_else(BTreeMap::new, |f| f.0);
            let seen = Seen {
                name: span.name().to_string(),
                level: *span.metadata().level(),
                fields,
            };
            self.0.lock().unwrap().push(seen);
        }
    }
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        let name = fields.0.get("message").cloned().unwrap_or_default();
        let level = *event.metadata().level();
        self.0.lock().unwrap().push(Seen {
            name,
            level,
            fields: fields.0,
        });
    }
}

/// Every metric recorded, read once (the debugging recorder clears counters when read).
type Metrics = Vec<(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)>;

/// The value of metric `name` whose labels include `labels`.
fn metric<'a>(
    snapshot: &'a Metrics,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a DebugValue> {
    snapshot.iter().find_map(|(key, _, _, value)| {
        let key = key.key();
        let matches = key.name() == name
            && labels.iter().all(|(k, v)| {
                key.labels()
                    .any(|label| label.key() == *k && label.value() == *v)
            });
        matches.then_some(value)
    })
}

fn counter(snapshot: &Metrics, name: &str, labels: &[(&str, &str)]) -> u64 {
    match metric(snapshot, name, labels) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

fn histogram_len(snapshot: &Metrics, name: &str, labels: &[(&str, &str)]) -> usize {
    match metric(snapshot, name, labels) {
        Some(DebugValue::Histogram(values)) => values.len(),
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

fn gauge(snapshot: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    match metric(snapshot, name, labels) {
        Some(DebugValue::Gauge(value)) => value.into_inner(),
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

/// Writes two cities with events, reads one, queries and counts an index, measures the lag,
/// and lets a worker handle the events.
async fn workload(db: &TitoEngine) -> Result<(), TitoError> {
    let cities = db.clone().model::<City>();
    for (id, country) in [("oslo", "no"), ("lima", "pe")] {
        let city = City {
            id: id.into(),
            country: country.into(),
            twin_ids: vec!["oslo".into()],
            ..City::default()
        };
        let cities = cities.clone();
        db.transaction(|tx| async move {
            let options = TitoOptions::with_events(TitoOperation::Insert);
            cities.build_with_options(city, options, &tx).await
        })
        .await?;
    }
    assert!(cities.get("oslo").await?.is_some());
    let lima = cities.find_by_id("lima", vec!["twins".into()]).await?;
    assert_eq!(lima.twins.len(), 1);
    let found = City::by_country(&cities).value("no").execute().await?;
    assert_eq!(found.items.len(), 1);
    assert_eq!(City::by_country(&cities).count().await?, 2);
    // The default group receives events from the start: both wait for the worker.
    let queue = TitoQueue::new(db.clone());
    let lag = queue.record_lag("city", DEFAULT_GROUP).await?;
    assert_eq!(lag.iter().map(|l| l.pending).sum::<u64>(), 2);
    let handled = Arc::new(tokio::sync::Notify::new());
    let worker = {
        let handled = handled.clone();
        Worker::new(queue.clone(), "city")
            .poll_interval(Duration::from_millis(5))
            .run(move |_event| {
                handled.notify_one();
                Box::pin(async { Ok(()) })
            })
    };
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(30), handled.notified())
            .await
            .expect("the worker handled the events");
    }
    worker.shutdown().await?;
    Ok(())
}

/// Runs `work` on a one-thread runtime with `capture` recording its spans and events (and the
/// metrics going to this thread's recorder, if one is set).
fn traced<F: std::future::Future>(capture: &Capture, work: F) -> F::Output {
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || runtime.block_on(work))
}

#[test]
fn operations_and_queue_work_are_counted_timed_and_traced() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let capture = Capture::default();
    metrics::with_local_recorder(&recorder, || {
        traced(&capture, async {
            let db = Embedded::temporary().await.unwrap();
            workload(&db).await.unwrap();
        })
    });

    let snapshot = snapshotter.snapshot().into_vec();
    let table = [("table", "gauge_city")];
    let ok = |op: &'static str| {
        [
            ("operation", op),
            ("table", "gauge_city"),
            ("outcome", "ok"),
        ]
    };
    assert_eq!(counter(&snapshot, "tito_operations_total", &ok("build")), 2);
    assert!(counter(&snapshot, "tito_operations_total", &ok("get")) >= 1);
    assert_eq!(counter(&snapshot, "tito_operations_total", &ok("query")), 1);
    assert_eq!(counter(&snapshot, "tito_operations_total", &ok("count")), 1);
    assert!(histogram_len(&snapshot, "tito_operation_duration_seconds", &table) >= 1);
    let group = [("event_type", "city"), ("group", DEFAULT_GROUP)];
    assert_eq!(
        counter(&snapshot, "tito_queue_events_handled_total", &group),
        2
    );
    assert_eq!(
        histogram_len(&snapshot, "tito_queue_handler_duration_seconds", &group),
        2
    );
    assert!(counter(&snapshot, "tito_queue_leases_acquired_total", &group) > 0);
    assert_eq!(gauge(&snapshot, "tito_queue_pending_events", &group), 2.0);
    assert!(gauge(&snapshot, "tito_queue_oldest_pending_age_seconds", &group) >= 0.0);

    let seen = capture.0.lock().unwrap().clone();
    let query = (seen.iter())
        .find(|s| {
            s.name == "tito.operation"
                && s.fields.get("db.operation.name").map(String::as_str) == Some("query")
        })
        .unwrap_or_else(|| panic!("no query span in {seen:#?}"));
    assert_eq!(query.fields["db.system.name"], "tito");
    assert_eq!(query.fields["db.collection.name"], "gauge_city");
    assert_eq!(query.fields["tito.index"], "by_country");
    assert_eq!(query.fields["db.response.returned_rows"], "1");
    assert!(query.fields.contains_key("duration_ms"), "{query:?}");
    assert!(
        !seen.iter().any(|s| s.name == "slow tito operation"),
        "nothing is slow at the default threshold"
    );
    let named = |name: &str| seen.iter().filter(|s| s.name == name).collect::<Vec<_>>();
    let published: Vec<&str> = (named("tito.commit").iter())
        .filter_map(|s| s.fields.get("published").map(String::as_str))
        .filter(|published| *published != "0")
        .collect();
    assert_eq!(
        published,
        ["1", "1"],
        "each build's commit published its event"
    );
    let hydrate = named("tito.hydrate");
    assert_eq!(hydrate.len(), 1, "{seen:#?}");
    assert_eq!(hydrate[0].fields["tito.relationships"], "twins");
    let handled = named("tito.queue.handle");
    assert_eq!(handled.len(), 2, "{seen:#?}");
    assert!(handled.iter().all(|s| s.fields["attempt"] == "1"));
    let acked: u64 = (named("tito.queue.ack").iter())
        .map(|s| s.fields["events"].parse::<u64>().unwrap())
        .sum();
    assert_eq!(acked, 2);
}

#[test]
fn operations_past_the_slow_threshold_are_logged_at_warn() {
    let capture = Capture::default();
    traced(&capture, async {
        let db = Embedded::temporary()
            .await
            .unwrap()
            .slow_threshold(Duration::ZERO);
        let cities = db.clone().model::<City>();
        assert!(cities.get("nowhere").await.unwrap().is_none());
    });
    let seen = capture.0.lock().unwrap().clone();
    let slow = (seen.iter())
        .find(|s| s.name == "slow tito operation")
        .unwrap_or_else(|| panic!("no warning in {seen:#?}"));
    assert_eq!(slow.level, tracing::Level::WARN);
    assert_eq!(slow.fields["operation"], "get");
    assert_eq!(slow.fields["table"], "gauge_city");
    assert!(slow.fields.contains_key("duration_ms"));
}
