//! A nova-scheduler equivalent built only on `rpc-runtime`'s public API.
//!
//! Not built yet: the scheduler manager, host manager, filters, weighers, claims and the command
//! line arrive in a later milestone. Until then this crate holds nothing that pretends to work;
//! its binary says so and exits with an error.

/// What the binary prints until the scheduler exists.
pub const NOT_YET: &str = "scheduler-service is not built yet: run `cargo run -p rpc-examples --bin hello` for the framework's main job";
