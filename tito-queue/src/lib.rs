//! tito's durable partitioned event queue and Tokio workers.

/// The partitions `[start, end)` a worker takes events from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionConfig {
    /// First partition.
    pub start: u32,
    /// One past the last partition.
    pub end: u32,
}
