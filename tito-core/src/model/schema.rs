//! The static shape of a model, read once from `T::default()`: table, indexes, relationships.

use std::collections::HashSet;

use crate::error::{Result, TitoError};
use crate::keyspace;
use crate::model::{
    RecordShape, TitoEmbeddedRelationshipConfig, TitoHasManyConfig, TitoIndexField, TitoModelTrait,
};

/// One index as queries see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndexDef {
    pub name: String,
    pub fields: Vec<TitoIndexField>,
    pub unique: bool,
    /// Whether its entries follow from its fields alone (no condition, no generator), so a
    /// model that does not declare it can maintain it from its registered definition.
    pub plain: bool,
    /// Key prefix shared by all entries of the index.
    pub prefix: Vec<u8>,
}

/// A reverse relationship as hydration reads it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HasManyDef {
    pub destination: String,
    /// The referencing model's table.
    pub table: String,
    /// Its index, with the one field that holds the referenced record's id.
    pub index: IndexDef,
}

/// A relationship a read can ask for by its destination field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Relationship<'a> {
    /// Ids in the record name the records to embed.
    Embedded(&'a TitoEmbeddedRelationshipConfig),
    /// Records of another model point at this one through an index.
    HasMany(&'a HasManyDef),
}

/// The static shape of a model.
#[derive(Debug, Clone)]
pub(crate) struct Schema {
    pub table: String,
    /// The table's name as a metric label, shared rather than copied by every operation.
    pub table_label: metrics::SharedString,
    pub indexes: Vec<IndexDef>,
    pub relationships: Vec<TitoEmbeddedRelationshipConfig>,
    pub has_many: Vec<HasManyDef>,
    /// The serialized name of the version field, for optimistic checks.
    pub version_field: Option<String>,
    /// The model version the model writes.
    pub model_version: u32,
    /// How to read this table's records and those of the tables it hydrates, in the shapes of
    /// their current models (this table's first).
    pub shapes: Vec<RecordShape>,
    /// A configuration mistake found when the schema was read; every operation reports it.
    problem: Option<String>,
}

impl Schema {
    pub fn of<T: TitoModelTrait>() -> Schema {
        let model = T::default();
        let table = model.get_table_name();
        let unique: HashSet<String> = model.get_unique_indexes().into_iter().collect();
        let mut problem = None;
        let mut names = HashSet::new();
        let indexes: Vec<IndexDef> = model
            .get_indexes()
            .into_iter()
            .map(|config| {
                if !names.insert(config.name.clone()) {
                    problem = Some(format!("index `{}` is declared twice", config.name));
                }
                if config.fields.is_empty() {
                    problem = Some(format!("index `{}` has no fields", config.name));
                }
                let is_unique = unique.contains(&config.name);
                // A hand-written model's conditions are not known: its indexes count as plain.
                let plain = config.custom_generator.is_none()
                    && !T::conditional_indexes().is_some_and(|c| c.contains(&config.name.as_str()));
                IndexDef {
                    plain,
                    prefix: keyspace::index_prefix(&table, &config.name, is_unique),
                    name: config.name,
                    fields: config.fields,
                    unique: is_unique,
                }
            })
            .collect();
        if let Some(name) = unique.iter().find(|name| !names.contains(*name)) {
            problem = Some(format!("unique index `{name}` is not among the indexes"));
        }
        let relationships = model.get_embedded_relationships();
        for relation in &relationships {
            let (source_parent, _) =
                crate::model::json_path::split_parent(&relation.source_field_name);
            let (dest_parent, _) =
                crate::model::json_path::split_parent(&relation.destination_field_name);
            if source_parent != dest_parent {
                problem = Some(format!(
                    "relationship `{}` -> `{}`: source and destination must share their parent path",
                    relation.source_field_name, relation.destination_field_name
                ));
            }
        }
        let has_many = model
            .get_has_many()
            .into_iter()
            .filter_map(|config| {
                let def = has_many_def(config);
                if let Err(reason) = &def {
                    problem = Some(reason.clone());
                }
                def.ok()
            })
            .collect::<Vec<_>>();
        let mut destinations = HashSet::new();
        let all = (relationships.iter().map(|r| &r.destination_field_name))
            .chain(has_many.iter().map(|h| &h.destination));
        for destination in all {
            if !destinations.insert(destination) {
                problem = Some(format!("two relationships fill `{destination}`"));
            }
        }
        Schema {
            table_label: metrics::SharedString::from_shared(table.as_str().into()),
            table,
            indexes,
            relationships,
            has_many,
            version_field: model.version_field(),
            model_version: T::MODEL_VERSION,
            shapes: std::iter::once(RecordShape::of::<T>())
                .chain(T::related_shapes())
                .collect(),
            problem,
        }
    }

    /// Fails with the configuration mistake, if any.
    pub fn check(&self) -> Result<()> {
        match &self.problem {
            Some(problem) => Err(TitoError::InvalidQuery(format!(
                "model `{}`: {problem}",
                self.table
            ))),
            None => Ok(()),
        }
    }

    pub fn index(&self, name: &str) -> Result<&IndexDef> {
        self.indexes.iter().find(|i| i.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.indexes.iter().map(|i| i.name.as_str()).collect();
            TitoError::InvalidQuery(format!(
                "model `{}` has no index `{name}` (indexes: {})",
                self.table,
                known.join(", ")
            ))
        })
    }

    pub fn relationship(&self, destination: &str) -> Result<Relationship<'_>> {
        let embedded = (self.relationships.iter())
            .find(|r| r.destination_field_name == destination)
            .map(Relationship::Embedded);
        let has_many = || {
            (self.has_many.iter())
                .find(|h| h.destination == destination)
                .map(Relationship::HasMany)
        };
        embedded.or_else(has_many).ok_or_else(|| {
            let known: Vec<&str> = (self.relationships.iter())
                .map(|r| r.destination_field_name.as_str())
                .chain(self.has_many.iter().map(|h| h.destination.as_str()))
                .collect();
            TitoError::InvalidQuery(format!(
                "model `{}` has no relationship `{destination}` (relationships: {})",
                self.table,
                known.join(", ")
            ))
        })
    }
}

/// Checks a reverse relationship's configuration.
fn has_many_def(config: TitoHasManyConfig) -> std::result::Result<HasManyDef, String> {
    let Some(key_field) = config.key_field else {
        return Err(format!(
            "relationship `{}`: model `{}` has no index `{}`",
            config.destination_field_name, config.model, config.index
        ));
    };
    Ok(HasManyDef {
        index: IndexDef {
            plain: false,
            prefix: keyspace::index_prefix(&config.model, &config.index, config.unique),
            name: config.index,
            fields: vec![key_field],
            unique: config.unique,
        },
        destination: config.destination_field_name,
        table: config.model,
    })
}
