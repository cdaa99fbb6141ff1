//! Runs the queue examples, so they cannot rot: each is compiled into this test as a module and
//! its `main` is called (the same way `examples_run.rs` runs the others).

#[path = "../examples/queue_fifo.rs"]
mod queue_fifo;

#[test]
fn queue_fifo_example_runs() {
    queue_fifo::main().unwrap();
}

#[path = "../examples/queue_workers.rs"]
mod queue_workers;

#[test]
fn queue_workers_example_runs() {
    queue_workers::main().unwrap();
}
