//! A nova-scheduler equivalent built only on `rpc-runtime`'s public API.
//!
//! The data path of a boot request: a caller's [`SchedulerManagerClient`] sends
//! `select_destinations` to topic `scheduler`; the [`SchedulerManager`] hands it to the
//! [`Scheduler`](scheduler::Scheduler), which refreshes its host view (liveness from the services
//! registry, capacity from the compute agents' reports), runs the [filters](scheduler::Filter),
//! weighs the hosts by free RAM, reserves the best one and claims it on that host's
//! [`ComputeManager`](compute::ComputeManager), which has the last word. The answer is one
//! [`Selection`](api::Selection) list per instance, or [`NoValidHost`](error::NoValidHost) with
//! nothing left claimed.
//!
//! The `scheduler-service` binary runs it: with no subcommand, an all-in-one demonstration on
//! the embedded default; `serve`, `compute`, `boot` and `services` for a real deployment.

pub mod api;
pub mod cli;
pub mod compute;
pub mod error;
pub mod legacy_api;
pub mod manager;
pub mod notifications;
pub mod rpcapi;
pub mod scheduler;
pub mod settings;
pub mod wiring;

pub use crate::manager::{SchedulerManager, SchedulerV3};
pub use crate::rpcapi::scheduler::{SchedulerManagerClient, SchedulerV3Client};
