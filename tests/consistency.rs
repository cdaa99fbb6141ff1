//! Jepsen-style consistency checks of tito's public API: concurrent clients with random delays
//! and aborts, on the embedded backend wrapped in the fault-injecting `Faulty` (latency,
//! conflicts, transient errors, unknown commit outcomes), each run recording a history that a
//! checker then judges. Workloads: bank transfers, unique-index races, counters, list append
//! (Elle-style dependency cycles) and per-key queue order under concurrent publishers with a
//! paused worker and clock skew, on a virtual clock.
//!
//! Seeds: `TITO_CHECK_SEEDS=1,2,0x2a` (default: `DEFAULT_SEEDS`); `TITO_CHECK_SCALE=4`
//! multiplies the operation counts. A failure prints the seed, the workload and the history
//! excerpt of the offending key or value. Each checker's unit tests (in its module) feed it a
//! hand-made anomalous history, so a passing run means something.

mod consistency_support;

use consistency_support::{bank, check_workload, counters, list_append, queue_order, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_transfers_keep_the_total_in_every_snapshot_and_never_overdraw() {
    check_workload("bank", "bank_transfers", bank::run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_index_races_never_show_two_holders_of_a_value() {
    check_workload("unique", "unique_index_races", unique::run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_counter_increments_are_neither_lost_nor_doubled() {
    check_workload("counters", "concurrent_counter_increments", counters::run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_appends_are_explained_by_one_commit_order() {
    check_workload("list-append", "list_appends", list_append::run).await;
}

// On the paused clock (a current-thread runtime): the workers' stalls are virtual.
#[tokio::test(start_paused = true)]
async fn queue_handles_each_keys_events_in_commit_order_under_concurrent_publishers() {
    check_workload("queue", "queue_handles_each_keys_events", queue_order::run).await;
}
