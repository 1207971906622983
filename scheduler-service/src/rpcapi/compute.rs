//! The compute agents' interface (topic `compute`, one agent per `server`): what the scheduler
//! calls to describe a host, claim on it and release a claim.

pub use crate::compute::ComputeManagerClient;
