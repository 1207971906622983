//! Harness for workspace-level tests: unique names so tests sharing a broker or database never
//! collide, and the rule for external services: under `CI=true` a service a test needs must be
//! reachable (the test fails, it never skips); elsewhere a test without its service is skipped with
//! a message.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Whether this run is CI (`CI=true`).
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A name no other test run uses: `<prefix>-<uuid>`.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Checks that a TCP service answers at `addr`. Under CI an unreachable service panics, naming
/// it; elsewhere this returns `false` and the caller skips.
///
/// # Panics
///
/// Under `CI=true`, when the service is unreachable.
pub fn require_service(name: &str, addr: SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
        Ok(_) => true,
        Err(error) if is_ci() => {
            panic!("{name} at {addr} is unreachable under CI=true ({error}); .ci/run must start it")
        }
        Err(error) => {
            eprintln!("skipped: {name} at {addr} is unreachable ({error})");
            false
        }
    }
}
