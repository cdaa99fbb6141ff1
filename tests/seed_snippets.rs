//! The model, CRUD and query snippets of the tito 0.2.0 README, assembled into programs with only
//! the connection line changed (`TiKV::connect(..)` ->
//! `AnyBackend::from_env(Embedded::temporary_builder())`: embedded, or TiKV at `TITO_TIKV_PD`).

use serde::{Deserialize, Serialize};
use tito::types::{
    DBUuid, TitoEmbeddedRelationshipConfig, TitoEventConfig, TitoIndexBlockType, TitoIndexConfig,
    TitoIndexField, TitoModelTrait,
};
use tito::{AnyBackend, Embedded, TitoError};

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct User {
    id: String,
    name: String,
    email: String,
}

impl TitoModelTrait for User {
    fn get_embedded_relationships(&self) -> Vec<tito::types::TitoEmbeddedRelationshipConfig> {
        vec![] // No relationships for this simple model
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

#[derive(Default, Debug, Clone, Serialize, Deserialize)]
struct Tag {
    id: String,
    name: String,
}

impl TitoModelTrait for Tag {
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_table_name(&self) -> String {
        "tag".to_string()
    }
    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        vec![]
    }
    fn get_embedded_relationships(&self) -> Vec<TitoEmbeddedRelationshipConfig> {
        vec![]
    }
    fn get_events(&self) -> Vec<TitoEventConfig> {
        vec![]
    }
}

// Post model with references to multiple tags
#[derive(Default, Debug, Clone, Serialize, Deserialize)]
struct Post {
    id: String,
    title: String,
    content: String,
    author: String,
    tag_ids: Vec<String>, // Reference to related tag IDs
    #[serde(default)]
    tags: Vec<Tag>, // Will be populated when relationship is fetched
    year: String,
    created_at: i64,
}

impl TitoModelTrait for Post {
    fn get_embedded_relationships(&self) -> Vec<TitoEmbeddedRelationshipConfig> {
        // Define the relationship between posts and tags
        vec![TitoEmbeddedRelationshipConfig {
            source_field_name: "tag_ids".to_string(),
            destination_field_name: "tags".to_string(),
            model: "tag".to_string(),
        }]
    }

    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        let field = |name: &str, r#type| TitoIndexField {
            name: name.to_string(),
            r#type,
        };
        vec![
            TitoIndexConfig {
                condition: true,
                name: "post-by-author".to_string(),
                fields: vec![field("author", TitoIndexBlockType::String)],
                custom_generator: None,
            },
            TitoIndexConfig {
                condition: true,
                name: "post-by-id".to_string(),
                fields: vec![field("id", TitoIndexBlockType::String)],
                custom_generator: None,
            },
            TitoIndexConfig {
                condition: true,
                name: "post-by-created".to_string(),
                fields: vec![
                    field("year", TitoIndexBlockType::String),
                    field("created_at", TitoIndexBlockType::Number),
                ],
                custom_generator: None,
            },
        ]
    }

    fn get_table_name(&self) -> String {
        "post".to_string()
    }

    fn get_events(&self) -> Vec<TitoEventConfig> {
        vec![]
    }

    fn get_id(&self) -> String {
        self.id.clone()
    }
}

#[derive(Default, Debug, Clone, Serialize, Deserialize)]
struct Member {
    id: String,
    role: String,
    status: String,
}

impl TitoModelTrait for Member {
    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        vec![
            TitoIndexConfig {
                condition: true,
                name: "by_role_and_status".to_string(),
                fields: vec![
                    TitoIndexField {
                        name: "role".to_string(),
                        r#type: TitoIndexBlockType::String,
                    },
                    TitoIndexField {
                        name: "status".to_string(),
                        r#type: TitoIndexBlockType::String,
                    },
                ],
                custom_generator: None,
            },
            TitoIndexConfig {
                condition: self.status == "active", // Only index active items
                name: "by_active_status".to_string(),
                fields: vec![TitoIndexField {
                    name: "status".to_string(),
                    r#type: TitoIndexBlockType::String,
                }],
                custom_generator: None,
            },
        ]
    }
    fn get_table_name(&self) -> String {
        "member".to_string()
    }
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_embedded_relationships(&self) -> Vec<TitoEmbeddedRelationshipConfig> {
        vec![]
    }
    fn get_events(&self) -> Vec<TitoEventConfig> {
        vec![]
    }
}

#[derive(Default, Debug, Clone, Serialize, Deserialize)]
struct Article {
    id: String,
    category: String,
    published_at: i64,
}

