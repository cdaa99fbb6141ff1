//! Runs every example, so the README's examples cannot rot: each is compiled into this test as a
//! module and its `main` is called.

#[path = "../examples/crud.rs"]
mod crud;

#[path = "../examples/blog.rs"]
mod blog;

// Its `main` prints; the test renders the metrics itself.
#[allow(dead_code)]
#[path = "../examples/prometheus.rs"]
mod prometheus;

#[test]
fn crud_example_runs() {
    crud::main().unwrap();
}

#[test]
fn blog_example_runs() {
    blog::main().unwrap();
}

#[test]
fn prometheus_example_exports_operations_and_the_queue() {
    let metrics = prometheus::install().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(prometheus::workload()).unwrap();
    let scrape = metrics.render();
    let value = |series: &str| -> f64 {
        let line = scrape.lines().find(|line| line.starts_with(series));
        let value = line.and_then(|line| line.strip_prefix(series)?.trim().parse().ok());
        value.unwrap_or_else(|| panic!("{series} missing from:\n{scrape}"))
    };
    // A build whose transaction met a conflict ran again: each run counts.
    let builds = r#"tito_operations_total{operation="build",table="orders",outcome="ok"}"#;
    let retries = r#"tito_transaction_retries_total{reason="conflict"}"#;
    let retried = if scrape.contains(retries) {
        value(retries)
    } else {
        0.0
    };
    assert!(value(builds) >= 3.0 && value(builds) <= 3.0 + retried);
    assert_eq!(
        value(r#"tito_operations_total{operation="query",table="orders",outcome="ok"}"#),
        1.0
    );
    assert_eq!(
        value(r#"tito_queue_events_handled_total{event_type="order",group="billing"}"#),
        3.0
    );
    assert_eq!(
        value(r#"tito_queue_pending_events{event_type="order",group="billing"}"#),
        0.0
    );
    assert!(scrape.contains("tito_operation_duration_seconds_count"));
}
