//! The four systems under test, and one enum to open and drive any of them by name.

pub mod native;
pub mod raw;
pub mod sqlite;
pub mod tito;

use tito_core::Durability;

use crate::data::Plan;
use crate::system::{self, Result, SliceResult, System, Workload};

/// Which system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// tito on the embedded backend.
    Tito,
    /// The bare embedded backend writing tito's keys.
    Raw,
    /// SQLite (rusqlite, WAL).
    Sqlite,
    /// native_db (redb).
    NativeDb,
}

impl Kind {
    /// Every system, tito first.
    pub const ALL: [Kind; 4] = [Kind::Tito, Kind::Raw, Kind::Sqlite, Kind::NativeDb];

    /// The name used on the command line and in tables.
    pub fn key(self) -> &'static str {
        match self {
            Kind::Tito => "tito",
            Kind::Raw => "raw",
            Kind::Sqlite => "sqlite",
            Kind::NativeDb => "native_db",
        }
    }

    /// Parses [`key`](Self::key).
    pub fn from_key(key: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.key() == key)
    }

    /// Whether this system's commits fsync at the given run durability.
    pub fn fsyncs(self, durability: Durability) -> bool {
        self == Kind::NativeDb || durability == Durability::Sync
    }
}

/// An opened system of any kind.
pub enum AnySystem {
    /// tito.
    Tito(tito::Tito),
    /// The raw backend.
    Raw(raw::Raw),
    /// SQLite.
    Sqlite(sqlite::Sqlite),
    /// native_db.
    NativeDb(native::NativeDb),
}

impl AnySystem {
    /// Opens a fresh, empty database of `kind` at `durability`.
    pub async fn open(kind: Kind, durability: Durability) -> Result<Self> {
        Ok(match kind {
            Kind::Tito => AnySystem::Tito(tito::Tito::open(durability).await?),
            Kind::Raw => AnySystem::Raw(raw::Raw::open(durability).await?),
            Kind::Sqlite => AnySystem::Sqlite(sqlite::Sqlite::open(durability)?),
            Kind::NativeDb => AnySystem::NativeDb(native::NativeDb::open()?),
        })
    }

    /// Stores the authors every workload needs.
    pub async fn setup(&mut self, plan: &Plan) -> Result<()> {
        match self {
            AnySystem::Tito(s) => system::setup(s, plan).await,
            AnySystem::Raw(s) => system::setup(s, plan).await,
            AnySystem::Sqlite(s) => system::setup(s, plan).await,
            AnySystem::NativeDb(s) => system::setup(s, plan).await,
        }
    }

    /// Reads a post by id.
    pub async fn get(&mut self, id: &str) -> Result<crate::data::Post> {
        match self {
            AnySystem::Tito(s) => s.get(id).await,
            AnySystem::Raw(s) => s.get(id).await,
            AnySystem::Sqlite(s) => s.get(id).await,
            AnySystem::NativeDb(s) => s.get(id).await,
        }
    }

    /// Runs operations `start..end` of `workload`.
    pub async fn run_slice(
        &mut self,
        plan: &Plan,
        workload: Workload,
        start: u64,
        end: u64,
    ) -> Result<SliceResult> {
        match self {
            AnySystem::Tito(s) => system::run_slice(s, plan, workload, start, end).await,
            AnySystem::Raw(s) => system::run_slice(s, plan, workload, start, end).await,
            AnySystem::Sqlite(s) => system::run_slice(s, plan, workload, start, end).await,
            AnySystem::NativeDb(s) => system::run_slice(s, plan, workload, start, end).await,
        }
    }
}
