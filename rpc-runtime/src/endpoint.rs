//! Endpoints: the objects a server dispatches requests to, and the static tables that describe them.

use std::time::Duration;

use crate::context::Context;
use crate::envelope::{Args, JsonText};
use crate::error::RemoteError;
use crate::transport::BoxFuture;
use crate::version::Version;

/// An object whose methods a server calls by name (oslo.messaging's endpoint).
///
/// `#[rpc_endpoint]` implements it for a manager; it can also be written by hand, as the base API
/// (`ping`) is. A dispatcher holds endpoints of different types as `Arc<dyn Endpoint>`.
pub trait Endpoint: Send + Sync + 'static {
    /// The endpoint's namespace, version and methods.
    fn descriptor(&self) -> &EndpointDescriptor;

    /// Calls `method` with named `args` and returns its result as JSON, or the failure to send
    /// back. Called only with a method that [`descriptor`](Self::descriptor) lists.
    fn invoke<'a>(
        &'a self,
        ctx: Context,
        method: &'a str,
        args: Args,
    ) -> BoxFuture<'a, Result<JsonText, RemoteError>>;

    /// Runs the periodic task called `name` once. Called only with a task that
    /// [`descriptor`](Self::descriptor) lists; `#[rpc_endpoint]` implements it for the methods
    /// marked `#[periodic_task]`. The default has no tasks.
    fn run_periodic_task<'a>(
        &'a self,
        ctx: Context,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), PeriodicTaskError>> {
        let _ = ctx;
        Box::pin(std::future::ready(Err(PeriodicTaskError::NoSuchTask(
            name.to_owned(),
        ))))
    }
}

/// Why a run of a periodic task failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeriodicTaskError {
    /// The endpoint has no task of that name.
    #[error("no periodic task `{0}`")]
    NoSuchTask(String),
    /// The task returned an error (shown with `Display`).
    #[error("{0}")]
    Failed(String),
}

/// One periodic task of an endpoint: a method run every `spacing` while the service runs.
#[derive(Debug)]
#[non_exhaustive]
pub struct PeriodicTaskDescriptor {
    /// The method's name.
    pub name: &'static str,
    /// The time between two runs.
    pub spacing: Duration,
    /// Run on the first pass of the loop, rather than one `spacing` after start.
    pub run_immediately: bool,
}

impl PeriodicTaskDescriptor {
    /// Builds a task descriptor (usable in a `static`).
    pub const fn new(name: &'static str, spacing: Duration, run_immediately: bool) -> Self {
        Self {
            name,
            spacing,
            run_immediately,
        }
    }
}

/// What an endpoint serves: its name, topic, namespace, version and method table.
#[derive(Debug)]
#[non_exhaustive]
pub struct EndpointDescriptor {
    /// The type that implements the endpoint (`SchedulerManager`).
    pub name: &'static str,
    /// The topic it is meant to be served on, when it declares one.
    pub topic: Option<&'static str>,
    /// The namespace; `None` is the default namespace.
    pub namespace: Option<&'static str>,
    /// The newest version it serves.
    pub version: Version,
    /// Its methods.
    pub methods: &'static [MethodDescriptor],
    /// Its periodic tasks.
    pub periodic_tasks: &'static [PeriodicTaskDescriptor],
    /// Release names (`zed`, `2023.1`) and the versions they stand for, for `[upgrade_levels]`.
    pub aliases: &'static [(&'static str, Version)],
}

impl EndpointDescriptor {
    /// Builds a descriptor (usable in a `static`).
    pub const fn new(
        name: &'static str,
        topic: Option<&'static str>,
        namespace: Option<&'static str>,
        version: Version,
        methods: &'static [MethodDescriptor],
    ) -> Self {
        Self {
            name,
            topic,
            namespace,
            version,
            methods,
            periodic_tasks: &[],
            aliases: &[],
        }
    }

    /// The same descriptor with release aliases (usable in a `static`).
    #[must_use]
    pub const fn with_aliases(mut self, aliases: &'static [(&'static str, Version)]) -> Self {
        self.aliases = aliases;
        self
    }

    /// The version a release name stands for (case-insensitive), if the API declares it.
    pub fn alias(&self, name: &str) -> Option<Version> {
        self.aliases
            .iter()
            .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
            .map(|(_, version)| *version)
    }

    /// The same descriptor with periodic tasks (usable in a `static`).
    #[must_use]
    pub const fn with_periodic_tasks(mut self, tasks: &'static [PeriodicTaskDescriptor]) -> Self {
        self.periodic_tasks = tasks;
        self
    }

    /// The method called `name`, if the endpoint has one.
    pub fn method(&self, name: &str) -> Option<&MethodDescriptor> {
        self.methods.iter().find(|m| m.name == name)
    }
}

/// Whether a method answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MethodKind {
    /// Request and reply.
    Call,
    /// Fire and forget: callers get no reply.
    Cast,
}

/// One method of an endpoint.
#[derive(Debug)]
#[non_exhaustive]
pub struct MethodDescriptor {
    /// The wire name.
    pub name: &'static str,
    /// The version that added it.
    pub since: Version,
    /// Call or cast.
    pub kind: MethodKind,
    /// Its named arguments, the context excluded.
    pub args: &'static [ArgDescriptor],
}

impl MethodDescriptor {
    /// Builds a method descriptor (usable in a `static`).
    pub const fn new(
        name: &'static str,
        since: Version,
        kind: MethodKind,
        args: &'static [ArgDescriptor],
    ) -> Self {
        Self {
            name,
            since,
            kind,
            args,
        }
    }
}

/// One named argument of a method.
#[derive(Debug)]
#[non_exhaustive]
pub struct ArgDescriptor {
    /// The wire name.
    pub name: &'static str,
    /// The Rust type as written.
    pub type_name: &'static str,
    /// The version that added it, when newer than the method.
    pub since: Option<Version>,
}

impl ArgDescriptor {
    /// Builds an argument descriptor (usable in a `static`).
    pub const fn new(name: &'static str, type_name: &'static str, since: Option<Version>) -> Self {
        Self {
            name,
            type_name,
            since,
        }
    }
}

/// An endpoint whose every method answers one JSON value fixed when it was made, whatever the
/// arguments: oslo's `oslo_rpc_server_ping` ("pong") and a server's description of itself.
#[derive(Debug)]
pub(crate) struct FixedAnswer {
    descriptor: &'static EndpointDescriptor,
    answer: JsonText,
}

impl FixedAnswer {
    /// Answers `answer` to each method of `descriptor`.
    pub(crate) fn new(descriptor: &'static EndpointDescriptor, answer: JsonText) -> Self {
        Self { descriptor, answer }
    }
}

impl Endpoint for FixedAnswer {
    fn descriptor(&self) -> &EndpointDescriptor {
        self.descriptor
    }

    fn invoke<'a>(
        &'a self,
        _ctx: Context,
        method: &'a str,
        _args: Args,
    ) -> BoxFuture<'a, Result<JsonText, RemoteError>> {
        let result = match self.descriptor.method(method) {
            Some(_) => Ok(self.answer.clone()),
            None => Err(RemoteError::no_such_method(method)),
        };
        Box::pin(std::future::ready(result))
    }
}
