//! Keeps the benchmark honest and from rotting: every system does the same work and returns
//! the same results, the raw floor writes exactly tito's bytes, and the binary runs end to end.

use tito_bench::data::{PAGE, Plan};
use tito_bench::system::{System, Workload, run_slice, setup};
use tito_bench::systems::raw::Raw;
use tito_bench::systems::tito::Tito;
use tito_bench::systems::{AnySystem, Kind};
use tito_bench::writers;
use tito_core::backend::{AnyBackend, Backend, BackendTx, KeyRange, KvPair, TxKind};
use tito_core::{Durability, keyspace};

fn plan() -> Plan {
    Plan::new(300, 100)
}

#[tokio::test]
async fn every_system_returns_the_same_results_for_every_workload() {
    let plan = plan();
    let mut systems = Vec::new();
    for kind in Kind::ALL {
        let mut system = AnySystem::open(kind, Durability::Buffered).await.unwrap();
        system.setup(&plan).await.unwrap();
        systems.push((kind, system));
    }
    for workload in Workload::ALL {
        let ops = workload.ops(&plan);
        let mut digests = Vec::new();
        for (kind, system) in &mut systems {
            let slice = system.run_slice(&plan, workload, 0, ops).await.unwrap();
            assert_eq!(slice.nanos.len() as u64, ops, "{kind:?} {workload:?}");
            digests.push((kind.key(), slice.digest));
        }
        assert!(
            digests.windows(2).all(|w| w[0].1 == w[1].1),
            "{workload:?}: {digests:?}"
        );
    }
}

#[tokio::test]
async fn queries_return_full_pages_with_authors_and_a_working_cursor() {
    let plan = plan();
    let mut tito = Tito::open(Durability::Buffered).await.unwrap();
    setup(&mut tito, &plan).await.unwrap();
    run_slice(&mut tito, &plan, Workload::Insert100, 0, plan.rows / 100)
        .await
        .unwrap();
    let author = plan.query_author(0);
    let first = tito.page_by_author(&author, None).await.unwrap();
    assert_eq!(first.posts.len(), PAGE);
    let second = tito.page_by_author(&author, first.next).await.unwrap();
    assert_eq!(second.posts.len(), PAGE);
    assert!(first.posts.last().unwrap().created_at < second.posts[0].created_at);
    assert!(second.posts.iter().all(|p| p.author_id == author));
    let page = tito
        .page_by_category_with_author(&plan.query_category(0))
        .await
        .unwrap();
    assert_eq!(page.len(), PAGE);
    assert!(
        page.iter()
            .all(|p| p.author.as_ref().map(|a| &a.id) == Some(&p.author_id))
    );
}

async fn everything<B: Backend>(backend: &B) -> Vec<KvPair> {
    let mut tx = backend.begin(TxKind::ReadOnly).await.unwrap();
    let all = tx
        .scan(KeyRange::from(Vec::new()), usize::MAX)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Metadata (the format version, the schema registry) is written once per database.
    all.into_iter()
        .filter(|(key, _)| !keyspace::meta_range().contains(key))
        .collect()
}

#[tokio::test]
async fn the_raw_floor_writes_exactly_the_bytes_tito_writes() {
    let plan = plan();
    let mut tito = Tito::open(Durability::Buffered).await.unwrap();
    let mut raw = Raw::open(Durability::Buffered).await.unwrap();
    setup(&mut tito, &plan).await.unwrap();
    setup(&mut raw, &plan).await.unwrap();
    let writes = [
        Workload::Insert100,
        Workload::Insert1,
        Workload::Update,
        Workload::Delete,
    ];
    for workload in writes {
        let ops = workload.ops(&plan);
        run_slice(&mut tito, &plan, workload, 0, ops).await.unwrap();
        run_slice(&mut raw, &plan, workload, 0, ops).await.unwrap();
    }
    let tito_rows: Vec<KvPair> = everything::<AnyBackend>(tito.engine().backend()).await;
    let raw_rows = everything(raw.backend()).await;
    assert!(tito_rows.len() > 3 * plan.rows as usize);
    assert_eq!(tito_rows, raw_rows);
}

#[test]
fn concurrent_writers_store_every_post_on_every_system_but_the_floor() {
    // Bursts run their own runtimes, as in the child process: outside any runtime.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let plan = plan();
    for kind in Kind::ALL {
        let mut system = runtime
            .block_on(AnySystem::open(kind, Durability::Buffered))
            .unwrap();
        runtime.block_on(system.setup(&plan)).unwrap();
        let Some(burst) = writers::burst(&system, &plan, 0, 40).unwrap() else {
            assert_eq!(kind, Kind::Raw);
            continue;
        };
        assert_eq!(burst.nanos.len(), 40, "{kind:?}");
        assert!(burst.wall_nanos > 0 && burst.per_sec() > 0.0);
        for j in 0..40 {
            let post = plan.post(plan.rows + plan.ops + j);
            assert_eq!(
                runtime.block_on(system.get(&post.id)).unwrap(),
                post,
                "{kind:?}"
            );
        }
    }
}

#[test]
fn the_binary_prints_tables_and_writes_the_chart() {
    let dir = std::env::temp_dir().join(format!("tito-bench-smoke-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let chart = dir.join("chart.svg");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tito-bench"))
        .args(["--rows", "100", "--ops", "40", "--rounds", "2", "--chart"])
        .arg(&chart)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for needle in [
        "tito/raw",
        "tito/sqlite",
        "tito/native_db",
        "peak RSS",
        "round trips",
        "concurrent writers",
    ] {
        assert!(stdout.contains(needle), "missing {needle} in:\n{stdout}");
    }
    assert!(!stdout.contains("WARNING"), "{stdout}");
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_queue_workload_drains_every_event_on_tito_and_raw() {
    let plan = Plan::new(300, 150);
    let figures = tito_bench::queue::measure(&plan, Durability::Buffered, 1)
        .await
        .unwrap();
    assert_eq!((figures.tito.len(), figures.raw.len()), (1, 1));
    assert!(tito_bench::queue::markdown(&figures).contains("150 events"));
}
