//! [`Manager`]: what a service runs, with the lifecycle hooks it may override.

use std::future::Future;
use std::sync::Arc;

use crate::endpoint::Endpoint;
use crate::registry::ServiceRecord;

/// An error a hook returns; it fails `start` (or is logged, at `stop`).
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// A service's manager: its RPC endpoint (usually written with `#[rpc_endpoint]`, which also
/// gathers its `#[periodic_task]` methods) plus lifecycle hooks, each a no-op unless overridden.
///
/// [`Service::start`](super::Service::start) calls them in nova's order: `init_host` before the
/// service registers, `pre_start_hook` after it has its registry row and before the RPC server
/// consumes, `post_start_hook` once it consumes; [`Service::stop`](super::Service::stop) calls
/// `cleanup_host` last.
pub trait Manager: Endpoint {
    /// Prepares the host before anything else starts (nova: `init_host`).
    fn init_host(&self) -> impl Future<Output = Result<(), HookError>> + Send {
        async { Ok(()) }
    }

    /// Runs once the service has its registry row, before it takes requests.
    fn pre_start_hook(
        &self,
        service: &ServiceRecord,
    ) -> impl Future<Output = Result<(), HookError>> + Send {
        let _ = service;
        async { Ok(()) }
    }

    /// Runs once the RPC server consumes.
    fn post_start_hook(&self) -> impl Future<Output = Result<(), HookError>> + Send {
        async { Ok(()) }
    }

    /// Endpoints for older major versions of this manager's API, served beside it (nova's
    /// `_SchedulerManagerV3Proxy`): usually a `#[rpc_endpoint]` at the old version holding the
    /// manager and forwarding each call with whatever conversion it needs. The dispatcher picks the
    /// endpoint whose major matches the request. Default: none.
    fn compat_endpoints(self: &Arc<Self>) -> Vec<Arc<dyn Endpoint>> {
        Vec::new()
    }

    /// Runs last when the service stops (nova: `cleanup_host`).
    fn cleanup_host(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
