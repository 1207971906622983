//! One request's way through a server: refused before decoding, decoded in its own task, its
//! trace continued, routed, counted, run (under the caller's deadline, with call-monitor
//! heartbeats), and answered.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

use crate::dispatch::Dispatcher;
use crate::envelope::Reply;
use crate::metrics::{Refusal, ServedMethod, VersionLabel};
use crate::trace::TraceParent;
use crate::transport::{Listener, Message, ReplyTo};

/// Held by the consumer task: clears the flag when the task ends (a stop, a listener that
/// closed, a panic).
pub(super) struct Consuming(pub(super) Arc<AtomicBool>);

impl Drop for Consuming {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// What every request of one server shares.
#[derive(Debug)]
pub(super) struct Serving {
    pub(super) dispatcher: Dispatcher,
    pub(super) limits: Limits,
    /// The target's topic, for the request's span and its metrics.
    pub(super) topic: Arc<str>,
}

/// What the server refuses before decoding, and what its failures show.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) max_message_size: usize,
    pub(super) debug: bool,
}

pub(super) async fn consume(
    mut listener: Listener,
    serving: Arc<Serving>,
    slots: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
    _consuming: Consuming,
) {
    // `stop` is sent once; `changed()` resolves then (or when the server is dropped).
    loop {
        // Take a slot before a message, so a busy server leaves messages in the queue. A free
        // slot is taken without waiting.
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => tokio::select! {
                biased;
                _ = stopped.changed() => return,
                slot = Arc::clone(&slots).acquire_owned() => match slot {
                    Ok(slot) => slot,
                    Err(_) => return,
                },
            },
        };
        let message = tokio::select! {
            biased;
            _ = stopped.changed() => return,
            message = listener.recv() => match message {
                Some(message) => message,
                None => return,
            },
        };
        let serving = Arc::clone(&serving);
        // Decoding happens in the request's own task, so requests decode in parallel. The
        // request's future (808 bytes) is boxed: the task moves a pointer instead of copying it
        // on every state change, and its cell stays small (tokio aligns cells, which glibc
        // serves on its slow path).
        tokio::spawn(async move {
            Box::pin(handle(message, &serving)).await;
            drop(slot);
        });
    }
}

