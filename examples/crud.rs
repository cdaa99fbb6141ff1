//! The seed's CRUD walkthrough: create, read, update, query, delete.
//!
//! Run with `cargo run --example crud` (embedded, no setup), or on TiKV with
//! `TITO_TIKV_PD=127.0.0.1:2379 cargo run --features tikv --example crud`.

use serde::{Deserialize, Serialize};
use tito::prelude::*;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct User {
    id: String,
    name: String,
    email: String,
}

impl TitoModelTrait for User {
    fn get_embedded_relationships(&self) -> Vec<tito::types::TitoEmbeddedRelationshipConfig> {
        vec![]
    }

    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        vec![TitoIndexConfig {
            condition: true,
            name: "by_email".to_string(),
            fields: vec![TitoIndexField {
                name: "email".to_string(),
                r#type: TitoIndexBlockType::String,
            }],
            custom_generator: None,
        }]
    }

    fn get_table_name(&self) -> String {
        "users".to_string()
    }

    fn get_events(&self) -> Vec<TitoEventConfig> {
        vec![]
    }

    fn get_id(&self) -> String {
        self.id.clone()
    }
}

#[tokio::main]
pub async fn main() -> Result<(), TitoError> {
    // Embedded, no setup; with `TITO_TIKV_PD=host:2379` (feature `tikv`) it runs on TiKV.
    // A program for one backend would write `Embedded::open(path)` or `TiKV::connect(..)`.
    let tito_db = AnyBackend::from_env(Embedded::temporary_builder()).await?;
    let user_model = tito_db.clone().model::<User>();

    let user_id = DBUuid::new_v4().to_string();
    let user = User {
        id: user_id.clone(),
        name: "John Doe".to_string(),
        email: "john@example.com".to_string(),
    };
    let saved_user = tito_db
        .transaction(|tx| {
            let user_model = user_model.clone();
            async move { user_model.build(user, &tx).await }
        })
        .await?;
    println!("created {} <{}>", saved_user.name, saved_user.email);

    let found_user = user_model.find_by_id(&user_id, vec![]).await?;
    println!("found {}", found_user.name);

    let updated_user = User {
        id: user_id.clone(),
        name: "John Updated".to_string(),
        email: "john_updated@example.com".to_string(),
    };
    tito_db
        .transaction(|tx| {
            let user_model = user_model.clone();
            async move { user_model.update(updated_user, &tx).await }
        })
        .await?;

    let mut query = user_model.query_by_index("by_email");
    let result = query.value("john_updated@example.com").execute().await?;
    if let Some(user) = result.items.first() {
        println!("found by email: {}", user.name);
    }
    let old = user_model
        .query_by_index("by_email")
        .value("john@example.com")
        .execute()
        .await?;
    assert!(old.items.is_empty(), "the old email is no longer indexed");

    let deleted_id = user_id.clone();
    tito_db
        .transaction(|tx| {
            let user_model = user_model.clone();
            async move { user_model.delete_by_id(&user_id, &tx).await }
        })
        .await?;
    match user_model.find_by_id(&deleted_id, vec![]).await {
        Err(TitoError::NotFound(what)) => println!("deleted: {what} is gone"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    Ok(())
}
