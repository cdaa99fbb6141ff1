//! Misuses of `#[derive(TitoModel)]` and of the typed queries it generates fail to compile, with
//! errors pointing at the attribute or value at fault (`tests/ui/*.stderr`).

#[test]
fn derive_misuse_fails_to_compile_with_spanned_errors() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