async fn handle(message: Message, serving: &Serving) {
    let Serving {
        dispatcher,
        limits,
        topic,
    } = serving;
    let metrics = crate::metrics::get();
    let refused = |reason| {
        if let Some(metrics) = metrics {
            metrics.request_refused(topic, reason);
        }
    };
    let size = message.body().len();
    if size > limits.max_message_size {
        refused(Refusal::too_large);
        let reason = format!(
            "the message is {size} bytes, over this server's maximum of {}",
            limits.max_message_size
        );
        // Rare paths are boxed, here and below: the request's future stays small enough for the
        // allocator's fast path.
        Box::pin(message.refuse(&reason)).await;
        return;
    }
    let Some(incoming) = message.open().await else {
        refused(Refusal::undecodable);
        return;
    };
    let (mut request, reply_to) = incoming.into_parts();
    let ctx = &request.context;
    let span = tracing::info_span!(
        "rpc.request",
        topic = &**topic,
        method = %request.method,
        request_id = %ctx.request_id,
        global_request_id = ctx.global_request_id.as_deref(),
        user_id = ctx.user_id.as_deref(),
        project_id = ctx.project_id.as_deref(),
        msg_id = reply_to.as_ref().map(|r| r.msg_id()),
        trace_id = tracing::field::Empty,
        span_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
    );
    continue_trace(&mut request, &span);
    let remaining = match request.deadline {
        None => None,
        Some(deadline) => match deadline.duration_since(SystemTime::now()) {
            Ok(remaining) => Some(remaining),
            Err(_) => {
                refused(Refusal::deadline_passed);
                span.in_scope(|| {
                    tracing::warn!("dropping a request whose caller's deadline has passed");
                });
                return;
            }
        },
    };
    // Only a failed cast needs the method name after dispatch, for its log line.
    let cast_method = reply_to.is_none().then(|| request.method.clone());
    // oslo's call monitor: heartbeat every int(_timeout)/2 seconds, when that is at least 1.
    let heartbeat_every = reply_to
        .as_ref()
        .and(request.monitor_timeout)
        .map(|t| Duration::from_secs(t.as_secs()) / 2)
        .filter(|every| *every >= Duration::from_secs(1));
    let route = dispatcher.route(&request).map_err(|unrouted| {
        refused(unrouted.refusal);
        unrouted.failure
    });
    // Counted by the endpoint's own names, so a caller cannot invent label values.
    let counted = match (metrics, &route) {
        (Some(metrics), Ok(route)) => {
            let method = ServedMethod {
                topic: Arc::clone(topic),
                namespace: route.namespace.unwrap_or(""),
                method: route.method,
                version: VersionLabel(route.version),
            };
            let in_flight = metrics.request_started(&method);
            Some((metrics, method, in_flight, Instant::now()))
        }
        _ => None,
    };
    // Boxed apart (it holds the request): moved into the deadline's timeout below, it would
    // otherwise take its room in this future twice.
    let dispatching = Box::pin(Dispatcher::invoke(route, request));
    let dispatched = async {
        match (heartbeat_every, reply_to.as_ref()) {
            (Some(every), Some(reply_to)) => {
                Box::pin(with_heartbeats(dispatching, every, reply_to)).await
            }
            _ => dispatching.await,
        }
    };
    let outcome = match remaining {
        None => dispatched.instrument(span.clone()).await,
        Some(remaining) => {
            let limited = tokio::time::timeout(remaining, dispatched);
            match limited.instrument(span.clone()).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    refused(Refusal::deadline_exceeded);
                    span.in_scope(|| {
                        tracing::warn!(
                            "cancelled: the caller's deadline passed while the method ran"
                        );
                    });
                    return;
                }
            }
        }
    };
    if let Some((metrics, method, in_flight, started)) = counted {
        drop(in_flight);
        let failure = outcome.as_ref().err().map(|failure| &*failure.class);
        metrics.request_finished(&method, started.elapsed(), failure);
    }
    let entered = span.enter();
    let reply = match (reply_to.is_some(), outcome) {
        (true, Ok(result)) => Reply::result(result),
        (true, Err(mut failure)) => {
            tracing::debug!(class = %failure.class, reason = %failure.message, "the call failed");
            if limits.debug {
                failure.traceback = server_backtrace();
            }
            Reply::failure(failure)
        }
        (false, Ok(_)) => return,
        (false, Err(failure)) => {
            let method = cast_method.unwrap_or_default();
            tracing::warn!(%method, class = %failure.class, reason = %failure.message, "a cast failed");
            return;
        }
    };
    drop(entered);
    if let Some(reply_to) = reply_to
        && let Err(error) = reply_to.send(reply).instrument(span.clone()).await
    {
        span.in_scope(|| tracing::warn!(%error, "could not send the reply"));
    }
}

/// Continues the caller's trace (or starts one when the span is recorded): the span records the
/// ids, and the method's context carries this request's span as the parent of its own calls.
fn continue_trace(request: &mut crate::envelope::Request<'_>, span: &tracing::Span) {
    let parent = request.context.traceparent();
    // With OpenTelemetry's layer, its span (a child of the caller's) has the ids.
    #[cfg(feature = "otlp")]
    let exported = if span.is_disabled() {
        None
    } else {
        crate::trace::otel_child(span, parent)
    };
    #[cfg(not(feature = "otlp"))]
    let exported: Option<TraceParent> = None;
    let own = match (exported, parent) {
        (Some(own), _) => own,
        (None, Some(parent)) => parent.child(),
        (None, None) if !span.is_disabled() => TraceParent::new_root(),
        (None, None) => return,
    };
    span.record("trace_id", own.trace_id());
    span.record("span_id", own.span_id());
    if let Some(parent) = parent {
        span.record("parent_span_id", parent.span_id());
    }
    request.context.to_mut().set_traceparent(own);
}

/// The server's backtrace where a failure is answered, as oslo's `tb` lines (debug only).
fn server_backtrace() -> Vec<String> {
    let trace = std::backtrace::Backtrace::force_capture().to_string();
    std::iter::once("Traceback (server side, [DEFAULT] debug = true):\n".to_owned())
        .chain(trace.lines().map(|line| format!("{line}\n")))
        .collect()
}

/// Runs `work`, sending a call-monitor heartbeat every `every` until it finishes.
async fn with_heartbeats<F: Future>(work: F, every: Duration, reply_to: &ReplyTo) -> F::Output {
    tokio::pin!(work);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            output = &mut work => return output,
            _ = ticker.tick() => {
                if let Err(error) = reply_to.heartbeat().await {
                    tracing::warn!(%error, "could not send a call-monitor heartbeat");
                }
            }
        }
    }
}
