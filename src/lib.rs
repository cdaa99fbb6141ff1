//! # tito
//!
//! A record layer over transactional, ordered key-value stores. Derive (or implement)
//! [`TitoModelTrait`](types::TitoModelTrait) on a serde struct and get secondary indexes
//! (composite, conditional, multi-valued, unique), relationship hydration, ACID transactions, a
//! typed query builder with cursors, and a durable partitioned event queue whose events commit
//! with the data.
//!
//! It runs embedded with no server ([`Embedded`]) and on TiKV (`TiKV`, feature `tikv`)
//! when one machine is not enough; [`AnyBackend`] picks one of them from the environment at
//! start-up (`TITO_TIKV_PD`).
//!
//! ## Models
//!
//! `#[derive(TitoModel)]` generates the model configuration from attributes (every attribute is
//! listed on [`TitoModel`](derive@TitoModel)), plus a typed query constructor per index and a
//! constant per relationship, so a misspelled index or a value of the wrong type does not
//! compile. The string-based API of tito 0.2.0 keeps working on derived models.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use tito::prelude::*;
//!
//! #[derive(Debug, Clone, Default, Serialize, Deserialize, TitoModel)]
//! #[tito(table = "tags")]
//! struct Tag {
//!     #[tito(id)]
//!     id: String,
//!     name: String,
//! }
//!
//! #[derive(Debug, Clone, Default, Serialize, Deserialize)]
//! struct Comment {
//!     author_id: String,
//!     text: String,
//! }
//!
//! #[derive(Debug, Clone, Default, Serialize, Deserialize, TitoModel)]
//! #[tito(table = "posts", events("post"), partition_key = author_id)]
//! struct Post {
//!     #[tito(id)]
//!     id: String,
//!     #[tito(index)] // the index `author_id`
//!     author_id: String,
//!     #[tito(unique)] // the index `slug`, one post per value
//!     slug: String,
//!     #[tito(index(name = "by_category_date", position = 0))]
//!     category: String,
//!     #[tito(index(name = "by_category_date", position = 1))]
//!     published_at: i64,
//!     #[tito(index(name = "by_live_status", condition = Post::is_live))]
//!     status: String,
//!     #[tito(index)] // `None` is not indexed
//!     rating: Option<u8>,
//!     #[tito(index(name = "by_commenter", path = "author_id", ty = String))]
//!     comments: Vec<Comment>,
//!     #[tito(index, relation(model = Tag, into = tags))] // one entry per tag id
//!     tag_ids: Vec<String>,
//!     #[serde(default)]
//!     tags: Vec<Tag>, // filled on request, never stored
//! }
//!
//! impl Post {
//!     fn is_live(&self) -> bool {
//!         self.status == "live"
//!     }
//! }
//!
//! # async fn run() -> Result<(), TitoError> {
//! let db = Embedded::open("./data").await?;
//! let posts = db.clone().model::<Post>();
//! let post = Post {
//!     id: DBUuid::new_v4().to_string(),
//!     author_id: "ann".into(),
//!     slug: "hello".into(),
//!     category: "rust".into(),
//!     published_at: 20250102,
//!     tag_ids: vec!["t1".into()],
//!     ..Post::default()
//! };
//! db.transaction(|tx| {
//!     let posts = posts.clone();
//!     async move { posts.build(post, &tx).await }
//! })
//! .await?;
//!
//! // Typed: `value` takes the field's type, in index order, then at most one range.
//! let page = Post::by_category_date(&posts)
//!     .value("rust")
//!     .gte(20250101)
//!     .relationship(Post::TAGS)
//!     .limit(Some(10))
//!     .execute_reverse()
//!     .await?;
//! // The same query, by name.
//! let same = posts
//!     .query_by_index("by_category_date")
//!     .value("rust")
//!     .gte(20250101)
//!     .relationship("tags")
//!     .limit(Some(10))
//!     .execute_reverse()
//!     .await?;
//! assert_eq!(page.items.len(), same.items.len());
//! let by_slug = Post::by_slug(&posts).value("hello").execute().await?;
//! assert_eq!(by_slug.items.len(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! ## Model versions
//!
//! A change JSON cannot absorb (a field's type) takes a model version. Keep the old struct
//! under another name; the new one reads what the old one wrote through `From`, writes its own
//! version, and [`TitoModel::migrate`] rewrites the rest in the background.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use tito::prelude::*;
//!
//! #[derive(Debug, Clone, Default, Serialize, Deserialize, TitoModel)]
//! #[tito(table = "posts")]
//! struct PostV1 {
//!     #[tito(id)]
//!     id: String,
//!     views: String,
//! }
//!
//! #[derive(Debug, Clone, Default, Serialize, Deserialize, TitoModel)]
//! #[tito(table = "posts", version = 2, from = PostV1)]
//! struct Post {
//!     #[tito(id)]
//!     id: String,
//!     #[tito(index)]
//!     views: u64,
//! }
//!
//! impl From<PostV1> for Post {
//!     fn from(old: PostV1) -> Self {
//!         Post { id: old.id, views: old.views.parse().unwrap_or(0) }
//!     }
//! }
//!
//! # async fn run() -> Result<(), TitoError> {
//! let db = Embedded::open("./data").await?;
//! let posts = db.clone().model::<Post>();
//! // Records `PostV1` wrote arrive converted.
//! let old: Option<Post> = Post::get(&posts, "p1").await?;
//! // Rewrites them as version 2 and builds the `views` index they lack.
//! let done = posts.migrate(500, |p| eprintln!("{} records", p.records)).await?;
//! assert!(done.migrated <= done.records);
//! # let _ = old;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

