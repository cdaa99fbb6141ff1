//! How results are shown: aligned tables or JSON on standard output, progress on standard
//! error.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// Rows to print under a header, as an aligned table or as a JSON array of objects.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<Value>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Self {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row: one value per column, in header order.
    pub fn row(&mut self, values: Vec<Value>) {
        self.rows.push(values);
    }

    pub fn print(&self, json: bool) {
        if json {
            let objects: Vec<Value> = (self.rows.iter())
                .map(|row| {
                    let fields = self.header.iter().zip(row);
                    Value::Object(fields.map(|(h, v)| (key(h), v.clone())).collect())
                })
                .collect();
            print_json(&Value::Array(objects));
            return;
        }
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(cell).collect())
            .collect();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for row in &cells {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = (cells.iter().zip(&widths))
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            println!("{}", padded.join("  ").trim_end());
        };
        line(self.header.clone());
        for row in &cells {
            line(row.iter().map(String::as_str).collect());
        }
    }
}

/// A header as a JSON key: `LAST EVENT` becomes `last_event`.
fn key(header: &str) -> String {
    header.to_lowercase().replace(' ', "_")
}

/// A value as a table cell: strings without their quotes.
fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

pub fn print_json(value: &Value) {
    println!("{value:#}");
}

/// A byte count, readably: `812 B`, `3.4 KiB`, `1.2 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration, readably: `850ms`, `12.3s`, `4m05s`, `2h10m`.
pub fn age(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// Progress of long work on standard error: a bar on a terminal, otherwise a line at most
/// every few seconds (and one at the end), so logs of scripts show it too.
pub struct Progress {
    bar: Option<ProgressBar>,
    what: &'static str,
    unit: &'static str,
    last_line: Option<Instant>,
}

const LINE_EVERY: Duration = Duration::from_secs(2);

impl Progress {
    /// Progress over `total` `unit` (0 when unknown) of work named `what`.
    pub fn new(what: &'static str, unit: &'static str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let (bar, template) = match total {
                0 => (
                    ProgressBar::no_length(),
                    format!("{{msg}} {{pos}} {unit}, {{elapsed}}"),
                ),
                _ => (
                    ProgressBar::new(total),
                    format!(
                        "{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit}, {{elapsed}} (eta {{eta}})"
                    ),
                ),
            };
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(what);
            bar
        });
        Progress {
            bar,
            what,
            unit,
            last_line: None,
        }
    }

    /// `done` items so far.
    pub fn at(&mut self, done: u64) {
        match &self.bar {
            Some(bar) => bar.set_position(done),
            None => {
                if self.last_line.is_none_or(|at| at.elapsed() >= LINE_EVERY) {
                    self.last_line = Some(Instant::now());
                    eprintln!("{}: {done} {}", self.what, self.unit);
                }
            }
        }
    }

    /// The work ended after `done` items.
    pub fn finish(self, done: u64) {
        match self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!("{}: {done} {}, done", self.what, self.unit),
        }
    }
}
