//! An SVG chart of tito's latency ratios against the other systems, written by hand: one row
//! per workload, one bar per other system, on a log scale centred on 1x (left of the line,
//! tito is faster; right, slower).

use std::fmt::Write;

use crate::driver::Measurements;
use crate::report::{ratio, raw_goal, unequal_durability};
use crate::system::Workload;
use crate::systems::Kind;

const WIDTH: f64 = 900.0;
const LABEL: f64 = 330.0;
const ROW: f64 = 54.0;
const BAR: f64 = 14.0;
const TOP: f64 = 56.0;
/// The axis spans 1/LIMIT .. LIMIT.
const LIMIT: f64 = 64.0;

fn color(kind: Kind) -> &'static str {
    match kind {
        Kind::Raw => "#4e79a7",
        Kind::Sqlite => "#f28e2b",
        Kind::NativeDb => "#59a14f",
        Kind::Tito => "#999999",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The x coordinate of ratio `r` (clamped to the axis).
fn x_of(r: f64) -> f64 {
    let span = WIDTH - LABEL - 40.0;
    let t = (r.clamp(1.0 / LIMIT, LIMIT).log2() + LIMIT.log2()) / (2.0 * LIMIT.log2());
    LABEL + 20.0 + t * span
}

/// The chart as an SVG document.
pub fn svg(m: &Measurements) -> String {
    let others: Vec<Kind> = m
        .kinds
        .iter()
        .copied()
        .filter(|k| *k != Kind::Tito)
        .collect();
    let height = TOP + ROW * Workload::ALL.len() as f64 + 60.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="22" font-size="15" font-weight="bold">tito median latency / other system's ({} rows, log scale; left of 1x = tito faster)</text>"#,
        m.plan.rows
    );
    for (i, kind) in others.iter().enumerate() {
        let x = 10.0 + i as f64 * 150.0;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="34" width="12" height="12" fill="{}"/><text x="{}" y="44">tito / {}</text>"#,
            color(*kind),
            x + 16.0,
            kind.key()
        );
    }
    let bottom = TOP + ROW * Workload::ALL.len() as f64;
    for tick in [1.0 / 64.0, 1.0 / 8.0, 0.5, 1.0, 2.0, 8.0, 64.0] {
        let x = x_of(tick);
        let label = if tick < 1.0 {
            format!("1/{}", (1.0 / tick).round())
        } else {
            format!("{tick}x")
        };
        let stroke = if tick == 1.0 { "#000" } else { "#ddd" };
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom}" stroke="{stroke}"/><text x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            bottom + 16.0
        );
    }
    for (row, workload) in Workload::ALL.into_iter().enumerate() {
        let y = TOP + row as f64 * ROW;
        let _ = writeln!(
            out,
            r#"<text x="10" y="{}">{}</text>"#,
            y + ROW / 2.0 + 4.0,
            escape(workload.title())
        );
        if let Some(goal) = raw_goal(workload) {
            let x = x_of(goal);
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{y}" x2="{x:.1}" y2="{}" stroke="#e15759" stroke-dasharray="4 3"><title>goal vs raw: {goal}x</title></line>"##,
                y + ROW - 6.0
            );
        }
        for (i, kind) in others.iter().enumerate() {
            let Some(r) = ratio(m, workload, *kind) else {
                continue;
            };
            let bar_y = y + 4.0 + i as f64 * (BAR + 2.0);
            let mark = if unequal_durability(*kind, workload, m.durability) {
                " †"
            } else {
                ""
            };
            let (a, b) = (x_of(1.0), x_of(r));
            let _ = writeln!(
                out,
                r#"<rect x="{:.1}" y="{bar_y}" width="{:.1}" height="{BAR}" fill="{}"/><text x="{:.1}" y="{}" font-size="10">{r:.2}x{mark}</text>"#,
                a.min(b),
                (a - b).abs().max(1.0),
                color(*kind),
                a.max(b) + 3.0,
                bar_y + BAR - 3.0
            );
        }
    }
    let _ = writeln!(
        out,
        r#"<text x="10" y="{}" font-size="11">Dashed red: the product goal against the raw backend. Same run, systems alternated. † native_db fsyncs every commit; the others do not in this run.</text>"#,
        bottom + 40.0
    );
    out.push_str("</svg>\n");
    out
}
