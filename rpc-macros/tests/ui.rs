//! Compile-time behaviour of `#[rpc_endpoint]`: every user mistake is a spanned error (`fail/`),
//! and valid uses compile under strict settings (`pass/`). Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p rpc-macros --test ui`, then read every change.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
