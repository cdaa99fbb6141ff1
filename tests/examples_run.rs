//! Runs every example, so the README's examples cannot rot: each is compiled into this test as a
//! module and its `main` is called.

#[path = "../examples/crud.rs"]
mod crud;

#[path = "../examples/blog.rs"]
mod blog;

#[test]
fn crud_example_runs() {
    crud::main().unwrap();
}

#[test]
fn blog_example_runs() {
    blog::main().unwrap();
}
