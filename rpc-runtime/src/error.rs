//! Errors: the framework's [`RpcError`], remote failures in oslo's format, typed application errors.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::version::Version;

/// The Python module oslo.messaging's dispatcher errors come from; Python clients that allow it
/// re-raise them as the real classes.
pub(crate) const OSLO_DISPATCHER_MODULE: &str = "oslo_messaging.rpc.dispatcher";
/// The module of failures this framework itself raises (bad arguments, bad messages).
pub(crate) const RUNTIME_MODULE: &str = "rpc_runtime";

/// An error and its sources, on one line (`outer: inner: innermost`), for logs and messages.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A failure raised on the remote side, in oslo.messaging's serialized-exception format.
///
/// This is what a Python service's exception, or a Rust service's error, looks like on the wire:
/// the exception's class and module names, its message, the traceback lines, and the positional
/// and keyword arguments needed to rebuild it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RemoteError {
    /// The exception class name (`NoValidHost`, `ValueError`).
    pub class: String,
    /// The module of the class (`nova.exception`, `builtins`).
    pub module: String,
    /// The exception's message (`str(exc)`).
    pub message: String,
    /// The traceback lines, each ending in a newline; empty for Rust services.
    pub traceback: Vec<String>,
    /// The exception's positional arguments.
    pub args: Vec<Value>,
    /// The exception's keyword arguments (nova-style exceptions carry their fields here).
    pub kwargs: Map<String, Value>,
    /// Other keys of the failure object, which oslo ignores and this framework may add.
    pub extra: Map<String, Value>,
}

impl RemoteError {
    /// Builds a failure with a class, a module and a message; `args` holds the message as Python's
    /// single-argument exceptions do.
    pub fn new(
        class: impl Into<String>,
        module: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let message = message.into();
        Self {
            class: class.into(),
            module: module.into(),
            args: vec![Value::String(message.clone())],
            message,
            traceback: Vec::new(),
            kwargs: Map::new(),
            extra: Map::new(),
        }
    }

    /// Builds the failure that carries a typed application error.
    ///
    /// The error's fields travel in `kwargs` (a non-object value is wrapped as `{"value": …}`), its
    /// `Display` text is the message, and its class and module come from [`ApplicationError`].
    pub fn from_application<E: ApplicationError>(error: &E) -> Self {
        let mut failure = Self::new(error.class(), error.module(), error.to_string());
        failure.kwargs = match serde_json::to_value(error) {
            Ok(Value::Object(map)) => map,
            Ok(other) => Map::from_iter([(WRAPPED_VALUE.to_owned(), other)]),
            Err(source) => {
                tracing::warn!(class = %failure.class, error = %source, "application error could not be serialized; sending its message only");
                Map::new()
            }
        };
        failure
    }

    /// Rebuilds a typed application error when this failure is one, or gives the failure back.
    ///
    /// It matches when the class and module are `E`'s and the keyword arguments decode as `E`.
    ///
    /// # Errors
    ///
    /// Returns `self` unchanged when the failure is not an `E`.
    pub fn into_application<E: ApplicationError>(self) -> Result<E, Self> {
        let decoded =
            serde_json::from_value::<E>(Value::Object(self.kwargs.clone())).or_else(|first| {
                match self.kwargs.get(WRAPPED_VALUE) {
                    Some(inner) if self.kwargs.len() == 1 => {
                        E::deserialize(inner).map_err(|_| first)
                    }
                    _ => Err(first),
                }
            });
        match decoded {
            Ok(error) if error.class() == self.class && error.module() == self.module => Ok(error),
            _ => Err(self),
        }
    }

    /// The failure oslo's dispatcher raises for an unknown method.
    pub(crate) fn no_such_method(method: &str) -> Self {
        Self::new(
            "NoSuchMethod",
            OSLO_DISPATCHER_MODULE,
            format!("Endpoint does not support RPC method {method}"),
        )
    }

