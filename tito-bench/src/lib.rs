//! Side-by-side benchmarks of tito against the raw embedded backend it runs on (the floor),
//! SQLite and native_db: the same workloads, the same records, alternated in one run.
//!
//! The binary (`cargo run --release -p tito-bench`) prints Markdown tables and writes an SVG
//! chart; `BENCHMARKS.md` at the repository root explains the method and the latest figures.

pub mod calls;
pub mod chart;
pub mod data;
pub mod driver;
pub mod queue;
pub mod report;
pub mod system;
pub mod systems;
pub mod writers;
