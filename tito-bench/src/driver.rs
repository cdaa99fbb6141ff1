//! Runs every system in its own child process (the same binary, re-executed with `child ..`),
//! and alternates them: each workload is cut into rounds, and every round gives each system one
//! slice, in a rotating order, so drift of the machine hits all systems alike. Separate
//! processes keep the systems' caches and allocators apart and give each its own peak memory.
//!
//! The protocol is one line per request on the child's stdin and one line per answer on its
//! stdout: `run <workload> <start> <end>` answers `ok <digest> <nanos>...`; `burst <start> <end>`
//! (concurrent writers) answers `ok <wall nanos> <nanos>...`, or `none` from a system it does not
//! apply to; `mem` answers the peak resident memory in KiB.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};

use tito_core::Durability;

use crate::data::Plan;
use crate::system::{Result, Workload};
use crate::systems::{AnySystem, Kind};
use crate::writers::{self, Burst, WRITERS};

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct Measurements {
    /// Sizes of the run.
    pub plan: Plan,
    /// Durability of tito, raw and SQLite commits.
    pub durability: Durability,
    /// The systems, in table order.
    pub kinds: Vec<Kind>,
    /// Latencies in nanoseconds per workload and system.
    pub nanos: BTreeMap<(usize, usize), Vec<u64>>,
    /// The concurrent writers' bursts per system, by system index.
    pub bursts: BTreeMap<usize, Vec<Burst>>,
    /// Peak resident memory (VmHWM) per system, in KiB.
    pub peak_kib: Vec<u64>,
    /// Slices where systems returned different results (should stay empty).
    pub mismatches: Vec<String>,
}

impl Measurements {
    /// The latencies of `workload` on `kind`.
    pub fn latencies(&self, workload: Workload, kind: Kind) -> &[u64] {
        let w = Workload::ALL.iter().position(|x| *x == workload);
        let k = self.kinds.iter().position(|x| *x == kind);
        match (w, k) {
            (Some(w), Some(k)) => self.nanos.get(&(w, k)).map_or(&[], Vec::as_slice),
            _ => &[],
        }
    }
}

fn durability_key(durability: Durability) -> &'static str {
    match durability {
        Durability::Sync => "sync",
        _ => "buffered",
    }
}

