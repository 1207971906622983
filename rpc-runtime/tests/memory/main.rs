//! The RPC core over `memory://`, end to end through generated clients and dispatchers.

mod bad_input;
mod caps;
mod concurrency;
mod context;
mod deadlines;
mod errors;
mod fixture;
mod routing;
mod versions;