impl TitoModelTrait for Article {
    fn get_indexes(&self) -> Vec<TitoIndexConfig> {
        vec![
            // Define composite index
            TitoIndexConfig {
                condition: true,
                name: "by_category_and_date".to_string(),
                fields: vec![
                    TitoIndexField {
                        name: "category".to_string(),
                        r#type: TitoIndexBlockType::String,
                    },
                    TitoIndexField {
                        name: "published_at".to_string(),
                        r#type: TitoIndexBlockType::Number,
                    },
                ],
                custom_generator: None,
            },
        ]
    }
    fn get_table_name(&self) -> String {
        "article".to_string()
    }
    fn get_id(&self) -> String {
        self.id.clone()
    }
    fn get_embedded_relationships(&self) -> Vec<TitoEmbeddedRelationshipConfig> {
        vec![]
    }
    fn get_events(&self) -> Vec<TitoEventConfig> {
        vec![]
    }
}

#[tokio::test]
async fn basic_crud_and_queries() -> Result<(), TitoError> {
    let tito_db = AnyBackend::from_env(Embedded::temporary_builder()).await?;

    // Create model with the storage backend
    let user_model = tito_db.clone().model::<User>();

    // Create a user
    let user_id = DBUuid::new_v4().to_string();
    let user = User {
        id: user_id.clone(),
        name: "John Doe".to_string(),
        email: "john@example.com".to_string(),
    };

    // Create user with transaction
    let saved_user = tito_db
        .transaction(|tx| {
            let user_model = user_model.clone();
            async move { user_model.build(user, &tx).await }
        })
        .await?;
    assert_eq!(saved_user.name, "John Doe");

    // Find user by ID
    let found_user = user_model.find_by_id(&user_id, vec![]).await?;
    assert_eq!(found_user.email, "john@example.com");

    // Find user by email
    let mut query = user_model.query_by_index("by_email");
    let result = query.value("john@example.com").execute().await?;

    // Check if we found a user
    if let Some(user) = result.items.first() {
        println!("Found user: {}", user.name);
    }
    assert_eq!(result.items.len(), 1);

    tito_db
        .transaction(|tx| {
            let user_model = user_model.clone();
            async move {
                // Query within transaction context
                let mut query = user_model.query_by_index("by_email");
                let user = query
                    .value("john@example.com")
                    .execute_tx(&tx) // Execute within transaction
                    .await?;

                // Update user in same transaction
                if let Some(mut user) = user.items.first().cloned() {
                    user.name = "John Smith".to_string();
                    user_model.update(user, &tx).await?;
                }

                Ok::<_, TitoError>(())
            }
        })
        .await?;
    assert_eq!(
        user_model.find_by_id(&user_id, vec![]).await?.name,
        "John Smith"
    );

    // Update user
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
    let moved = user_model
        .query_by_index("by_email")
        .value("john_updated@example.com")
        .execute()
        .await?;
    assert_eq!(moved.items.len(), 1);
    let stale = user_model
        .query_by_index("by_email")
        .value("john@example.com")
        .execute()
        .await?;
    assert!(stale.items.is_empty());

    let deleted_id = user_id.clone();
    // Delete user
    tito_db
        .transaction(|tx| {
            let user_model = user_model.clone();
            async move { user_model.delete_by_id(&user_id, &tx).await }
        })
        .await?;
    assert!(matches!(
        user_model.find_by_id(&deleted_id, vec![]).await,
        Err(TitoError::NotFound(_))
    ));
    Ok(())
}

#[tokio::test]
async fn relationships_and_reverse_queries() -> Result<(), TitoError> {
    let tito_db = AnyBackend::from_env(Embedded::temporary_builder()).await?;
    let tag_model = tito_db.clone().model::<Tag>();
    let post_model = tito_db.clone().model::<Post>();
    tito_db
        .transaction(|tx| {
            let (tag_model, post_model) = (tag_model.clone(), post_model.clone());
            async move {
                for name in ["rust", "db"] {
                    let tag = Tag {
                        id: name.to_string(),
                        name: name.to_uppercase(),
                    };
                    tag_model.build(tag, &tx).await?;
                }
                for i in 0..4 {
                    let post = Post {
                        id: format!("p{i}"),
                        title: format!("Post {i}"),
                        author: "john".to_string(),
                        tag_ids: vec!["rust".to_string(), "db".to_string()],
                        year: "2023".to_string(),
                        created_at: i,
                        ..Post::default()
                    };
                    post_model.build(post, &tx).await?;
                }
                Ok::<_, TitoError>(())
            }
        })
        .await?;

    // Post model with tag relationships
    let mut query = post_model.query_by_index("post-by-author");
    let posts = query
        .value("john") // Author name
        .relationship("tags") // Include tags relationship
        .limit(Some(10)) // Limit to 10 results
        .execute()
        .await?;

    for post in &posts.items {
        println!("Post: {} with {} tags", post.title, post.tags.len());
        assert_eq!(post.tags.len(), 2);
    }
    assert_eq!(posts.items.len(), 4);

    // Fetch a post with related tags using query builder
    let post_id = "p2".to_string();
    let mut query = post_model.query_by_index("post-by-id");
    let post = query.value(post_id).relationship("tags").execute().await?;
    assert_eq!(post.items[0].tags[0].name, "RUST");

    // Get latest posts in reverse chronological order
    let mut query = post_model.query_by_index("post-by-created");
    let latest_posts = query
        .value("2023") // Index by year
        .execute_reverse() // Execute in reverse order
        .await?;
    let order: Vec<i64> = latest_posts.items.iter().map(|p| p.created_at).collect();
    assert_eq!(order, vec![3, 2, 1, 0]);
    Ok(())
}

