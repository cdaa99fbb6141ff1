//! Core of tito: storage backends, the order-preserving key codec, the keyspace layout, models,
//! index maintenance, queries, relationships, events and transactions.
//!
//! Most users depend on the `tito` facade crate instead, which re-exports this crate.

#![warn(missing_docs)]

pub mod backend;
pub mod codec;
pub mod engine;
pub mod error;
pub mod event;
mod foreign;
pub mod inspect;
pub mod keyspace;
pub mod model;
pub mod observe;
pub mod ops;
mod plan;
pub mod query;
pub mod registered;
pub mod registry;
pub mod reindex;
mod relation;
pub mod txn;
mod upgrade;

#[cfg(feature = "tikv")]
pub use backend::TiKV;
pub use backend::{AnyBackend, Backend, BackendTx, Durability, Embedded, KeyRange, KvPair, TxKind};
pub use engine::TitoEngine;
pub use error::{Result, TitoError};
pub use event::{TitoEvent, TitoOperation, TitoOptions};
pub use model::{
    IndexComponent, IndexedValues, TitoEmbeddedRelationshipConfig, TitoEventConfig,
    TitoHasManyConfig, TitoIndexBlockType, TitoIndexConfig, TitoIndexField, TitoIndexGenerator,
    TitoIndexValue, TitoModelTrait,
};
pub use ops::TitoModel;
pub use query::{IndexQuery, QueryValue, TitoPage};
pub use reindex::{ReindexProgress, VerifyReport};
pub use txn::{RetryPolicy, TitoTransaction};
pub use uuid::Uuid as DBUuid;
