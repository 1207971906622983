//! oslo.messaging's ping endpoint (`[DEFAULT] rpc_ping_enabled`): `oslo_rpc_server_ping` in the
//! default namespace at version 1.0, answering `"pong"` whatever its arguments, so a health
//! check can ask a server whether it consumes without knowing its API.

use crate::context::Context;
use crate::endpoint::{Endpoint, EndpointDescriptor, MethodDescriptor, MethodKind};
use crate::envelope::{Args, JsonText};
use crate::error::RemoteError;
use crate::transport::BoxFuture;
use crate::version::Version;

/// The method's name, as oslo's `PingEndpoint` has it.
pub const PING_METHOD: &str = "oslo_rpc_server_ping";

static DESCRIPTOR: EndpointDescriptor = EndpointDescriptor::new(
    "PingEndpoint",
    None,
    None,
    Version::new(1, 0),
    &[MethodDescriptor::new(
        PING_METHOD,
        Version::new(1, 0),
        MethodKind::Call,
        &[],
    )],
);

/// Answers `oslo_rpc_server_ping`. Served after every other endpoint, as oslo appends it: a
/// request for a newer version of the default namespace reaches the manager first.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PingEndpoint;

impl Endpoint for PingEndpoint {
    fn descriptor(&self) -> &EndpointDescriptor {
        &DESCRIPTOR
    }

    fn invoke<'a>(
        &'a self,
        _ctx: Context,
        method: &'a str,
        _args: Args,
    ) -> BoxFuture<'a, Result<JsonText, RemoteError>> {
        let result = match method {
            PING_METHOD => JsonText::from_serialize("pong")
                .map_err(|e| RemoteError::new("ValueError", "builtins", e.to_string())),
            other => Err(RemoteError::no_such_method(other)),
        };
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::dispatch::Dispatcher;
    use crate::envelope::Request;

    static MANAGER: EndpointDescriptor =
        EndpointDescriptor::new("Manager", None, None, Version::new(5, 0), &[]);

    /// A manager of the default namespace at 5.0, with no methods.
    struct Manager;

    impl Endpoint for Manager {
        fn descriptor(&self) -> &EndpointDescriptor {
            &MANAGER
        }

        fn invoke<'a>(
            &'a self,
            _ctx: Context,
            method: &'a str,
            _args: Args,
        ) -> BoxFuture<'a, Result<JsonText, RemoteError>> {
            Box::pin(std::future::ready(Err(RemoteError::no_such_method(method))))
        }
    }

    fn ping(version: Option<Version>) -> Result<JsonText, RemoteError> {
        let dispatcher = Dispatcher::new(vec![Arc::new(Manager), Arc::new(PingEndpoint)]);
        let mut request = Request::new(PING_METHOD, Context::new());
        request.version = version;
        futures_util::FutureExt::now_or_never(dispatcher.dispatch(request)).expect("ready")
    }

    #[test]
    fn pong_at_1_0_and_as_oslo_no_such_method_at_the_managers_version() {
        assert_eq!(ping(None).expect("pong").as_str(), r#""pong""#);
        assert_eq!(
            ping(Some(Version::new(1, 0))).expect("pong").as_str(),
            r#""pong""#
        );
        // oslo routes by version first: 5.0 is the manager's, which has no such method.
        assert_eq!(
            ping(Some(Version::new(5, 0))).unwrap_err().class,
            "NoSuchMethod"
        );
    }
}
