//! `cargo fuzz run envelope`: see `rpc_integration_tests::fuzzing::envelope` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpc_integration_tests::fuzzing::envelope(data));
