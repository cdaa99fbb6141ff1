//! Peak memory and time of `verify` and `reindex` over a large table, on the embedded backend.
//!
//! ```text
//! cargo run --release -p tito-core --example maintenance_memory -- [rows]
//! ```
//!
//! Writes `rows` records (default 1,000,000, about 100 bytes each, with one index), then runs
//! `verify`, then `reindex` through a model that adds a second index, then `verify` again. Before
//! each phase the process's peak resident memory is reset (`/proc/self/clear_refs`, Linux), so
//! each phase reports its own peak (`VmHWM`) next to the resident memory it started from.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use tito_core::model::{TitoIndexBlockType, TitoIndexConfig, TitoIndexField};
use tito_core::{Embedded, TitoEngine, TitoError, TitoModelTrait};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Item {
    id: String,
    owner: String,
    color: String,
    note: String,
}

fn index(name: &str, field: &str) -> TitoIndexConfig {
    TitoIndexConfig {
        condition: true,
        name: name.into(),
        fields: vec![TitoIndexField {
            name: field.into(),
            r#type: TitoIndexBlockType::String,
        }],
        custom_generator: None,
    }
}

impl TitoModelTrait for Item {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "item".into()
    }
    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        vec![index("by_owner", "owner")]
    }
}

/// The same table after an index on `color` was added.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ItemV2 {
    id: String,
    owner: String,
    color: String,
    note: String,
}

impl TitoModelTrait for ItemV2 {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "item".into()
    }
    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        vec![index("by_owner", "owner"), index("by_color", "color")]
    }
}

/// A line of `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the peak to the current resident size; returns that size in MiB.
fn reset_peak() -> f64 {
    // Writing 5 resets VmHWM (Linux 4.0 and later); elsewhere the peak is since the start.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    status_kib("VmRSS:") as f64 / 1024.0
}

fn report(phase: &str, start: Instant, from: f64) {
    let peak = status_kib("VmHWM:") as f64 / 1024.0;
    println!(
        "{phase:<24} {:>8.1} s   resident at start {from:>7.1} MiB   peak {peak:>7.1} MiB",
        start.elapsed().as_secs_f64()
    );
}

#[tokio::main]
async fn main() -> Result<(), TitoError> {
    let rows: usize = match std::env::args().nth(1) {
        Some(arg) => arg
            .replace(['_', ','], "")
            .parse()
            .map_err(TitoError::custom)?,
        None => 1_000_000,
    };
    let db: TitoEngine<Embedded> = Embedded::temporary().await?;
    println!("maintenance_memory: {rows} records on the embedded backend");

    let from = reset_peak();
    let start = Instant::now();
    let items = db.clone().model::<Item>();
    for first in (0..rows).step_by(1000) {
        let batch: Vec<Item> = (first..(first + 1000).min(rows))
            .map(|n| Item {
                id: format!("item-{n:08}"),
                owner: format!("owner-{}", n % 10_000),
                color: ["red", "green", "blue"][n % 3].into(),
                note: format!("note {n} with some text to give the record a body"),
            })
            .collect();
        let items = items.clone();
        db.transaction(|tx| async move { items.build_many(batch, &tx).await })
            .await?;
    }
    report("write", start, from);

    let from = reset_peak();
    let start = Instant::now();
    let report_v1 = items.verify().await?;
    report("verify", start, from);
    assert!(report_v1.is_consistent(), "{report_v1:?}");

    let v2 = db.clone().model::<ItemV2>();
    let from = reset_peak();
    let start = Instant::now();
    let done = v2.reindex(1000, |_| {}).await?;
    report("reindex (a new index)", start, from);
    println!("  {} records, {} entries added", done.records, done.added);

    let from = reset_peak();
    let start = Instant::now();
    let report_v2 = v2.verify().await?;
    report("verify (two indexes)", start, from);
    println!(
        "  {} records, {} entries, consistent: {}",
        report_v2.records,
        report_v2.entries,
        report_v2.is_consistent()
    );
    Ok(())
}
