//! `tito`: inspect a tito database folder from the command line: tables, records, index
//! entries, and the queue's lag, checkpoints and dead letters.
//!
//! Run `tito --help` for the commands. It opens the database itself, so stop the application
//! using the folder first (the embedded engine allows one process per folder).

use std::process::ExitCode;

use tito::queue::{DEFAULT_GROUP, TitoQueue};
use tito::{Embedded, TitoError};

const USAGE: &str = "\
usage: tito <database folder> <command> [arguments]

commands:
  tables                                  tables and their record counts
  records <table> [--limit N] [--after ID] records as JSON lines (default limit 20)
  get <table> <id>                        one record as JSON
  index <table> <index> [--limit N]       index entries: values -> record id
  schema [table]                          registered indexes: fields, uniqueness, state
  verify <table>                          checks index entries against the registry
                                          (exit status 1 when inconsistent)
  reindex <table>                         removes orphan entries, rebuilds the registered
                                          indexes and marks them readable (writes)
  lag <event type> [group]                pending and retrying events per partition
  checkpoints <event type> [group]        progress per partition
  dead <event type> [group] [--limit N]   dead letters with their errors
  replay <event type> [group]             puts every dead letter back in the queue
";

/// A command line that could not be understood.
struct Usage(String);

/// Positional arguments and `--limit` / `--after` options of one command.
struct Args {
    positional: Vec<String>,
    limit: usize,
    after: Option<String>,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Args, Usage> {
    let mut parsed = Args {
        positional: Vec::new(),
        limit: 20,
        after: None,
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--limit" => {
                let value = args.next().ok_or(Usage("--limit needs a number".into()))?;
                parsed.limit = value
                    .parse()
                    .map_err(|_| Usage(format!("--limit: `{value}` is not a number")))?;
            }
            "--after" => {
                parsed.after = Some(args.next().ok_or(Usage("--after needs an id".into()))?);
            }
            "-h" | "--help" => return Err(Usage(String::new())),
            other if other.starts_with("--") => {
                return Err(Usage(format!("unknown option `{other}`")));
            }
            _ => parsed.positional.push(arg),
        }
    }
    Ok(parsed)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(Usage(problem)) => {
            if !problem.is_empty() {
                eprintln!("tito: {problem}");
            }
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(problem)) => {
            eprintln!("tito: {problem}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Tito(e)) => {
            eprintln!("tito: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Inconsistent) => {
            eprintln!(
                "tito: index entries are out of step; `tito <folder> reindex <table>` rebuilds them"
            );
            ExitCode::FAILURE
        }
    }
}

enum Failure {
    Usage(String),
    Tito(TitoError),
    /// `verify` found entries out of step.
    Inconsistent,
}

impl From<TitoError> for Failure {
    fn from(e: TitoError) -> Self {
        Failure::Tito(e)
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let [path, command, rest @ ..] = args.positional.as_slice() else {
        return Err(Failure::Usage(
            "a database folder and a command are needed".into(),
        ));
    };
    if !std::path::Path::new(path).is_dir() {
        return Err(Failure::Usage(format!("`{path}` is not a database folder")));
    }
    let db = Embedded::open(path).await?;
    let group = |at: usize| rest.get(at).map_or(DEFAULT_GROUP, String::as_str);
    match (command.as_str(), rest) {
        ("tables", []) => {
            for stats in db.tables().await? {
                println!("{}\t{}", stats.table, stats.records);
            }
        }
        ("records", [table]) => {
            for (_, record) in db
                .raw_records(table, args.after.as_deref(), args.limit)
                .await?
            {
                println!("{record}");
            }
        }
        ("get", [table, id]) => {
            let record = db
                .raw_record(table, id)
                .await?
                .ok_or_else(|| TitoError::NotFound(format!("`{table}` record `{id}`")))?;
            println!("{record:#}");
        }
        ("index", [table, index]) => {
            for entry in db.raw_index_entries(table, index, args.limit).await? {
                println!("{}\t{}", entry.values, entry.id);
            }
        }
        ("schema", tables) => {
            let schemas = match tables {
                [] => db.table_schemas().await?,
                [table] => vec![(table.clone(), db.table_schema(table).await?)],
                _ => return Err(Failure::Usage("schema takes at most one table".into())),
            };
            for (table, schema) in schemas {
                for index in schema.indexes {
                    let fields: Vec<String> = (index.fields.iter())
                        .map(|(name, kind)| format!("{name}:{kind}"))
                        .collect();
                    let unique = if index.unique { "unique" } else { "-" };
                    let state = format!("{:?}", index.state).to_lowercase();
                    println!(
                        "{table}\t{}\t{}\t{unique}\t{state}",
                        index.name,
                        fields.join(",")
                    );
                }
            }
        }
        ("verify", [table]) => {
            let report = db.verify_table(table).await?;
            println!(
                "records {}\tentries {}\tmissing {}\torphans {}\tstale manifests {}\tunchecked {}",
                report.records,
                report.entries,
                report.missing,
                report.orphans,
                report.stale_manifests,
                report.unchecked
            );
            for sample in &report.samples {
                println!("  {sample}");
            }
            if !report.is_consistent() {
                return Err(Failure::Inconsistent);
            }
        }
        ("reindex", [table]) => {
            let (orphans, done) = db
                .reindex_table(table, 500, |p| eprintln!("{} records", p.records))
                .await?;
            println!(
                "orphans removed {orphans}\trecords {}\tentries added {}\tremoved {}",
                done.records, done.added, done.removed
            );
        }
        ("lag", [event_type, ..]) => {
            let queue = TitoQueue::new(db.clone());
            for lag in queue.lag(event_type, group(1)).await? {
                println!(
                    "partition {}\tpending {}\tretrying {}\toldest {:?}",
                    lag.partition, lag.pending, lag.retrying, lag.oldest_age
                );
            }
        }
        ("checkpoints", [event_type, ..]) => {
            let queue = TitoQueue::new(db.clone());
            for c in queue.checkpoints(event_type, group(1)).await? {
                println!(
                    "partition {}\thandled {}\tdead {}\tlast event {}",
                    c.partition, c.handled, c.dead_lettered, c.last_event_id
                );
            }
        }
        ("dead", [event_type, ..]) => {
            let queue = TitoQueue::new(db.clone());
            for dead in queue.dead_letters(event_type, group(1), args.limit).await? {
                let event = &dead.event;
                println!(
                    "{}\t{} {}\tattempts {}\t{}",
                    event.id, event.action, event.entity, dead.attempts, dead.error
                );
            }
        }
        ("replay", [event_type, ..]) => {
            let queue = TitoQueue::new(db.clone());
            let replayed = queue.replay_dead_letters(event_type, group(1)).await?;
            println!("replayed {replayed} dead letters");
        }
        (other, _) => {
            return Err(Failure::Usage(format!(
                "unknown command `{other}` or wrong arguments"
            )));
        }
    }
    Ok(())
}