#[tokio::test]
async fn composite_conditional_and_cursor_pages() -> Result<(), TitoError> {
    let tito_db = AnyBackend::from_env(Embedded::temporary_builder()).await?;
    let user_model = tito_db.clone().model::<Member>();
    let article_model = tito_db.clone().model::<Article>();
    tito_db
        .transaction(|tx| {
            let (members, articles) = (user_model.clone(), article_model.clone());
            async move {
                for i in 0..50 {
                    let member = Member {
                        id: format!("m{i:03}"),
                        role: if i % 2 == 0 { "admin" } else { "user" }.to_string(),
                        status: if i % 5 == 0 { "inactive" } else { "active" }.to_string(),
                    };
                    members.build(member, &tx).await?;
                }
                for (i, date) in [20230101, 20221231, 20230101, 20240101].iter().enumerate() {
                    let article = Article {
                        id: format!("a{i}"),
                        category: "technology".to_string(),
                        published_at: *date,
                    };
                    articles.build(article, &tx).await?;
                }
                Ok::<_, TitoError>(())
            }
        })
        .await?;

    // Find active users by role
    let mut query = user_model.query_by_index("by_role_and_status");
    let active_admins = query
        .value("admin") // First index field (role)
        .value("active") // Second index field (status)
        .limit(Some(20)) // Limit results
        .execute()
        .await?;
    assert_eq!(active_admins.items.len(), 20);
    let mut all: Vec<String> = active_admins.items.iter().map(|m| m.id.clone()).collect();

    // Use cursor for pagination
    if let Some(cursor) = active_admins.cursor {
        // Get next page using the same query with a cursor
        let mut next_page_query = user_model.query_by_index("by_role_and_status");
        let next_page = next_page_query
            .value("admin")
            .value("active")
            .cursor(Some(cursor)) // Pass the cursor
            .limit(Some(20))
            .execute()
            .await?;
        all.extend(next_page.items.iter().map(|m| m.id.clone()));
        assert!(next_page.cursor.is_none());
    }
    let expected: Vec<String> = (0..50)
        .filter(|i| i % 2 == 0 && i % 5 != 0)
        .map(|i| format!("m{i:03}"))
        .collect();
    assert_eq!(all, expected);

    // Conditional index: only active members are in it.
    let active = user_model
        .query_by_index("by_active_status")
        .value("active")
        .execute()
        .await?;
    assert_eq!(active.items.len(), 40);
    let inactive = user_model
        .query_by_index("by_active_status")
        .value("inactive")
        .execute()
        .await?;
    assert!(inactive.items.is_empty());

    // Query using composite index
    let mut query = article_model.query_by_index("by_category_and_date");
    let articles = query
        .value("technology") // category value
        .value("20230101") // published_at value as number
        .limit(Some(5))
        .execute()
        .await?;
    let ids: Vec<&str> = articles.items.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, vec!["a0", "a2"]);
    Ok(())
}

/// tito 0.2.0 programs also import the model trait and configuration types from the root.
#[test]
fn root_paths_of_tito_0_2_0_resolve() {
    fn is_model<T: tito::TitoModelTrait>() {}
    is_model::<User>();
    let field = tito::TitoIndexField {
        name: "email".into(),
        r#type: tito::TitoIndexBlockType::String,
    };
    assert_eq!(User::default().get_indexes()[0].fields[0].name, field.name);
    let all = tito::PartitionConfig {
        start: 0,
        end: 1024,
    };
    assert_eq!(all.end, tito::types::PARTITIONS);
}
