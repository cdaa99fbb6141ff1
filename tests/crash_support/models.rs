//! The derived models the scenarios write.

use serde::{Deserialize, Serialize};
use tito::TitoModel;

/// Scenario `writes`: a unique index, a plain one and a multi-valued one, all moving on update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "items")]
pub struct Item {
    #[tito(id)]
    pub id: String,
    #[tito(unique)]
    pub sku: String,
    #[tito(index)]
    pub color: String,
    #[tito(index)]
    pub tags: Vec<String>,
    pub rank: i64,
}

/// Scenario `reindex`, the version of the application before the indexes were added.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "gadgets")]
pub struct GadgetV1 {
    #[tito(id)]
    pub id: String,
    #[tito(index)]
    pub color: String,
    pub serial: String,
    pub shelf: i64,
}

/// Scenario `reindex`, the same table with a unique and a plain index added: its rows written
/// before need [`reindex`](tito::TitoModel::reindex).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "gadgets")]
pub struct GadgetV2 {
    #[tito(id)]
    pub id: String,
    #[tito(index)]
    pub color: String,
    #[tito(unique)]
    pub serial: String,
    #[tito(index)]
    pub shelf: i64,
}

impl From<GadgetV2> for GadgetV1 {
    fn from(g: GadgetV2) -> Self {
        GadgetV1 {
            id: g.id,
            color: g.color,
            serial: g.serial,
            shelf: g.shelf,
        }
    }
}

/// The event type of the queue scenarios.
pub const EVENT: &str = "order";

/// Scenarios `queue` and `replay`: each insert publishes an event, ordered per `owner`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "orders", events("order"), partition_key = owner)]
pub struct Order {
    #[tito(id)]
    pub id: String,
    pub owner: String,
    pub seq: u64,
}

/// How many events of `owner` were published: written in the publish's transaction, so it is
/// exactly the number committed, acknowledged or not.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "published")]
pub struct Published {
    #[tito(id)]
    pub id: String,
    pub next: u64,
}

/// A transactional handler's effect: the events of one owner it applied, in order, written in
/// the transaction that acknowledges the event. `r` marks one applied from a replay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, TitoModel)]
#[tito(table = "ledgers")]
pub struct Ledger {
    #[tito(id)]
    pub id: String,
    pub applied: Vec<String>,
}
