//! Turns measurements into Markdown tables: a summary of median latencies and ratios with the
//! product goals, one table per workload (ops/s, median, p99) and peak memory per system.

use std::fmt::Write;

use tito_core::Durability;

use crate::driver::Measurements;
use crate::system::Workload;
use crate::systems::Kind;
use crate::writers::WRITERS;

/// Throughput and latency of one workload on one system.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Operations per second over the summed operation times.
    pub ops_per_sec: f64,
    /// Median latency, nanoseconds.
    pub median: u64,
    /// 99th percentile latency, nanoseconds.
    pub p99: u64,
}

impl Stats {
    /// Statistics of a set of latencies; `None` when empty.
    pub fn of(nanos: &[u64]) -> Option<Stats> {
        if nanos.is_empty() {
            return None;
        }
        let mut sorted = nanos.to_vec();
        sorted.sort_unstable();
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        let total: u64 = sorted.iter().sum();
        Some(Stats {
            ops_per_sec: sorted.len() as f64 / (total.max(1) as f64 / 1e9),
            median: at(0.5),
            p99: at(0.99),
        })
    }
}

/// The ratio goal PRODUCT.md sets for tito against the raw backend, if any.
pub fn raw_goal(workload: Workload) -> Option<f64> {
    match workload {
        Workload::Insert1 | Workload::Insert100 => Some(2.0),
        Workload::Get => Some(1.5),
        Workload::Query | Workload::QueryNext => Some(2.0),
        _ => None,
    }
}

/// A duration in nanoseconds, readably.
pub fn duration(nanos: u64) -> String {
    match nanos {
        n if n < 1_000 => format!("{n} ns"),
        n if n < 1_000_000 => format!("{:.1} µs", n as f64 / 1e3),
        n => format!("{:.2} ms", n as f64 / 1e6),
    }
}

/// tito's median latency divided by `other`'s on `workload` (below 1: tito is faster).
pub fn ratio(m: &Measurements, workload: Workload, other: Kind) -> Option<f64> {
    let tito = Stats::of(m.latencies(workload, Kind::Tito))?;
    let other = Stats::of(m.latencies(workload, other))?;
    Some(tito.median as f64 / other.median.max(1) as f64)
}

fn durability_name(durability: Durability) -> &'static str {
    match durability {
        Durability::Sync => "sync (fsync at every commit)",
        _ => "buffered (survives a process crash, not a power loss)",
    }
}

/// The full report in Markdown.
pub fn markdown(m: &Measurements) -> String {
    let mut out = String::new();
    let backend = match std::env::var(tito_core::backend::any::TIKV_PD_ENV) {
        Ok(pd) if !pd.is_empty() => format!("tito and raw on TiKV (PD {pd})"),
        _ => "tito and raw on the embedded backend".into(),
    };
    let _ = writeln!(
        out,
        "{} rows loaded, {} operations per workload, durability {}; {backend}.\n",
        m.plan.rows,
        m.plan.ops,
        durability_name(m.durability)
    );
    summary(m, &mut out);
    for workload in Workload::ALL {
        let _ = writeln!(out, "\n#### {}\n", workload.title());
        let _ = writeln!(out, "| system | ops/s | median | p99 |");
        let _ = writeln!(out, "|---|---:|---:|---:|");
        for kind in &m.kinds {
            if let Some(s) = Stats::of(m.latencies(workload, *kind)) {
                let _ = writeln!(
                    out,
                    "| {}{} | {:.0} | {} | {} |",
                    kind.key(),
                    dagger(*kind, workload, m.durability),
                    s.ops_per_sec,
                    duration(s.median),
                    duration(s.p99)
                );
            }
        }
    }
    concurrent(m, &mut out);
    let _ = writeln!(out, "\n#### Peak memory (VmHWM of each system's process)\n");
    let _ = writeln!(out, "| system | peak RSS |");
    let _ = writeln!(out, "|---|---:|");
    for (kind, kib) in m.kinds.iter().zip(&m.peak_kib) {
        let _ = writeln!(out, "| {} | {:.1} MiB |", kind.key(), *kib as f64 / 1024.0);
    }
    if m.durability != Durability::Sync && m.kinds.contains(&Kind::NativeDb) {
        let _ = writeln!(
            out,
            "\n† native_db 0.8 has no durability setting: its commits always fsync, so its write \
             figures are at `sync` durability, the others' at `buffered`."
        );
    }
    for mismatch in &m.mismatches {
        let _ = writeln!(out, "\n**WARNING:** {mismatch}");
    }
    out
}