    /// The failure oslo's dispatcher raises when no endpoint serves the namespace and version.
    pub(crate) fn unsupported_version(
        method: &str,
        requested: &Version,
        served: &[Version],
    ) -> Self {
        let served_text = served
            .iter()
            .map(Version::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let mut failure = Self::new(
            "UnsupportedVersion",
            OSLO_DISPATCHER_MODULE,
            format!(
                "Endpoint does not support RPC version {requested}. Attempted method: {method}. Served versions: {served_text}"
            ),
        );
        failure.extra.insert(
            SERVED_VERSIONS.to_owned(),
            Value::Array(
                served
                    .iter()
                    .map(|v| Value::String(v.to_string()))
                    .collect(),
            ),
        );
        failure.extra.insert(
            REQUESTED_VERSION.to_owned(),
            Value::String(requested.to_string()),
        );
        failure
    }

    /// The failure for arguments that do not decode as the method's parameters.
    pub(crate) fn invalid_arguments(method: &str, reason: impl fmt::Display) -> Self {
        Self::new(
            INVALID_ARGUMENTS,
            RUNTIME_MODULE,
            format!("invalid arguments for method `{method}`: {reason}"),
        )
    }

    /// The failure for a message that could be routed back but not understood.
    pub(crate) fn malformed_message(reason: impl fmt::Display) -> Self {
        Self::new(
            MALFORMED_MESSAGE,
            RUNTIME_MODULE,
            format!("malformed message: {reason}"),
        )
    }

    /// Turns a failure into the framework error a caller sees: oslo's dispatcher failures and this
    /// runtime's own become their [`RpcError`] variants, anything else stays [`RpcError::Remote`].
    pub(crate) fn into_rpc_error(self, method: &str) -> RpcError {
        match (self.module.as_str(), self.class.as_str()) {
            (OSLO_DISPATCHER_MODULE, "NoSuchMethod") => RpcError::NoSuchMethod {
                method: method.to_owned(),
            },
            (OSLO_DISPATCHER_MODULE, "UnsupportedVersion") => {
                let versions = |key: &str| -> Vec<Version> {
                    match self.extra.get(key) {
                        Some(Value::Array(items)) => items
                            .iter()
                            .filter_map(|v| v.as_str()?.parse().ok())
                            .collect(),
                        Some(Value::String(s)) => s.parse().into_iter().collect(),
                        _ => Vec::new(),
                    }
                };
                let requested = versions(REQUESTED_VERSION)
                    .into_iter()
                    .next()
                    .or_else(|| version_in_oslo_sentence(&self.message));
                RpcError::UnsupportedVersion {
                    method: method.to_owned(),
                    requested,
                    served: versions(SERVED_VERSIONS),
                    message: self.message,
                }
            }
            (RUNTIME_MODULE, INVALID_ARGUMENTS) => RpcError::InvalidArguments {
                method: method.to_owned(),
                message: self.message,
            },
            _ => RpcError::Remote(Box::new(self)),
        }
    }
}

/// The version in oslo.messaging's `UnsupportedVersion` sentence ("Endpoint does not support RPC
/// version 3.0. Attempted method: echo"), the only place an oslo server names it.
fn version_in_oslo_sentence(message: &str) -> Option<Version> {
    let (_, rest) = message.split_once("RPC version ")?;
    let word = rest.split_whitespace().next()?;
    word.trim_end_matches('.').parse().ok()
}

/// What [`RpcError::UnsupportedVersion`] says: the versions asked and served where known; when
/// the server named no served versions (oslo.messaging's never does), its own sentence instead.
fn unsupported_version_text(
    method: &str,
    requested: Option<&Version>,
    served: &[Version],
    message: &str,
) -> String {
    let mut text = match requested {
        Some(version) => {
            format!("the server does not support RPC version {version} for `{method}`")
        }
        None => format!("the server does not support the RPC version asked for `{method}`"),
    };
    if !served.is_empty() {
        let served = served
            .iter()
            .map(Version::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        text.push_str(&format!(" (serves {served})"));
    } else if !message.is_empty() {
        text.push_str(": ");
        text.push_str(message);
    }
    text
}

const WRAPPED_VALUE: &str = "value";
const SERVED_VERSIONS: &str = "served_versions";
const REQUESTED_VERSION: &str = "requested_version";
const INVALID_ARGUMENTS: &str = "InvalidArguments";
const MALFORMED_MESSAGE: &str = "MalformedMessage";

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "remote error {}.{}: {}",
            self.module, self.class, self.message
        )
    }
}

