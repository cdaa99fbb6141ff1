//! The crash campaign's machinery: the seeded generator, the line protocol between a child
//! writer and the parent, running one child until it is killed, and copying a database folder.
//!
//! A child prints every operation the database acknowledged as one line `@ <words> $` and
//! flushes it at once (Rust's stdout is line-buffered), so the parent knows what was
//! acknowledged before the kill. The trailing `$` tells a whole line from one cut by the kill:
//! a cut line is ignored, which only makes the parent know less, never believe more.
#![allow(dead_code)]

pub mod checks;
pub mod models;
pub mod queue;
pub mod writes;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The directory a child writes in; its presence makes the ignored child test run.
pub const CHILD_DIR: &str = "TITO_CRASH_CHILD_DIR";
/// The scenario a child runs.
pub const CHILD_SCENARIO: &str = "TITO_CRASH_CHILD_SCENARIO";
/// The seed of one child run.
pub const CHILD_SEED: &str = "TITO_CRASH_CHILD_SEED";
/// Exit code of a child that met something it must not (printed as an `anomaly` line first).
pub const ANOMALY_EXIT: i32 = 3;

/// A tiny deterministic generator (splitmix64): the campaign's and the children's choices.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number in `range`.
    pub fn within(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.below(range.end - range.start)
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// splitmix64's output function: a well-mixed value of `z`.
pub fn mix(z: u64) -> u64 {
    let mut z = z;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Prints one protocol line and flushes it, so it reaches the parent before a kill can.
pub fn emit(line: &str) {
    let mut out = std::io::stdout().lock();
    // A parent that went away cannot read it anyway; the kill follows.
    let _ = writeln!(out, "@ {line} $");
    let _ = out.flush();
}

/// Reports something the child must never see, and ends the child with [`ANOMALY_EXIT`].
pub fn anomaly(what: &str) -> ! {
    emit(&format!("anomaly {}", what.replace('\n', " ")));
    std::process::exit(ANOMALY_EXIT);
}

/// The words of a whole protocol line, or `None` for other output and lines cut by a kill.
pub fn parse(line: &str) -> Option<Vec<&str>> {
    // The first line follows the test harness's `test crash_child ... ` on the same line.
    let start = line.find("@ ")?;
    let body = line[start + 2..].strip_suffix(" $")?;
    Some(body.splitn(3, ' ').collect())
}

/// When the parent kills a child.
#[derive(Debug, Clone, Copy)]
pub enum KillAt {
    /// This long after the child said it is ready.
    After(Duration),
    /// Once it printed this many protocol lines after ready.
    Lines(u64),
}

impl KillAt {
    pub fn random(rng: &mut Rng, longest: Duration) -> Self {
        if rng.one_in(2) {
            let millis = rng.within(10..longest.as_millis() as u64);
            KillAt::After(Duration::from_millis(millis))
        } else {
            KillAt::Lines(rng.within(1..400))
        }
    }
}

/// How one child run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// The protocol lines it printed, in order.
    pub lines: Vec<String>,
    /// The exit status: killed by us, aborted at a chosen moment, finished, or failed.
    pub status: ExitStatus,
    /// Whether the parent's kill ended it.
    pub killed: bool,
    /// What the child wrote on stderr (evidence when it failed).
    pub stderr: String,
    /// How long after its start the child said `ready` (`None`: it never did).
    pub ready_after: Option<Duration>,
    /// How long the child ran, start to end.
    pub ran: Duration,
}

impl RunOutcome {
    /// Whether the child ended itself with `std::process::abort()` (SIGABRT).
    pub fn aborted(&self) -> bool {
        self.status.signal() == Some(6)
    }

    /// A child that failed on its own: neither killed, aborted, nor finished.
    pub fn failure(&self) -> Option<String> {
        if self.killed || self.aborted() || self.status.success() {
            return None;
        }
        let said: Vec<&String> = self
            .lines
            .iter()
            .filter(|l| l.contains("anomaly"))
            .collect();
        // The panic message, not the backtrace under it.
        let panic = match self.stderr.find("panicked at") {
            Some(at) => self.stderr[at..]
                .lines()
                .take(4)
                .collect::<Vec<_>>()
                .join("\n"),
            None => tail(&self.stderr, 2000).to_string(),
        };
        Some(format!(
            "child ended with {}: {said:?}\nstderr: {panic}",
            self.status
        ))
    }
}

fn tail(text: &str, chars: usize) -> &str {
    let start = text.len().saturating_sub(chars);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(start);
    &text[start..]
}

/// The child process, killed (SIGKILL) and reaped when dropped, also if the test fails.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the test binary's child test on `dir` with `scenario` and `seed`, kills it at `kill`
/// (SIGKILL), and returns what it printed. A child that ends before the kill is reaped as is.
pub fn run_child(scenario: &str, dir: &Path, seed: u64, kill: KillAt) -> RunOutcome {
    let stderr_file = dir.with_extension("stderr");
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir)
            .env(CHILD_SCENARIO, scenario)
            .env(CHILD_SEED, seed.to_string())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_file).unwrap())
            .spawn()
            .unwrap(),
    );
    let (sender, lines) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if parse(&line).is_some() && sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let started = Instant::now();
    let (killed, ready_after) = wait_and_kill(&mut child.0, &lines, &mut printed, kill);
    let status = child.0.wait().unwrap();
    let ran = started.elapsed();
    reader.join().unwrap();
    printed.extend(lines.try_iter());
    let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
    let _ = std::fs::remove_file(&stderr_file);
    RunOutcome {
        lines: printed,
        status,
        killed,
        stderr,
        ready_after,
        ran,
    }
}

