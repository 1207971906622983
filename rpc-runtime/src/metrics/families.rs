//! Every metric this runtime records, with its labels. `docs/operations.md` lists them; a new
//! one is added here, registered in [`Metrics::new`], and listed there.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::version::Version;

/// Latency buckets, in seconds: half a millisecond to a minute (RPC's default timeout).
const LATENCY_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn latencies<S: Clone + std::hash::Hash + Eq>() -> Latencies<S> {
    Family::new_with_constructor(latency_histogram)
}

type Latencies<S> = Family<S, Histogram, fn() -> Histogram>;

/// A method a server dispatched: the topic it was served on, and the endpoint's namespace and
/// method name (from its descriptor: a caller cannot invent them) and the version the caller
/// asked for (one the endpoint serves).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct ServedMethod {
    pub(crate) topic: Arc<str>,
    pub(crate) namespace: &'static str,
    pub(crate) method: &'static str,
    pub(crate) version: VersionLabel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ServedFailure {
    #[prometheus(flatten)]
    method: ServedMethod,
    class: String,
}

/// Why a server refused a request before or instead of running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)] // The label values, as Prometheus shows them.
pub(crate) enum Refusal {
    /// Over `max_message_size`.
    too_large,
    /// Not a request this runtime can read.
    undecodable,
    /// The caller's deadline had passed when it arrived.
    deadline_passed,
    /// The caller's deadline passed while the method ran: cancelled.
    deadline_exceeded,
    /// No endpoint has the method (oslo's `NoSuchMethod`).
    no_such_method,
    /// No endpoint serves the version (oslo's `UnsupportedVersion`).
    unsupported_version,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Refused {
    topic: Arc<str>,
    reason: Refusal,
}

/// A call or cast as a client sent it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClientMethod {
    topic: Arc<str>,
    method: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClientSend {
    #[prometheus(flatten)]
    method: ClientMethod,
    kind: SendKind,
}

/// A call (waits for its reply) or a cast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum SendKind {
    call,
    cast,
}

/// What [`Metrics::transport_event`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransportEvent {
    /// A lost connection was made again.
    Reconnected,
    /// The broker cancelled a consumer.
    ConsumerCancelled,
    /// A reply came back unroutable.
    ReplyUnroutable,
}

/// Which transport: `rabbit` or `memory`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TopicLabel {
    topic: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PeriodicRun {
    task: &'static str,
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TaskLabel {
    task: &'static str,
}

/// How something ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum Outcome {
    ok,
    failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RegistryOperation {
    operation: &'static str,
    outcome: Outcome,
}

/// A version as a label value (`5.0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct VersionLabel(pub(crate) Version);

impl EncodeLabelValue for VersionLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        write!(encoder, "{}", self.0)
    }
}

/// The runtime's metrics: one set per process, made by [`enable`](super::enable).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    server_requests: Family<ServedMethod, Counter>,
    server_failures: Family<ServedFailure, Counter>,
    server_latency: Latencies<ServedMethod>,
    server_in_flight: Family<ServedMethod, Gauge>,
    server_refused: Family<Refused, Counter>,
    client_sent: Family<ClientSend, Counter>,
    client_timeouts: Family<ClientMethod, Counter>,
    client_latency: Latencies<ClientMethod>,
    connections: Family<TransportLabel, Gauge>,
    reconnects: Family<TransportLabel, Counter>,
    consumer_cancellations: Family<TransportLabel, Counter>,
    unroutable_replies: Family<TransportLabel, Counter>,
    prefetch_in_use: Family<TransportLabel, Gauge>,
    heartbeat_failures: Family<TopicLabel, Counter>,
    periodic_runs: Family<PeriodicRun, Counter>,
    periodic_latency: Latencies<TaskLabel>,
    registry_latency: Latencies<RegistryOperation>,
}

