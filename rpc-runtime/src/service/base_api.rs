//! The base API every service serves besides its manager (nova's `BaseRPCAPI`): namespace
//! `baseapi`, version 1.1, `ping(arg)` answering `{"service": <binary>, "arg": arg}` and
//! `get_backdoor_port()` (always `null`: there is no eventlet backdoor here).

use serde_json::Value;

use crate::context::Context;
use crate::endpoint::{ArgDescriptor, Endpoint, EndpointDescriptor, MethodDescriptor, MethodKind};
use crate::envelope::{Args, JsonText};
use crate::error::RemoteError;
use crate::transport::BoxFuture;
use crate::version::Version;

static DESCRIPTOR: EndpointDescriptor = EndpointDescriptor::new(
    "BaseAPI",
    None,
    Some("baseapi"),
    Version::new(1, 1),
    &[
        MethodDescriptor::new(
            "ping",
            Version::new(1, 0),
            MethodKind::Call,
            &[ArgDescriptor::new("arg", "serde_json::Value", None)],
        ),
        MethodDescriptor::new(
            "get_backdoor_port",
            Version::new(1, 1),
            MethodKind::Call,
            &[],
        ),
    ],
);

/// The base API of one service.
#[derive(Debug, Clone)]
pub(crate) struct BaseApi {
    service_name: String,
}

impl BaseApi {
    pub(crate) fn new(service_name: impl Into<String>) -> Self {
        Self {
            service_name: service_name.into(),
        }
    }
}

impl Endpoint for BaseApi {
    fn descriptor(&self) -> &EndpointDescriptor {
        &DESCRIPTOR
    }

    fn invoke<'a>(
        &'a self,
        _ctx: Context,
        method: &'a str,
        args: Args,
    ) -> BoxFuture<'a, Result<JsonText, RemoteError>> {
        let result = match method {
            "ping" => {
                let arg = serde_json::from_str::<Value>(args.as_json())
                    .ok()
                    .and_then(|mut a| a.get_mut("arg").map(Value::take))
                    .unwrap_or(Value::Null);
                JsonText::from_serialize(&serde_json::json!({
                    "service": self.service_name,
                    "arg": arg,
                }))
                .map_err(|e| RemoteError::new("ValueError", "builtins", e.to_string()))
            }
            "get_backdoor_port" => Ok(JsonText::null()),
            other => Err(RemoteError::no_such_method(other)),
        };
        Box::pin(std::future::ready(result))
    }
}
