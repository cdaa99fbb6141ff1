//! `tito-bench`: runs the benchmark and prints its report; `tito-bench child ..` is the
//! per-system worker process the driver starts.

use std::path::PathBuf;
use std::process::ExitCode;

use tito_bench::data::Plan;
use tito_bench::system::Result;
use tito_bench::systems::Kind;
use tito_bench::{calls, chart, driver, queue, report};
use tito_core::Durability;

const USAGE: &str = "usage: tito-bench [--large] [--rows N] [--ops N] [--rounds N] [--sync]
                  [--systems tito,raw,sqlite,native_db] [--chart PATH | --no-chart]
                  [--markdown PATH] [--no-queue]

  --large      1,000,000 rows instead of 10,000
  --rows N     rows loaded (default 10000)
  --ops N      operations per single-record workload (default 10000, at most the rows)
  --rounds N   alternation rounds per workload (default 5)
  --sync       fsync at every commit (tito Durability::Sync, SQLite synchronous=FULL)
  --chart      where the SVG chart goes (default docs/bench-ratios.svg)
  --markdown   also write the report to this file
  --no-queue   skip the queue workload (tito and raw only)";

struct Options {
    rows: u64,
    ops: u64,
    rounds: u64,
    durability: Durability,
    kinds: Vec<Kind>,
    chart: Option<PathBuf>,
    markdown: Option<PathBuf>,
    queue: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        rows: 10_000,
        ops: 10_000,
        rounds: 5,
        durability: Durability::Buffered,
        kinds: Kind::ALL.to_vec(),
        chart: Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/bench-ratios.svg"
        ))),
        markdown: None,
        queue: true,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--large" => o.rows = 1_000_000,
            "--rows" => o.rows = value()?.parse()?,
            "--ops" => o.ops = value()?.parse()?,
            "--rounds" => o.rounds = value()?.parse()?,
            "--sync" => o.durability = Durability::Sync,
            "--systems" => {
                o.kinds = value()?
                    .split(',')
                    .map(|k| Kind::from_key(k).ok_or_else(|| format!("unknown system {k}")))
                    .collect::<std::result::Result<_, _>>()?;
                if o.kinds.first() != Some(&Kind::Tito) {
                    return Err("--systems must start with tito".into());
                }
            }
            "--chart" => o.chart = Some(value()?.into()),
            "--no-chart" => o.chart = None,
            "--markdown" => o.markdown = Some(value()?.into()),
            "--no-queue" => o.queue = false,
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    Ok(o)
}

/// The CPU model, core count and memory, from /proc.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: u64 = mem
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    format!(
        "{model}, {cores} cores, {:.0} GiB RAM",
        kib as f64 / 1024.0 / 1024.0
    )
}

fn run(o: Options) -> Result<()> {
    let plan = Plan::new(o.rows, o.ops);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let counted = runtime.block_on(calls::count())?;
    let measured = driver::measure(plan, o.durability, &o.kinds, o.rounds)?;
    let queued = if o.queue {
        eprintln!("queue: publish then drain, tito and raw alternated ...");
        Some(runtime.block_on(queue::measure(&plan, o.durability, 3))?)
    } else {
        None
    };
    let mut text = format!("Machine: {}.\n\n", machine());
    text.push_str(&report::markdown(&measured));
    text.push_str("\n#### Backend calls per tito operation (Counting wrapper)\n\n");
    text.push_str(&calls::markdown(&counted));
    if let Some(queued) = &queued {
        text.push_str("\n#### Queue: publish, then handle and acknowledge\n\n");
        text.push_str(&queue::markdown(queued));
    }
    println!("{text}");
    if let Some(path) = &o.markdown {
        std::fs::write(path, &text)?;
    }
    if let Some(path) = &o.chart {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, chart::svg(&measured))?;
        eprintln!("chart written to {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("child") => driver::serve_args(&args[1..]),
        Some("--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => parse(&args).and_then(run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tito-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