struct Child {
    process: std::process::Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Child {
    fn spawn(kind: Kind, plan: &Plan, durability: Durability) -> Result<Child> {
        let mut process = Command::new(std::env::current_exe()?)
            .args([
                "child",
                kind.key(),
                &plan.rows.to_string(),
                &plan.ops.to_string(),
                durability_key(durability),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = process.stdin.take().ok_or("no child stdin")?;
        let stdout = BufReader::new(process.stdout.take().ok_or("no child stdout")?);
        let mut child = Child {
            process,
            stdin,
            stdout,
        };
        let ready = child.read_line()?;
        if ready != "ready" {
            return Err(format!("{} did not start: {ready}", kind.key()).into());
        }
        Ok(child)
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err("the child process exited".into());
        }
        Ok(line.trim_end().to_string())
    }

    fn request(&mut self, line: &str) -> Result<String> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        let answer = self.read_line()?;
        match answer.strip_prefix("err ") {
            Some(message) => Err(message.to_string().into()),
            None => Ok(answer),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Closing stdin ends the child's loop; it removes its database as it exits.
        let _ = writeln!(self.stdin, "quit");
        let _ = self.process.wait();
    }
}

/// Runs every workload on every system in `kinds`, alternating, and collects the figures.
pub fn measure(
    plan: Plan,
    durability: Durability,
    kinds: &[Kind],
    rounds: u64,
) -> Result<Measurements> {
    let mut children = Vec::new();
    for kind in kinds {
        eprintln!("starting {} ...", kind.key());
        children.push(Child::spawn(*kind, &plan, durability)?);
    }
    let mut m = Measurements {
        plan,
        durability,
        kinds: kinds.to_vec(),
        nanos: BTreeMap::new(),
        bursts: BTreeMap::new(),
        peak_kib: Vec::new(),
        mismatches: Vec::new(),
    };
    for (w, workload) in Workload::ALL.into_iter().enumerate() {
        let total = workload.ops(&plan);
        eprintln!("{} ({total} operations) ...", workload.title());
        for (start, end, order) in schedule(total, rounds, children.len()) {
            let mut digests = Vec::new();
            for k in order {
                let answer = children[k]
                    .request(&format!("run {} {start} {end}", workload.key()))
                    .map_err(|e| format!("{} {}: {e}", kinds[k].key(), workload.key()))?;
                let (digest, nanos) = parse_ok(&answer)?;
                digests.push((k, digest));
                m.nanos.entry((w, k)).or_default().extend(nanos);
            }
            digests.sort();
            if digests.windows(2).any(|pair| pair[0].1 != pair[1].1) {
                m.mismatches.push(format!(
                    "{} operations {start}..{end}: results differ between systems",
                    workload.key()
                ));
            }
        }
    }
    let total = plan.ops;
    eprintln!("{WRITERS} concurrent writers, 1 record per transaction ({total} inserts) ...");
    for (start, end, order) in schedule(total, rounds, children.len()) {
        for k in order {
            let answer = children[k]
                .request(&format!("burst {start} {end}"))
                .map_err(|e| format!("{} burst: {e}", kinds[k].key()))?;
            if answer == "none" {
                continue;
            }
            let (wall, nanos) = parse_ok(&answer)?;
            let wall_nanos = wall.parse()?;
            (m.bursts.entry(k).or_default()).push(Burst { wall_nanos, nanos });
        }
    }
    for child in &mut children {
        m.peak_kib.push(child.request("mem")?.parse()?);
    }
    Ok(m)
}

/// The child side: opens `kind`, loads the authors, then serves requests until stdin closes.
pub fn serve(kind: Kind, plan: Plan, durability: Durability) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut system = runtime.block_on(AnySystem::open(kind, durability))?;
    runtime.block_on(system.setup(&plan))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let parts: Vec<&str> = line.split(' ').collect();
        let answer = match parts.as_slice() {
            ["run", workload, start, end] => {
                let workload = Workload::from_key(workload).ok_or("unknown workload")?;
                let (start, end) = (start.parse()?, end.parse()?);
                match runtime.block_on(system.run_slice(&plan, workload, start, end)) {
                    Ok(slice) => ok(slice.digest, slice.nanos),
                    Err(e) => failed(&e),
                }
            }
            ["burst", start, end] => {
                match writers::burst(&system, &plan, start.parse()?, end.parse()?) {
                    Ok(Some(burst)) => ok(burst.wall_nanos, burst.nanos),
                    Ok(None) => "none".into(),
                    Err(e) => failed(&e),
                }
            }
            ["mem"] => peak_kib()?.to_string(),
            ["quit"] => break,
            _ => format!("err unknown request `{line}`"),
        };
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(())
}

/// Cuts `total` operations into at most `rounds` slices `(start, end, order)`, `order` being
/// the children's turns, rotated from one round to the next.
fn schedule(
    total: u64,
    rounds: u64,
    children: usize,
) -> impl Iterator<Item = (u64, u64, Vec<usize>)> {
    let rounds = rounds.clamp(1, total.max(1));
    (0..rounds).map(move |round| {
        let order = (0..children)
            .map(|i| (i + round as usize) % children)
            .collect();
        (total * round / rounds, total * (round + 1) / rounds, order)
    })
}

/// The first field and the latencies of an `ok` answer.
fn parse_ok(answer: &str) -> Result<(String, Vec<u64>)> {
    let mut fields = answer.split(' ');
    if fields.next() != Some("ok") {
        return Err(format!("unexpected answer: {answer}").into());
    }
    let first = fields.next().unwrap_or_default().to_string();
    let nanos = fields
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()?;
    Ok((first, nanos))
}

/// A successful answer: `ok`, a first figure, then the latencies.
fn ok(first: u64, nanos: Vec<u64>) -> String {
    let mut answer = format!("ok {first}");
    for nanos in nanos {
        answer.push(' ');
        answer.push_str(&nanos.to_string());
    }
    answer
}

/// A failed request's answer: `err` and the error on one line.
fn failed(e: &crate::system::Error) -> String {
    format!("err {}", e.to_string().replace('\n', " "))
}

/// Parses the child's command line: `<system> <rows> <ops> <durability>`.
pub fn serve_args(args: &[String]) -> Result<()> {
    let [kind, rows, ops, durability] = args else {
        return Err("usage: tito-bench child <system> <rows> <ops> <buffered|sync>".into());
    };
    let kind = Kind::from_key(kind).ok_or("unknown system")?;
    let durability = match durability.as_str() {
        "sync" => Durability::Sync,
        _ => Durability::Buffered,
    };
    serve(kind, Plan::new(rows.parse()?, ops.parse()?), durability)
}

/// This process's peak resident memory (VmHWM) in KiB.
fn peak_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM in /proc/self/status")?;
    Ok(line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?)
}
