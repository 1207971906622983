//! oslo.messaging's ping endpoint (`[DEFAULT] rpc_ping_enabled`): `oslo_rpc_server_ping` in the
//! default namespace at version 1.0, answering `"pong"` whatever its arguments, so a health
//! check can ask a server whether it consumes without knowing its API.

use crate::endpoint::{EndpointDescriptor, FixedAnswer, MethodDescriptor, MethodKind};
use crate::envelope::JsonText;
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

/// The ping endpoint, served after every other endpoint, as oslo appends it: a request for a
/// newer version of the default namespace reaches the manager first.
pub(crate) fn ping_endpoint() -> FixedAnswer {
    // A string always serializes.
    let pong = JsonText::from_serialize("pong").unwrap_or_else(|_| JsonText::null());
    FixedAnswer::new(&DESCRIPTOR, pong)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::context::Context;
    use crate::dispatch::Dispatcher;
    use crate::envelope::Request;
    use crate::error::RemoteError;

    static MANAGER: EndpointDescriptor =
        EndpointDescriptor::new("Manager", None, None, Version::new(5, 0), &[]);

    fn ping(version: Option<Version>) -> Result<JsonText, RemoteError> {
        let dispatcher = Dispatcher::new(vec![
            // A manager of the default namespace at 5.0, with no methods.
            Arc::new(FixedAnswer::new(&MANAGER, JsonText::null())),
            Arc::new(ping_endpoint()),
        ]);
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
