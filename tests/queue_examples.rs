//! Runs the queue examples, so they cannot rot: each is compiled into this test as a module and
//! its `main` is called (the same way `examples_run.rs` runs the others).

#[path = "../examples/queue_fifo.rs"]
mod queue_fifo;

#[test]
fn queue_fifo_example_runs() {
    queue_fifo::main().unwrap();
}