impl std::error::Error for RemoteError {}

/// A typed error that a method returns and its caller gets back, typed, across the wire.
///
/// Implement it (usually with an empty `impl`) for the `E` of a method returning `Result<T, E>`.
/// The defaults name the class after the type and the module after its Rust module path with `::`
/// written `.`; override them to match a Python exception (`nova.exception.NoValidHost`) so Python
/// callers can re-raise it.
///
/// # Examples
///
/// ```
/// use rpc_runtime::ApplicationError;
///
/// #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// struct NoValidHost {
///     reason: String,
/// }
///
/// impl std::fmt::Display for NoValidHost {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "No valid host was found. {}", self.reason)
///     }
/// }
///
/// impl ApplicationError for NoValidHost {
///     fn module(&self) -> String {
///         "nova.exception".into()
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned as an RPC application error",
    label = "the error type of an RPC method must implement `rpc_runtime::ApplicationError`",
    note = "add `impl rpc_runtime::ApplicationError for {Self} {{}}`; it needs serde's `Serialize`, `Deserialize` and `Display`"
)]
pub trait ApplicationError: Serialize + DeserializeOwned + fmt::Display + Send + 'static {
    /// The exception class name on the wire; defaults to the type's name.
    fn class(&self) -> String {
        default_class::<Self>().to_owned()
    }

    /// The exception module on the wire; defaults to the Rust module path, dotted.
    fn module(&self) -> String {
        default_module::<Self>()
    }
}

fn type_path<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    // Strip generic arguments: `a::B<c::D>` names class `B` in module `a`.
    full.split('<').next().unwrap_or(full)
}

fn default_class<T: ?Sized>() -> &'static str {
    let path = type_path::<T>();
    path.rsplit("::").next().unwrap_or(path)
}

fn default_module<T: ?Sized>() -> String {
    let path = type_path::<T>();
    match path.rsplit_once("::") {
        Some((module, _)) => module.replace("::", "."),
        None => String::new(),
    }
}

