//! `cargo fuzz run config`: see `rpc_integration_tests::fuzzing::config` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpc_integration_tests::fuzzing::config(data));
