//! The dispatcher: picks the endpoint by namespace and version, then the method, then calls it.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use crate::endpoint::Endpoint;
use crate::envelope::{JsonText, Request};
use crate::error::{RUNTIME_MODULE, RemoteError};
use crate::metrics::Refusal;
use crate::transport::BoxFuture;
use crate::version::Version;

/// The version a request without a `version` key asks for (oslo's rule).
static DEFAULT_REQUEST_VERSION: Version = Version::new(1, 0);

/// Routes requests to endpoints with oslo.messaging's rules.
///
/// Endpoints are tried in order. One *matches* when its namespace is the request's and its version
/// can serve the request's version (same major, minor not newer). The first matching endpoint that
/// has the method is called. When some endpoint matched but none had the method, the failure is
/// `NoSuchMethod`; when none matched, `UnsupportedVersion`. Methods whose names start with `_` are
/// never called, as under oslo's default access policy.
pub struct Dispatcher {
    endpoints: Vec<Arc<dyn Endpoint>>,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.endpoints.iter().map(|e| e.descriptor().name))
            .finish()
    }
}

impl Dispatcher {
    /// A dispatcher over `endpoints`, tried in this order.
    pub fn new(endpoints: Vec<Arc<dyn Endpoint>>) -> Self {
        Self { endpoints }
    }

    /// The endpoints, in order.
    pub fn endpoints(&self) -> &[Arc<dyn Endpoint>] {
        &self.endpoints
    }

    /// Finds the endpoint for a request and calls the method.
    ///
    /// # Errors
    ///
    /// The failure to send back: oslo's `NoSuchMethod` or `UnsupportedVersion`, invalid arguments,
    /// the method's own error, or a panic in the method.
    pub async fn dispatch(&self, request: Request<'_>) -> Result<JsonText, RemoteError> {
        let route = self.route(&request).map_err(|unrouted| unrouted.failure);
        Self::invoke(route, request).await
    }

    /// Calls the method `route` found for `request` (or answers why none was found).
    pub(crate) async fn invoke(
        route: Result<Route<'_>, RemoteError>,
        request: Request<'_>,
    ) -> Result<JsonText, RemoteError> {
        let endpoint = route?.endpoint;
        let Request {
            method,
            args,
            context,
            ..
        } = request;
        CatchUnwind(endpoint.invoke(context.into_owned(), &method, args))
            .await
            .unwrap_or_else(|panic| {
                let message = panic_message(&*panic);
                tracing::error!(method = %method, panic = %message, "an RPC method panicked");
                Err(RemoteError::new(
                    "Panic",
                    RUNTIME_MODULE,
                    format!("the method `{method}` panicked: {message}"),
                ))
            })
    }

    /// Finds the endpoint and method for a request, with oslo's rules (see [`Dispatcher`]).
    pub(crate) fn route(&self, request: &Request<'_>) -> Result<Route<'_>, Unrouted> {
        let version = *request.version.as_ref().unwrap_or(&DEFAULT_REQUEST_VERSION);
        let namespace = request.namespace.as_deref();
        let mut matched = false;
        for endpoint in &self.endpoints {
            let descriptor = endpoint.descriptor();
            if descriptor.namespace != namespace || !descriptor.version.can_serve(&version) {
                continue;
            }
            matched = true;
            if request.method.starts_with('_') {
                continue;
            }
            if let Some(method) = descriptor.method(&request.method) {
                return Ok(Route {
                    endpoint,
                    namespace: descriptor.namespace,
                    method: method.name,
                    version,
                });
            }
        }
        if matched {
            return Err(Unrouted {
                refusal: Refusal::no_such_method,
                failure: RemoteError::no_such_method(&request.method),
            });
        }
        let served: Vec<Version> = self
            .endpoints
            .iter()
            .map(|e| e.descriptor())
            .filter(|d| d.namespace == namespace)
            .map(|d| d.version)
            .collect();
        Err(Unrouted {
            refusal: Refusal::unsupported_version,
            failure: RemoteError::unsupported_version(&request.method, &version, &served),
        })
    }
}

/// Where a request goes, found before it runs: its endpoint, and the names it is counted under.
#[derive(Clone, Copy)]
pub(crate) struct Route<'d> {
    endpoint: &'d Arc<dyn Endpoint>,
    /// The endpoint's namespace (`None`: the default namespace).
    pub(crate) namespace: Option<&'static str>,
    /// The method's name, from the endpoint's table.
    pub(crate) method: &'static str,
    /// The version the request asked for (1.0 when it named none).
    pub(crate) version: Version,
}

/// No endpoint takes the request: why (for metrics) and the failure to answer.
#[derive(Debug)]
pub(crate) struct Unrouted {
    pub(crate) refusal: Refusal,
    pub(crate) failure: RemoteError,
}

/// Turns a panic while polling an endpoint's future into an `Err`.
struct CatchUnwind<'a, T>(BoxFuture<'a, T>);

impl<T> Future for CatchUnwind<'_, T> {
    type Output = Result<T, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