impl Metrics {
    pub(super) fn new() -> Self {
        let metrics = Self {
            registry: Registry::default(),
            server_requests: Family::default(),
            server_failures: Family::default(),
            server_latency: latencies(),
            server_in_flight: Family::default(),
            server_refused: Family::default(),
            client_sent: Family::default(),
            client_timeouts: Family::default(),
            client_latency: latencies(),
            connections: Family::default(),
            reconnects: Family::default(),
            consumer_cancellations: Family::default(),
            unroutable_replies: Family::default(),
            prefetch_in_use: Family::default(),
            heartbeat_failures: Family::default(),
            periodic_runs: Family::default(),
            periodic_latency: latencies(),
            registry_latency: latencies(),
        };
        let mut registry = Registry::default();
        let m = &metrics;
        macro_rules! register {
            ($name:literal, $help:literal, $family:ident) => {
                registry.register($name, $help, m.$family.clone())
            };
            ($name:literal, $help:literal, seconds, $family:ident) => {
                registry.register_with_unit($name, $help, Unit::Seconds, m.$family.clone())
            };
        }
        register!(
            "rpc_server_requests",
            "Requests a server ran to the end (answered, or a cast finished)",
            server_requests
        );
        register!(
            "rpc_server_failures",
            "Requests whose method failed, by the failure's class",
            server_failures
        );
        register!(
            "rpc_server_request_duration",
            "How long a method ran, from dispatch to its result",
            seconds,
            server_latency
        );
        register!(
            "rpc_server_requests_in_flight",
            "Requests running now",
            server_in_flight
        );
        register!(
            "rpc_server_refused",
            "Requests refused before or instead of running, by reason",
            server_refused
        );
        register!(
            "rpc_client_requests",
            "Calls and casts a client sent",
            client_sent
        );
        register!(
            "rpc_client_timeouts",
            "Calls that got no reply within their timeout",
            client_timeouts
        );
        register!(
            "rpc_client_call_duration",
            "How long a call waited for its reply (timeouts included)",
            seconds,
            client_latency
        );
        register!(
            "rpc_transport_connections",
            "Connections to the broker open now",
            connections
        );
        register!(
            "rpc_transport_reconnects",
            "Times a connection to the broker was lost and made again",
            reconnects
        );
        register!(
            "rpc_transport_consumer_cancellations",
            "Consumers the broker cancelled (a queue deleted, a node lost)",
            consumer_cancellations
        );
        register!(
            "rpc_transport_unroutable_replies",
            "Replies the broker could not route (the caller's reply queue had gone)",
            unroutable_replies
        );
        register!(
            "rpc_transport_prefetch_in_use",
            "Messages delivered to this process and not yet settled",
            prefetch_in_use
        );
        register!(
            "rpc_service_heartbeat_failures",
            "Service heartbeats that could not be written to the registry",
            heartbeat_failures
        );
        register!(
            "rpc_periodic_task_runs",
            "Periodic task runs, by outcome",
            periodic_runs
        );
        register!(
            "rpc_periodic_task_duration",
            "How long a periodic task ran",
            seconds,
            periodic_latency
        );
        register!(
            "rpc_registry_operation_duration",
            "How long a services-registry operation took",
            seconds,
            registry_latency
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// The registry the runtime's metrics are in, for encoding.
    pub(super) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A request starts running: counted in flight until the returned guard drops.
    pub(crate) fn request_started(&self, method: &ServedMethod) -> InFlight {
        let gauge = self.server_in_flight.get_or_create_owned(method);
        gauge.inc();
        InFlight(gauge)
    }

    /// A request ran to the end in `elapsed`; `failure` is its failure's class.
    pub(crate) fn request_finished(
        &self,
        method: &ServedMethod,
        elapsed: Duration,
        failure: Option<&str>,
    ) {
        self.server_requests.get_or_create(method).inc();
        self.server_latency
            .get_or_create(method)
            .observe(elapsed.as_secs_f64());
        if let Some(class) = failure {
            self.server_failures
                .get_or_create(&ServedFailure {
                    method: method.clone(),
                    class: class.to_owned(),
                })
                .inc();
        }
    }

    /// A server refused a request on `topic`.
    pub(crate) fn request_refused(&self, topic: &Arc<str>, reason: Refusal) {
        self.server_refused
            .get_or_create(&Refused {
                topic: Arc::clone(topic),
                reason,
            })
            .inc();
    }

    /// A client sent a call or a cast.
    pub(crate) fn client_sent(&self, topic: &Arc<str>, method: &str, kind: SendKind) {
        self.client_sent
            .get_or_create(&ClientSend {
                method: ClientMethod {
                    topic: Arc::clone(topic),
                    method: method.to_owned(),
                },
                kind,
            })
            .inc();
    }

    /// A client's call ended after `elapsed`, timed out or not.
    pub(crate) fn client_call_ended(
        &self,
        topic: &Arc<str>,
        method: &str,
        elapsed: Duration,
        timed_out: bool,
    ) {
        let labels = ClientMethod {
            topic: Arc::clone(topic),
            method: method.to_owned(),
        };
        self.client_latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if timed_out {
            self.client_timeouts.get_or_create(&labels).inc();
        }
    }

    /// A connection to the broker opened (`up`) or closed.
    pub(crate) fn connection(&self, transport: &'static str, up: bool) {
        let gauge = self
            .connections
            .get_or_create(&TransportLabel { transport });
        if up {
            gauge.inc();
        } else {
            gauge.dec();
        }
    }

    /// Something happened to a transport's connection or consumers.
    pub(crate) fn transport_event(&self, transport: &'static str, event: TransportEvent) {
        let family = match event {
            TransportEvent::Reconnected => &self.reconnects,
            TransportEvent::ConsumerCancelled => &self.consumer_cancellations,
            TransportEvent::ReplyUnroutable => &self.unroutable_replies,
        };
        family.get_or_create(&TransportLabel { transport }).inc();
    }

    /// A message delivered to this process, counted until the returned guard drops (settled).
    pub(crate) fn unsettled(&self, transport: &'static str) -> Unsettled {
        let gauge = self
            .prefetch_in_use
            .get_or_create_owned(&TransportLabel { transport });
        gauge.inc();
        Unsettled(gauge)
    }

    /// A heartbeat of a service on `topic` failed.
    pub(crate) fn heartbeat_failed(&self, topic: &str) {
        self.heartbeat_failures
            .get_or_create(&TopicLabel {
                topic: topic.to_owned(),
            })
            .inc();
    }

    /// A periodic task ran for `elapsed`.
    pub(crate) fn periodic_ran(&self, task: &'static str, elapsed: Duration, ok: bool) {
        let outcome = if ok { Outcome::ok } else { Outcome::failed };
        self.periodic_runs
            .get_or_create(&PeriodicRun { task, outcome })
            .inc();
        self.periodic_latency
            .get_or_create(&TaskLabel { task })
            .observe(elapsed.as_secs_f64());
    }

    /// A registry operation took `elapsed`.
    pub(crate) fn registry_operation(&self, operation: &'static str, elapsed: Duration, ok: bool) {
        let outcome = if ok { Outcome::ok } else { Outcome::failed };
        self.registry_latency
            .get_or_create(&RegistryOperation { operation, outcome })
            .observe(elapsed.as_secs_f64());
    }
}

/// A request counted in flight; dropping it counts it out (also when it is cancelled).
#[derive(Debug)]
pub(crate) struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A delivered message counted in `rpc_transport_prefetch_in_use` until it drops.
#[derive(Debug)]
pub(crate) struct Unsettled(Gauge);

impl Drop for Unsettled {
    fn drop(&mut self) {
        self.0.dec();
    }
}
