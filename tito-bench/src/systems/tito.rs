//! tito itself: the models as a user writes them, through the public API.

use std::time::Instant;

use tito_core::backend::{AnyBackend, Backend, Embedded};
use tito_core::model::{
    TitoEmbeddedRelationshipConfig, TitoEventConfig, TitoIndexBlockType, TitoIndexConfig,
    TitoIndexField, TitoModelTrait,
};
use tito_core::{Durability, TitoEngine, TitoModel};

use crate::data::{Author, PAGE, Post};
use crate::system::{Error, Page, Result, System};
use crate::writers::Burst;

/// Table of the posts.
pub const POST_TABLE: &str = "post";
/// Table of the authors.
pub const AUTHOR_TABLE: &str = "author";
/// Index on `(author_id, created_at)`.
pub const BY_AUTHOR: &str = "post-by-author";
/// Index on `(category, created_at)`.
pub const BY_CATEGORY: &str = "post-by-category";

impl TitoModelTrait for Author {
    fn get_id(&self) -> String {
        self.id.clone()
    }

    fn get_table_name(&self) -> String {
        AUTHOR_TABLE.into()
    }
}

fn index(name: &str, first: &str) -> TitoIndexConfig {
    let field = |name: &str, r#type| TitoIndexField {
        name: name.into(),
        r#type,
    };
    TitoIndexConfig {
        condition: true,
        name: name.into(),
        fields: vec![
            field(first, TitoIndexBlockType::String),
            field("created_at", TitoIndexBlockType::Number),
        ],
        custom_generator: None,
    }
}

impl TitoModelTrait for Post {
    fn get_id(&self) -> String {
        self.id.clone()
    }

    fn get_table_name(&self) -> String {
        POST_TABLE.into()
    }

    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        vec![
            index(BY_AUTHOR, "author_id"),
            index(BY_CATEGORY, "category"),
        ]
    }

    fn get_embedded_relationships(&self) -> Vec<TitoEmbeddedRelationshipConfig> {
        vec![TitoEmbeddedRelationshipConfig {
            source_field_name: "author_id".into(),
            destination_field_name: "author".into(),
            model: AUTHOR_TABLE.into(),
        }]
    }

    /// Only writes with events enabled (the queue workload) publish.
    fn events(&self) -> Vec<TitoEventConfig> {
        vec![TitoEventConfig {
            name: crate::queue::EVENT_TYPE.into(),
        }]
    }
}

/// tito on backend `B` (the embedded backend or TiKV, or either wrapped in a call counter).
pub struct Tito<B: Backend = AnyBackend> {
    engine: TitoEngine<B>,
    posts: TitoModel<Post, B>,
    authors: TitoModel<Author, B>,
}

impl Tito<AnyBackend> {
    /// A fresh temporary database at `durability`, or a fresh namespace on TiKV when
    /// `TITO_TIKV_PD` names a cluster.
    pub async fn open(durability: Durability) -> Result<Self> {
        let fallback = Embedded::temporary_builder().durability(durability);
        Ok(Self::on(AnyBackend::from_env(fallback).await?))
    }
}

impl<B: Backend> Tito<B> {
    /// Runs on an opened engine.
    pub fn on(engine: TitoEngine<B>) -> Self {
        Tito {
            posts: engine.clone().model::<Post>(),
            authors: engine.clone().model::<Author>(),
            engine,
        }
    }

    /// The engine (the smoke test compares its contents with the raw system's).
    pub fn engine(&self) -> &TitoEngine<B> {
        &self.engine
    }

    /// The posts model.
    pub fn posts(&self) -> &TitoModel<Post, B> {
        &self.posts
    }
}

impl Tito<AnyBackend> {
    /// Inserts each share of posts, one per transaction, from its own task on a multi-threaded
    /// runtime with a worker per core.
    pub fn concurrent_inserts(&self, shares: Vec<Vec<Post>>) -> Result<Burst> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let t = Instant::now();
            let writers: Vec<_> = shares
                .into_iter()
                .map(|posts| {
                    let (engine, model) = (self.engine.clone(), self.posts.clone());
                    tokio::spawn(async move {
                        let mut nanos = Vec::with_capacity(posts.len());
                        for post in posts {
                            let t = Instant::now();
                            let model = model.clone();
                            engine
                                .transaction(|tx| async move { model.build(post, &tx).await })
                                .await?;
                            nanos.push(t.elapsed().as_nanos() as u64);
                        }
                        Ok::<_, Error>(nanos)
                    })
                })
                .collect();
            let mut per_writer = Vec::with_capacity(writers.len());
            for writer in writers {
                per_writer.push(writer.await??);
            }
            Ok(Burst::since(t, per_writer))
        })
    }
}

impl<B: Backend> System for Tito<B> {
    type Cursor = String;

    async fn insert_authors(&mut self, authors: Vec<Author>) -> Result<()> {
        let model = self.authors.clone();
        self.engine
            .transaction(|tx| async move { model.build_many(authors, &tx).await })
            .await?;
        Ok(())
    }

    async fn insert(&mut self, posts: Vec<Post>) -> Result<()> {
        let model = self.posts.clone();
        self.engine
            .transaction(|tx| async move { model.build_many(posts, &tx).await })
            .await?;
        Ok(())
    }

    async fn get(&mut self, id: &str) -> Result<Post> {
        Ok(self.posts.find_by_id(id, Vec::new()).await?)
    }

    async fn page_by_author(
        &mut self,
        author: &str,
        after: Option<String>,
    ) -> Result<Page<String>> {
        let page = self
            .posts
            .query_by_index(BY_AUTHOR)
            .value(author)
            .limit(Some(PAGE))
            .cursor(after)
            .execute()
            .await?;
        Ok(Page {
            posts: page.items,
            next: page.cursor,
        })
    }

    async fn page_by_category_with_author(&mut self, category: &str) -> Result<Vec<Post>> {
        let page = self
            .posts
            .query_by_index(BY_CATEGORY)
            .value(category)
            .relationship("author")
            .limit(Some(PAGE))
            .execute()
            .await?;
        Ok(page.items)
    }

    async fn update(&mut self, post: Post) -> Result<()> {
        let model = self.posts.clone();
        self.engine
            .transaction(|tx| async move { model.update(post, &tx).await.map(drop) })
            .await?;
        Ok(())
    }

    async fn delete(&mut self, id: &str) -> Result<()> {
        let model = self.posts.clone();
        self.engine
            .transaction(|tx| async move { model.delete_by_id(id, &tx).await })
            .await?;
        Ok(())
    }
}