/// The framework's error for a call or cast.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// No reply came before the call's timeout.
    #[error("timed out after {timeout:?} waiting for a reply to `{method}`")]
    Timeout {
        /// The method called.
        method: String,
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// The server has no such method in any endpoint that serves the namespace and version.
    #[error("the server does not support RPC method `{method}`")]
    NoSuchMethod {
        /// The method called.
        method: String,
    },
    /// No endpoint on the server serves the requested namespace and version.
    ///
    /// A server of this runtime says which versions it serves; oslo.messaging's says only the
    /// sentence kept in `message`, from which `requested` is read.
    #[error("{}", unsupported_version_text(method, requested.as_ref(), served, message))]
    UnsupportedVersion {
        /// The method called.
        method: String,
        /// The version the request asked for (absent when the server did not say).
        requested: Option<Version>,
        /// The versions the server serves in that namespace (empty when the server did not say).
        served: Vec<Version>,
        /// The server's own explanation, as it sent it.
        message: String,
    },
    /// The server could not decode the arguments as the method's parameters.
    #[error("the server refused the arguments of `{method}`: {message}")]
    InvalidArguments {
        /// The method called.
        method: String,
        /// The server's explanation.
        message: String,
    },
    /// The call needs a newer version than the client's version cap allows (nova's
    /// `can_send_version` said no): nothing was sent.
    #[error("cannot send `{method}` at version {version}: the version cap is {cap}")]
    CannotSendVersion {
        /// The method.
        method: String,
        /// The version the call needs (its method's, or a newer argument's).
        version: Version,
        /// The cap in force.
        cap: Version,
    },
    /// The request cannot be sent to this target (a call with fanout, say).
    #[error("invalid target: {reason}")]
    InvalidTarget {
        /// What is wrong.
        reason: &'static str,
    },
    /// The arguments could not be encoded as JSON.
    #[error("could not encode the arguments of `{method}`")]
    Encode {
        /// The method called.
        method: String,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The reply's result did not decode as the expected type.
    #[error("could not decode the result of `{method}`")]
    Decode {
        /// The method called.
        method: String,
        /// The deserializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// The transport failed to send the request or receive the reply.
    #[error("transport failure")]
    Transport(#[from] TransportError),
    /// The remote method failed with an error that is not the method's typed error. Boxed: it
    /// is large, and rare next to the success path every `Result` carries.
    #[error(transparent)]
    Remote(Box<RemoteError>),
}

/// The error of a call to a method declared as returning `Result<T, E>`: either the method's own
/// typed error, or a framework error.
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// The remote method returned `Err(E)`.
    #[error("{0}")]
    Application(E),
    /// The call itself failed.
    #[error(transparent)]
    Rpc(#[from] RpcError),
}

impl<E> CallError<E> {
    /// The typed application error, if that is what this is.
    pub fn application(&self) -> Option<&E> {
        match self {
            Self::Application(e) => Some(e),
            Self::Rpc(_) => None,
        }
    }

    /// The framework error, if that is what this is.
    pub fn rpc(&self) -> Option<&RpcError> {
        match self {
            Self::Application(_) => None,
            Self::Rpc(e) => Some(e),
        }
    }
}

/// A transport's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The URL's scheme is not one this build knows.
    #[error("unsupported transport scheme `{scheme}` (known: memory, rabbit, amqp)")]
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
    },
    /// The URL could not be parsed. `url` has its password redacted.
    #[error("invalid transport URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The transport has been shut down.
    #[error("the transport is closed")]
    Closed,
    /// No final reply arrived in time.
    #[error("no reply within {timeout:?}")]
    Timeout {
        /// The timeout that ran out.
        timeout: Duration,
    },
    /// No broker host could be reached. `url` has its password redacted.
    #[error("could not connect to `{url}`: {reason}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// What went wrong with the last host tried.
        reason: String,
    },
    /// The transport is reconnecting and had no connection within the call's time.
    #[error("not connected to the broker (reconnecting)")]
    NotConnected,
    /// The broker refused an operation (a declaration with other flags, a missing exchange).
    #[error("the broker refused `{operation}`: {reason}")]
    Broker {
        /// What was attempted (`queue_declare scheduler`, `basic_publish`).
        operation: String,
        /// The broker's or the client library's explanation.
        reason: String,
    },
    /// A queue, exchange or routing-key name is longer than AMQP's 255 bytes (a topic that long,
    /// or a request naming such a reply queue).
    #[error("the name `{prefix}…` is {length} bytes; AMQP allows at most 255")]
    NameTooLong {
        /// The name's first 32 characters.
        prefix: String,
        /// Its length in bytes.
        length: usize,
    },
    /// A server already listens on this exclusive target.
    #[error("a server already listens on `{queue}`")]
    AlreadyListening {
        /// The queue name.
        queue: String,
    },
    /// A message could not be encoded or decoded.
    #[error("bad message")]
    Envelope(#[from] EnvelopeError),
}

/// Why a message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The body is not valid JSON, or not of the expected shape.
    #[error("the message is not valid JSON of the expected shape")]
    Json(#[source] serde_json::Error),
    /// The envelope's `oslo.version` is not one this framework speaks (2.x).
    #[error("unsupported envelope version `{version}` (expected 2.0)")]
    UnsupportedEnvelope {
        /// The version found.
        version: String,
    },
    /// A required key is absent.
    #[error("the message has no `{key}`")]
    MissingKey {
        /// The key.
        key: &'static str,
    },
    /// A key has a value of the wrong type.
    #[error("`{key}` must be {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it must be.
        expected: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct NoValidHost {
        reason: String,
    }
    impl fmt::Display for NoValidHost {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "No valid host was found. {}", self.reason)
        }
    }
    impl ApplicationError for NoValidHost {}

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Code {
        Busy,
    }
    impl fmt::Display for Code {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "busy")
        }
    }
    impl ApplicationError for Code {}

    #[test]
    fn application_error_round_trips_typed() {
        let err = NoValidHost {
            reason: "not enough RAM".into(),
        };
        let failure = RemoteError::from_application(&err);
        assert_eq!(failure.class, "NoValidHost");
        assert_eq!(failure.module, "rpc_runtime.error.tests");
        assert_eq!(failure.message, "No valid host was found. not enough RAM");
        assert_eq!(failure.kwargs["reason"], "not enough RAM");
        assert_eq!(failure.into_application::<NoValidHost>().unwrap(), err);
    }

    #[test]
    fn non_object_application_error_is_wrapped() {
        let failure = RemoteError::from_application(&Code::Busy);
        assert_eq!(failure.kwargs["value"], "Busy");
        assert_eq!(failure.into_application::<Code>().unwrap(), Code::Busy);
    }

    #[test]
    fn other_class_stays_remote() {
        let failure = RemoteError::new("ValueError", "builtins", "bad");
        let back = failure
            .clone()
            .into_application::<NoValidHost>()
            .unwrap_err();
        assert_eq!(back, failure);
        assert!(matches!(back.into_rpc_error("m"), RpcError::Remote(_)));
    }

    #[test]
    fn dispatcher_failures_become_typed_variants() {
        let err = RemoteError::no_such_method("nope").into_rpc_error("nope");
        assert!(matches!(err, RpcError::NoSuchMethod { method } if method == "nope"));
        let err =
            RemoteError::unsupported_version("ping", &Version::new(4, 3), &[Version::new(4, 1)])
                .into_rpc_error("ping");
        match err {
            RpcError::UnsupportedVersion {
                requested, served, ..
            } => {
                assert_eq!(requested, Some(Version::new(4, 3)));
                assert_eq!(served, vec![Version::new(4, 1)]);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unsupported_version_message_names_both_versions() {
        let err = RpcError::UnsupportedVersion {
            method: "ping".into(),
            requested: Some(Version::new(4, 3)),
            served: vec![Version::new(4, 1)],
            message: "Endpoint does not support RPC version 4.3. Attempted method: ping".into(),
        };
        assert_eq!(
            err.to_string(),
            "the server does not support RPC version 4.3 for `ping` (serves 4.1)"
        );
    }

    #[test]
    fn oslo_unsupported_version_is_read_from_its_sentence_and_kept() {
        // What oslo.messaging's dispatcher sends: the version only inside the message, no kwargs.
        let sentence = "Endpoint does not support RPC version 3.0. Attempted method: echo";
        let failure = RemoteError::new("UnsupportedVersion", OSLO_DISPATCHER_MODULE, sentence);
        let err = failure.into_rpc_error("echo");
        match &err {
            RpcError::UnsupportedVersion {
                requested,
                served,
                message,
                ..
            } => {
                assert_eq!(*requested, Some(Version::new(3, 0)));
                assert!(served.is_empty());
                assert_eq!(message, sentence);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            err.to_string(),
            format!("the server does not support RPC version 3.0 for `echo`: {sentence}")
        );
    }

    #[test]
    fn an_unreadable_sentence_leaves_the_version_unknown() {
        for sentence in ["", "RPC version", "RPC version x.y", "no version here"] {
            let failure = RemoteError::new("UnsupportedVersion", OSLO_DISPATCHER_MODULE, sentence);
            match failure.into_rpc_error("m") {
                RpcError::UnsupportedVersion { requested, .. } => {
                    assert_eq!(requested, None, "{sentence:?}")
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}