#[cfg(feature = "tikv")]
pub use tito_core::TiKV;
pub use tito_core::query::{CursorKeys, End, Field, QueryArg, Relation, TextField, TypedQuery};
pub use tito_core::{
    AnyBackend, Backend, BackendTx, Durability, Embedded, IndexQuery, KeyRange, QueryValue,
    ReindexProgress, RetryPolicy, TitoEngine, TitoError, TitoEvent, TitoModel, TitoOperation,
    TitoOptions, TitoPage, TitoTransaction, TxKind, VerifyReport, backend, codec, inspect,
    keyspace,
};
pub use tito_derive::TitoModel;

/// The model trait and configuration types at the root too, where tito 0.2.0 programs may look.
pub use tito_core::model::{
    TitoEmbeddedRelationshipConfig, TitoEventConfig, TitoHasManyConfig, TitoIndexBlockType,
    TitoIndexConfig, TitoIndexField, TitoModelTrait,
};
pub use tito_queue::PartitionConfig;

/// A uuid, for record ids (`DBUuid::new_v4()`).
pub use uuid::Uuid as DBUuid;

/// A boxed, sendable future: the return type of queue handlers.
pub use tito_queue::BoxFuture;

/// The sizes tito refuses past, each with a typed error before anything is written.
pub mod limits {
    pub use tito_core::event::MAX_EVENT_LEN;
    pub use tito_core::model::storable::MAX_DEPTH;
    pub use tito_core::query::{MAX_HYDRATED_LEN, MAX_PAGE_LEN};
    pub use tito_core::txn::{MAX_KEY_LEN, MAX_VALUE_LEN};
    pub use tito_queue::{LONGEST_DELAY, MAX_ERROR_LEN};
}

/// Model configuration types, as tito 0.2.0 named them.
pub mod types {
    pub use crate::DBUuid;
    pub use tito_core::event::{PARTITIONS, partition_of};
    pub use tito_core::model::{
        IndexComponent, IndexedValues, TitoEmbeddedRelationshipConfig, TitoEventConfig,
        TitoHasManyConfig, TitoIndexBlockType, TitoIndexConfig, TitoIndexField, TitoIndexGenerator,
        TitoIndexValue, TitoModelTrait,
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
        AnyBackend, BoxFuture, DBUuid, Embedded, Relation, TitoError, TitoModel, TitoOperation,
        TitoOptions, TitoPage, TypedQuery,
    };
}

/// The README's quick start, compiled as a doctest so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[doc(hidden)]
pub mod __private {
    pub use serde_json;
    pub use tito_core::model::RecordShape;
    pub use tito_core::model::component::{combine_components, number_component, string_component};
    pub use tito_core::model::derived::{
        Fanout, Hop, VersionField, push_components, push_index, read_versioned, relation_source,
        table_of, typed_entries,
    };
    pub use tito_core::query::{End, Field, QueryArg, Relation, TypedQuery};
    pub use tito_core::{
        Backend, IndexComponent, IndexedValues, TitoEmbeddedRelationshipConfig, TitoError,
        TitoEventConfig, TitoHasManyConfig, TitoIndexConfig, TitoIndexField, TitoModel,
        TitoModelTrait,
    };
}

/// The web dashboard: tables, records, indexes and queues in a browser (feature `web`).
#[cfg(feature = "web")]
pub mod web;