/// Commits per second of the concurrent writers, summed over every burst of `kind`.
pub fn commits_per_sec(m: &Measurements, kind: Kind) -> Option<f64> {
    let k = m.kinds.iter().position(|x| *x == kind)?;
    let bursts = m.bursts.get(&k)?;
    let inserts: usize = bursts.iter().map(|b| b.nanos.len()).sum();
    let wall: u64 = bursts.iter().map(|b| b.wall_nanos).sum();
    Some(inserts as f64 / (wall.max(1) as f64 / 1e9))
}

fn concurrent(m: &Measurements, out: &mut String) {
    if m.bursts.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n#### {WRITERS} concurrent writers, 1 record per transaction\n"
    );
    let _ = writeln!(out, "| system | commits/s | median | p99 |");
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for (k, kind) in m.kinds.iter().enumerate() {
        let nanos: Vec<u64> = (m.bursts.get(&k).into_iter().flatten())
            .flat_map(|b| b.nanos.iter().copied())
            .collect();
        if let (Some(rate), Some(s)) = (commits_per_sec(m, *kind), Stats::of(&nanos)) {
            let fsyncs = kind.fsyncs(m.durability) && !Kind::Tito.fsyncs(m.durability);
            let _ = writeln!(
                out,
                "| {}{} | {rate:.0} | {} | {} |",
                kind.key(),
                if fsyncs { " †" } else { "" },
                duration(s.median),
                duration(s.p99)
            );
        }
    }
    if let (Some(tito), Some(sqlite)) = (
        commits_per_sec(m, Kind::Tito),
        commits_per_sec(m, Kind::Sqlite),
    ) {
        let _ = writeln!(
            out,
            "\ntito commits {:.2}x as many transactions per second as SQLite.",
            tito / sqlite
        );
    }
}

/// Whether `kind`'s figure on `workload` was measured at a stronger durability than tito's.
pub fn unequal_durability(kind: Kind, workload: Workload, durability: Durability) -> bool {
    workload.writes() && kind.fsyncs(durability) && !Kind::Tito.fsyncs(durability)
}

fn dagger(kind: Kind, workload: Workload, durability: Durability) -> &'static str {
    if unequal_durability(kind, workload, durability) {
        " †"
    } else {
        ""
    }
}

fn summary(m: &Measurements, out: &mut String) {
    let others: Vec<Kind> = m
        .kinds
        .iter()
        .copied()
        .filter(|k| *k != Kind::Tito)
        .collect();
    let _ = write!(out, "| workload (median latency) |");
    for kind in &m.kinds {
        let _ = write!(out, " {} |", kind.key());
    }
    for kind in &others {
        let _ = write!(out, " tito/{} |", kind.key());
    }
    let _ = writeln!(out, " goal vs raw |");
    let _ = writeln!(
        out,
        "|---|{}{}---|",
        "---:|".repeat(m.kinds.len()),
        "---:|".repeat(others.len())
    );
    for workload in Workload::ALL {
        let _ = write!(out, "| {} |", workload.title());
        for kind in &m.kinds {
            let cell = Stats::of(m.latencies(workload, *kind))
                .map(|s| duration(s.median))
                .unwrap_or_default();
            let _ = write!(out, " {cell}{} |", dagger(*kind, workload, m.durability));
        }
        for kind in &others {
            let cell = ratio(m, workload, *kind)
                .map(|r| format!("{r:.2}x"))
                .unwrap_or_default();
            let _ = write!(out, " {cell} |");
        }
        let goal = match (raw_goal(workload), ratio(m, workload, Kind::Raw)) {
            (Some(goal), Some(r)) if r <= goal => format!("≤ {goal}x: met"),
            (Some(goal), Some(_)) => format!("≤ {goal}x: **missed**"),
            _ => "—".to_string(),
        };
        let _ = writeln!(out, " {goal} |");
    }
    let _ = writeln!(
        out,
        "\nRatios are tito's median latency over the other system's: below 1, tito is faster."
    );
}