/// Collects the child's lines until the kill moment, then kills it; returns whether it killed
/// it (false when the child ended first) and how long it took to say `ready`. Waits for
/// `ready` however slow the machine.
fn wait_and_kill(
    child: &mut Child,
    lines: &mpsc::Receiver<String>,
    printed: &mut Vec<String>,
    kill: KillAt,
) -> (bool, Option<Duration>) {
    let started = Instant::now();
    let mut ready_at: Option<(Instant, usize)> = None;
    loop {
        // Every line already read first: a child printing fast must not outrun the count.
        while let Ok(line) = lines.try_recv() {
            if ready_at.is_none() && parse(&line) == Some(vec!["ready"]) {
                ready_at = Some((Instant::now(), printed.len() + 1));
            }
            printed.push(line);
            if kill_due(ready_at, printed.len(), kill) {
                let _ = child.kill();
                return (true, ready_after(started, ready_at));
            }
        }
        if kill_due(ready_at, printed.len(), kill) {
            let _ = child.kill();
            return (true, ready_after(started, ready_at));
        }
        if let Ok(Some(_)) = child.try_wait() {
            return (false, ready_after(started, ready_at));
        }
        assert!(
            ready_at.is_some() || started.elapsed() < Duration::from_secs(180),
            "the child did not start"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn ready_after(started: Instant, ready_at: Option<(Instant, usize)>) -> Option<Duration> {
    ready_at.map(|(at, _)| at.duration_since(started))
}

fn kill_due(ready_at: Option<(Instant, usize)>, printed: usize, kill: KillAt) -> bool {
    let Some((at, index)) = ready_at else {
        return false;
    };
    match kill {
        KillAt::After(delay) => at.elapsed() >= delay,
        KillAt::Lines(count) => (printed - index) as u64 >= count,
    }
}

/// Copies the folder `from` to `to` (which must not exist): the checks open the copy, so the
/// next child meets exactly what the killed one left, not what the checks did to it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The disk space the files under `dir` take: blocks, not lengths, since the embedded store's
/// journals are sparse files of a fixed length.
pub fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map_while(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_size(&entry.path()),
            _ => entry.metadata().map(|m| m.blocks() * 512).unwrap_or(0),
        })
        .sum()
}

/// A fresh folder path under the system temporary folder.
pub fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "tito-crash-{name}-{}",
        tito::DBUuid::new_v4().simple()
    ))
}

/// A `u64` from environment variable `name` (decimal or `0x` hex), or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{name}={text} is not a number"))
        }
        Err(_) => default,
    }
}
