//! The RabbitMQ transport against the real broker on this machine. Each test works in a vhost of
//! its own, deleted afterwards; under `CI=true` an unreachable broker fails the test.

mod bad_input;
mod bounds;
mod calls;
mod cli;
mod fixture;
mod metrics;
mod notifications;
mod options;
mod recovery;
mod replies;
mod tls;
mod wire;
