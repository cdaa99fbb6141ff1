//! The command line's grammar.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;

/// Inspect and repair a tito database: tables, records, indexes, schemas and queues.
#[derive(Debug, Parser)]
#[command(
    name = "tito",
    version,
    after_help = "Exit status: 0 success, 1 error, 2 bad command line, 3 no tito database \
                  there, 4 not found, 5 verify found index entries out of step.\n\
                  Only reindex, replay and serve --allow-replay write; every other command \
                  only reads."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the database is.
#[derive(Debug, Args)]
pub struct Target {
    /// The database folder (stop the application using it first: one process per folder), or
    /// `tikv://` and the PD endpoints of a TiKV cluster, comma-separated
    /// (`tikv://10.0.0.1:2379,10.0.0.2:2379`; needs feature `tikv`).
    #[arg(value_name = "DATABASE")]
    pub database: String,
}

impl Target {
    /// The PD endpoints, if the database is a TiKV cluster.
    pub fn pd(&self) -> Option<Vec<String>> {
        let endpoints = self.database.strip_prefix("tikv://")?;
        Some(endpoints.split(',').map(str::to_string).collect())
    }

    /// The folder, if the database is embedded.
    pub fn folder(&self) -> Option<PathBuf> {
        self.pd().is_none().then(|| PathBuf::from(&self.database))
    }
}

/// Output options of listings.
#[derive(Debug, Args)]
pub struct Format {
    /// JSON instead of a table: one document on standard output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tables and their record counts.
    Tables {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        format: Format,
    },
    /// Records and index entries per table: counts and bytes.
    Stats {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        format: Format,
    },
    /// A page of a table's records in id order, as JSON lines (the next page's `--after` goes
    /// to standard error).
    Records {
        #[command(flatten)]
        target: Target,
        table: String,
        /// Records per page.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Start after this record id.
        #[arg(long)]
        after: Option<String>,
        #[command(flatten)]
        format: Format,
    },
    /// One record as JSON.
    Get {
        #[command(flatten)]
        target: Target,
        table: String,
        id: String,
    },
    /// An index's entries in index order: values and the record each names.
    Index {
        #[command(flatten)]
        target: Target,
        table: String,
        index: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        format: Format,
    },
    /// Registered indexes: fields, uniqueness and state.
    Schema {
        #[command(flatten)]
        target: Target,
        /// Only this table.
        table: Option<String>,
        #[command(flatten)]
        format: Format,
    },
    /// Checks a table's index entries against its registered indexes.
    Verify {
        #[command(flatten)]
        target: Target,
        table: String,
        #[command(flatten)]
        format: Format,
    },
    /// Removes a table's orphan index entries, rebuilds its registered indexes and marks them
    /// readable (writes; safe beside live writers). `repair` is the same command.
    #[command(alias = "repair")]
    Reindex {
        #[command(flatten)]
        target: Target,
        table: String,
        /// Records per transaction.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        #[command(flatten)]
        format: Format,
    },
    /// Pending and retrying events per partition of a consumer group.
    Lag(Queue),
    /// A consumer group's progress per partition.
    Checkpoints(Queue),
    /// A consumer group's dead letters with their errors.
    Dead {
        #[command(flatten)]
        queue: Queue,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Puts every dead letter of a consumer group back in its queue (writes).
    Replay(Queue),
    /// Serves the web dashboard: tables, records, indexes, queue lag and dead letters (reads
    /// only, unless `--allow-replay`).
    Serve {
        #[command(flatten)]
        target: Target,
        /// The port to listen on.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// The address to listen on; the default accepts connections from this machine only.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Let the dead-letter pages replay dead letters (writes).
        #[arg(long)]
        allow_replay: bool,
    },
    /// Prints a completion script for a shell.
    Completions {
        /// The shell.
        shell: Shell,
    },
}

/// A consumer group of an event type in a database, and how to show it.
#[derive(Debug, Args)]
pub struct Queue {
    #[command(flatten)]
    pub target: Target,
    /// The event type.
    pub event_type: String,
    /// The consumer group.
    #[arg(long, default_value = tito::queue::DEFAULT_GROUP)]
    pub group: String,
    #[command(flatten)]
    pub format: Format,
}
