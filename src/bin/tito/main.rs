//! `tito`: inspect and repair a tito database from the command line: tables, records, index
//! entries, schemas, index health, and the queue's lag, checkpoints and dead letters.
//!
//! Run `tito --help` for the commands. On a folder it opens the database itself, so stop the
//! application using it first (the embedded engine allows one process per folder). It never
//! creates a database, and only `reindex`, `replay` and `serve --allow-replay` write.

mod args;
mod output;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use serde_json::{Value, json};
use tito::queue::TitoQueue;
use tito::{AnyBackend, Embedded, TitoEngine, TitoError};

use args::{Cli, Command, Queue, Target};
use output::{Progress, Table, age, bytes, print_json};

type Db = TitoEngine<AnyBackend>;

/// Why a command did not succeed; each has its exit status.
enum Failure {
    /// No tito database at the target (3).
    NoDatabase(TitoError),
    /// A table, record or schema asked for does not exist (4).
    NotFound(String),
    /// `verify` found entries out of step (5).
    Inconsistent,
    /// Anything else the database reported (1).
    Tito(TitoError),
    /// The dashboard could not listen or stopped serving (1).
    Serve(tito::web::WebError),
}

impl From<TitoError> for Failure {
    fn from(e: TitoError) -> Self {
        match e {
            TitoError::NotFound(what) => Failure::NotFound(what),
            e => Failure::Tito(e),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::NoDatabase(e)) => {
            eprintln!("tito: {e}");
            ExitCode::from(3)
        }
        Err(Failure::NotFound(what)) => {
            eprintln!("tito: not found: {what}");
            ExitCode::from(4)
        }
        Err(Failure::Inconsistent) => {
            eprintln!("tito: index entries are out of step; `tito reindex` rebuilds them");
            ExitCode::from(5)
        }
        Err(Failure::Tito(e)) => {
            eprintln!("tito: {e}");
            ExitCode::FAILURE
        }
        Err(Failure::Serve(e)) => {
            eprintln!("tito: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the database `target` names, refusing anything that holds no tito database.
async fn open(target: &Target) -> Result<Db, Failure> {
    let backend: AnyBackend = match (target.folder(), target.pd()) {
        (Some(folder), _) => {
            let builder = Embedded::builder(folder).create(false);
            builder.open_backend().map_err(no_database)?.into()
        }
        (None, pd) => connect(&pd.unwrap_or_default()).await?,
    };
    TitoEngine::existing(backend).await.map_err(no_database)
}

/// An error opening the database: `NotFound` there means no database.
fn no_database(e: TitoError) -> Failure {
    match e {
        TitoError::NotFound(_) => Failure::NoDatabase(e),
        e => Failure::Tito(e),
    }
}

#[cfg(feature = "tikv")]
async fn connect(pd: &[String]) -> Result<AnyBackend, Failure> {
    let config = tito::backend::tikv::TiKVConfig::default();
    Ok(tito::TiKV::connect_backend(pd.to_vec(), config)
        .await?
        .into())
}

#[cfg(not(feature = "tikv"))]
async fn connect(_pd: &[String]) -> Result<AnyBackend, Failure> {
    let message = "a tikv:// database needs a tito built with feature `tikv`";
    Cli::command()
        .error(clap::error::ErrorKind::InvalidValue, message)
        .exit()
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Completions { shell } => {
            let mut cli = Cli::command();
            clap_complete::generate(shell, &mut cli, "tito", &mut std::io::stdout());
        }
        Command::Tables { target, format } => {
            let db = open(&target).await?;
            let mut table = Table::new(&["TABLE", "RECORDS"]);
            for stats in db.tables().await? {
                table.row(vec![stats.table.into(), stats.records.into()]);
            }
            table.print(format.json);
        }
        Command::Stats { target, format } => {
            let db = open(&target).await?;
            let mut table = Table::new(&["TABLE", "PART", "KEYS", "BYTES"]);
            let size = |n: u64| -> Value {
                if format.json {
                    n.into()
                } else {
                    bytes(n).into()
                }
            };
            for stats in db.tables().await? {
                let usage = db.table_usage(&stats.table).await?;
                let mut parts = vec![
                    ("records".to_string(), usage.records),
                    ("manifests".to_string(), usage.manifests),
                ];
                for index in usage.indexes {
                    let kind = if index.unique {
                        "unique index"
                    } else {
                        "index"
                    };
                    parts.push((format!("{kind} {}", index.index), index.entries));
                }
                for (part, used) in parts {
                    let row = vec![
                        usage.table.clone().into(),
                        part.into(),
                        used.keys.into(),
                        size(used.bytes),
                    ];
                    table.row(row);
                }
            }
            table.print(format.json);
        }
        Command::Records {
            target,
            table,
            limit,
            after,
            format,
        } => {
            let db = open(&target).await?;
            let records = db.raw_records(&table, after.as_deref(), limit).await?;
            if format.json {
                print_json(&Value::Array(
                    records.iter().map(|(_, r)| r.clone()).collect(),
                ));
            } else {
                for (_, record) in &records {
                    println!("{record}");
                }
            }
            if let Some((last, _)) = records.last().filter(|_| records.len() == limit) {
                eprintln!("next page: --after {last}");
            }
        }
        Command::Get { target, table, id } => {
            let db = open(&target).await?;
            let record = db.raw_record(&table, &id).await?;
            let record =
                record.ok_or_else(|| Failure::NotFound(format!("`{table}` record `{id}`")))?;
            print_json(&record);
        }
        Command::Index {
            target,
            table,
            index,
            limit,
            format,
        } => {
            let db = open(&target).await?;
            let mut out = Table::new(&["VALUES", "ID"]);
            for entry in db.raw_index_entries(&table, &index, limit).await? {
                out.row(vec![entry.values.into(), entry.id.into()]);
            }
            out.print(format.json);
        }
        Command::Schema {
            target,
            table,
            format,
        } => {
            let db = open(&target).await?;
            let schemas = match table {
                None => db.table_schemas().await?,
                Some(table) => vec![(table.clone(), db.table_schema(&table).await?)],
            };
            let mut out = Table::new(&["TABLE", "VERSION", "INDEX", "FIELDS", "UNIQUE", "STATE"]);
            for (table, schema) in schemas {
                for index in schema.indexes {
                    let fields: Vec<String> = (index.fields.iter())
                        .map(|(name, kind)| format!("{name}:{kind}"))
                        .collect();
                    let state = format!("{:?}", index.state).to_lowercase();
                    out.row(vec![
                        table.clone().into(),
                        schema.model_version.into(),
                        index.name.into(),
                        fields.join(",").into(),
                        index.unique.into(),
                        state.into(),
                    ]);
                }
            }
            out.print(format.json);
        }
        Command::Verify {
            target,
            table,
            format,
        } => {
            let db = open(&target).await?;
            let mut progress = records_progress(&db, "verify", &table).await?;
            let report = db
                .verify_table_with(&table, |so_far| progress.at(so_far.records))
                .await?;
            progress.finish(report.records);
            let mut out = Table::new(&[
                "TABLE",
                "RECORDS",
                "ENTRIES",
                "MISSING",
                "ORPHANS",
                "STALE MANIFESTS",
                "UNCHECKED",
                "CONSISTENT",
            ]);
            out.row(vec![
                table.into(),
                report.records.into(),
                report.entries.into(),
                report.missing.into(),
                report.orphans.into(),
                report.stale_manifests.into(),
                report.unchecked.into(),
                report.is_consistent().into(),
            ]);
            out.print(format.json);
            for sample in &report.samples {
                eprintln!("  {sample}");
            }
            if !report.is_consistent() {
                return Err(Failure::Inconsistent);
            }
        }
        Command::Reindex {
            target,
            table,
            batch,
            format,
        } => {
            let db = open(&target).await?;
            let mut progress = records_progress(&db, "reindex", &table).await?;
            let (orphans, done) = db
                .reindex_table(&table, batch.max(1), |p| progress.at(p.records))
                .await?;
            progress.finish(done.records);
            let mut out = Table::new(&[
                "TABLE",
                "ORPHANS REMOVED",
                "RECORDS",
                "ENTRIES ADDED",
                "ENTRIES REMOVED",
                "SKIPPED",
            ]);
            out.row(vec![
                table.into(),
                orphans.into(),
                done.records.into(),
                done.added.into(),
                done.removed.into(),
                done.skipped.into(),
            ]);
            out.print(format.json);
        }
        Command::Lag(q) => {
            let lag = queue(&q).await?.lag(&q.event_type, &q.group).await?;
            let mut out = Table::new(&["PARTITION", "PENDING", "RETRYING", "OLDEST"]);
            for l in lag {
                let oldest: Value = if q.format.json {
                    json!(l.oldest_age.as_millis() as u64)
                } else {
                    age(l.oldest_age).into()
                };
                out.row(vec![
                    l.partition.into(),
                    l.pending.into(),
                    l.retrying.into(),
                    oldest,
                ]);
            }
            out.print(q.format.json);
        }
        Command::Checkpoints(q) => {
            let checkpoints = queue(&q)
                .await?
                .checkpoints(&q.event_type, &q.group)
                .await?;
            let mut out = Table::new(&["PARTITION", "HANDLED", "DEAD", "LAST EVENT"]);
            for c in checkpoints {
                out.row(vec![
                    c.partition.into(),
                    c.handled.into(),
                    c.dead_lettered.into(),
                    c.last_event_id.into(),
                ]);
            }
            out.print(q.format.json);
        }
        Command::Dead { queue: q, limit } => {
            let dead = (queue(&q).await?)
                .dead_letters(&q.event_type, &q.group, limit)
                .await?;
            let mut out = Table::new(&["ID", "ACTION", "ENTITY", "ATTEMPTS", "ERROR"]);
            for letter in dead {
                let event = letter.event;
                out.row(vec![
                    event.id.into(),
                    event.action.to_string().into(),
                    event.entity.into(),
                    letter.attempts.into(),
                    letter.error.into(),
                ]);
            }
            out.print(q.format.json);
        }
        Command::Serve {
            target,
            port,
            bind,
            allow_replay,
        } => {
            let db = open(&target).await?;
            let options = tito::web::WebOptions::new().allow_replay(allow_replay);
            let listener = tokio::net::TcpListener::bind((bind, port))
                .await
                .map_err(|e| Failure::Serve(e.into()))?;
            let at = listener
                .local_addr()
                .map_err(|e| Failure::Serve(e.into()))?;
            let writes = if allow_replay {
                "replay enabled"
            } else {
                "read-only"
            };
            eprintln!("tito: dashboard at http://{at}/ ({writes}); Ctrl-C stops it");
            (tito::web::serve(db, options, listener).await).map_err(Failure::Serve)?;
        }
        Command::Replay(q) => {
            let mut progress = Progress::new("replay", "dead letters", 0);
            let replayed = (queue(&q).await?)
                .replay_dead_letters_with(&q.event_type, &q.group, |so_far| {
                    progress.at(so_far as u64)
                })
                .await?;
            progress.finish(replayed as u64);
            let mut out = Table::new(&["REPLAYED"]);
            out.row(vec![replayed.into()]);
            out.print(q.format.json);
        }
    }
    Ok(())
}

/// The queue of the database `q` names.
async fn queue(q: &Queue) -> Result<std::sync::Arc<TitoQueue<AnyBackend>>, Failure> {
    Ok(TitoQueue::new(open(&q.target).await?))
}

/// Progress of work named `what` over the records of `table`.
async fn records_progress(db: &Db, what: &'static str, table: &str) -> Result<Progress, Failure> {
    let records = db.table_usage(table).await?.records.keys;
    Ok(Progress::new(what, "records", records))
}
