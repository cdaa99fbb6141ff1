//! # tito
//!
//! A record layer over transactional, ordered key-value stores. Derive (or implement)
//! [`TitoModelTrait`] on a serde struct and get secondary indexes (composite, conditional,
//! multi-valued, unique), relationship hydration, ACID transactions, a typed query builder with
//! cursors, and a durable partitioned event queue whose events commit with the data.
//!
//! It runs embedded with no server ([`Embedded`]) and on TiKV ([`TiKV`], feature `tikv`)
//! when one machine is not enough.
//!
//! ```ignore
//! use tito::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Default, Serialize, Deserialize, TitoModel)]
//! #[tito(table = "users")]
//! struct User {
//!     #[tito(id)]
//!     id: String,
//!     #[tito(index, unique)]
//!     email: String,
//!     name: String,
//! }
//!
//! # async fn run() -> Result<(), TitoError> {
//! let db = Embedded::open("./data").await?;
//! let users = db.clone().model::<User>();
//! let user = User { id: DBUuid::new_v4().to_string(), email: "ann@example.com".into(), name: "Ann".into() };
//! db.transaction(|tx| {
//!     let users = users.clone();
//!     async move { users.build(user, &tx).await }
//! })
//! .await?;
//! let found = users.query_by_index("email").value("ann@example.com").execute().await?;
//! assert_eq!(found.items.len(), 1);
//! # Ok(())
//! # }
//! ```

#[cfg(feature = "tikv")]
pub use tito_core::TiKV;
pub use tito_core::query::{End, Field, QueryArg, Relation, TextField, TypedQuery};
pub use tito_core::{
    Backend, BackendTx, Durability, Embedded, IndexQuery, KeyRange, QueryValue, ReindexProgress,
    RetryPolicy, TitoEngine, TitoError, TitoEvent, TitoModel, TitoOperation, TitoOptions, TitoPage,
    TitoTransaction, TxKind, VerifyReport, backend, codec, keyspace,
};
pub use tito_derive::TitoModel;

/// A uuid, for record ids (`DBUuid::new_v4()`).
pub use uuid::Uuid as DBUuid;

/// A boxed, sendable future: the return type of queue handlers.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Model configuration types, as tito 0.2.0 named them.
pub mod types {
    pub use crate::DBUuid;
    pub use tito_core::event::{PARTITIONS, partition_of};
    pub use tito_core::model::{
        IndexComponent, IndexedValues, TitoEmbeddedRelationshipConfig, TitoEventConfig,
        TitoIndexBlockType, TitoIndexConfig, TitoIndexField, TitoIndexGenerator, TitoIndexValue,
        TitoModelTrait,
    };
    pub use tito_core::{TitoEngine, TitoEvent, TitoOperation, TitoOptions, TitoTransaction};
    pub use tito_queue::PartitionConfig;
}

/// The durable event queue and its workers.
pub mod queue {
    pub use tito_queue::*;
}

/// Everything a model file and its callers need: `use tito::prelude::*;`.
pub mod prelude {
    #[cfg(feature = "tikv")]
    pub use crate::TiKV;
    pub use crate::types::*;
    pub use crate::{
        BoxFuture, DBUuid, Embedded, Relation, TitoError, TitoModel, TitoOperation, TitoOptions,
        TitoPage, TypedQuery,
    };
}

#[doc(hidden)]
pub mod __private {
    pub use tito_core::model::component::{combine_components, number_component, string_component};
    pub use tito_core::model::derived::{
        Fanout, Hop, push_components, push_index, relation_source, table_of, typed_entries,
    };
    pub use tito_core::query::{End, Field, Relation, TypedQuery};
    pub use tito_core::{
        Backend, IndexComponent, IndexedValues, TitoEmbeddedRelationshipConfig, TitoError,
        TitoEventConfig, TitoIndexConfig, TitoIndexField, TitoModel, TitoModelTrait,
    };
}
