//! `cargo fuzz run dispatch`: see `rpc_integration_tests::fuzzing::dispatch` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpc_integration_tests::fuzzing::dispatch(data));
