//! W3C trace context across services: a call carries `traceparent` in its request context
//! (`_context_traceparent` on the wire), which oslo.messaging peers keep with the other context
//! keys they do not know, and pass on when they call onward with the same context.
//!
//! A server continues the caller's trace: the `rpc.request` span records `trace_id`, its own
//! `span_id` and the caller's as `parent_span_id`, and the method's context carries the server's
//! span as the parent of every call the method makes with it. A request that brings no trace
//! starts one when the span is recorded (a subscriber listens at `info`); otherwise nothing is
//! added, so an unobserved server pays one map lookup. A program starts a trace itself with
//! [`Context::with_new_trace`](crate::Context::with_new_trace).

use std::fmt;
use std::str::FromStr;

/// The context key that carries it (`_context_traceparent` on the wire).
pub const CONTEXT_KEY: &str = "traceparent";

/// A W3C `traceparent`: version 00, a trace id, the sender's span id, and the flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: u128,
    span_id: u64,
    flags: u8,
}

/// A `traceparent` that does not parse: it is ignored (and a new trace started), never fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a W3C traceparent (`00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero): `{0}`")]
pub struct ParseTraceParentError(String);

impl TraceParent {
    /// The flag that says the trace is sampled.
    pub const SAMPLED: u8 = 0x01;

    /// A new trace: random trace and span ids, sampled.
    pub fn new_root() -> Self {
        Self {
            trace_id: nonzero(rand::random()),
            span_id: nonzero(rand::random()),
            flags: Self::SAMPLED,
        }
    }

    /// The same trace, with a new span of this process as the parent of what follows.
    #[must_use]
    pub fn child(self) -> Self {
        Self {
            span_id: nonzero(rand::random()),
            ..self
        }
    }

    /// The trace id, as 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The span id, as 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        format!("{:016x}", self.span_id)
    }

    /// The flags (bit 0: sampled).
    pub fn flags(&self) -> u8 {
        self.flags
    }
}

/// Ids may not be all zero (W3C); a random zero becomes one.
fn nonzero<T: PartialEq + From<u8>>(value: T) -> T {
    if value == T::from(0) {
        T::from(1)
    } else {
        value
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.span_id, self.flags
        )
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

impl FromStr for TraceParent {
    type Err = ParseTraceParentError;

    /// Parses version 00 exactly; a later version is read by its first four fields, as the
    /// W3C specification asks of a version-00 reader.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseTraceParentError(text.chars().take(80).collect());
        let mut parts = text.trim().split('-');
        let (Some(version), Some(trace), Some(span), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let version = hex(version, 2).ok_or_else(invalid)?;
        if version == "ff" || (version == "00" && parts.next().is_some()) {
            return Err(invalid());
        }
        let trace_id = hex(trace, 32)
            .and_then(|t| u128::from_str_radix(t, 16).ok())
            .filter(|id| *id != 0)
            .ok_or_else(invalid)?;
        let span_id = hex(span, 16)
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .filter(|id| *id != 0)
            .ok_or_else(invalid)?;
        let flags = hex(flags, 2)
            .and_then(|f| u8::from_str_radix(f, 16).ok())
            .ok_or_else(invalid)?;
        Ok(Self {
            trace_id,
            span_id,
            flags,
        })
    }
}

/// With the `otlp` feature's layer installed: makes `span` the child of `parent` in
/// OpenTelemetry, and returns the span's own ids, to pass on. `None` without the layer.
#[cfg(feature = "otlp")]
pub(crate) fn otel_child(span: &tracing::Span, parent: Option<TraceParent>) -> Option<TraceParent> {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if let Some(parent) = parent {
        let remote = SpanContext::new(
            TraceId::from(parent.trace_id),
            SpanId::from(parent.span_id),
            TraceFlags::new(parent.flags),
            true,
            TraceState::default(),
        );
        span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote))
            .ok()?;
    }
    let context = span.context();
    let own = context.span().span_context().clone();
    own.is_valid().then(|| TraceParent {
        trace_id: u128::from_be_bytes(own.trace_id().to_bytes()),
        span_id: u64::from_be_bytes(own.span_id().to_bytes()),
        flags: own.trace_flags().to_u8(),
    })
}

/// `field` when it is `len` lowercase hex digits.
fn hex(field: &str, len: usize) -> Option<&str> {
    (field.len() == len
        && field
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w3c_examples_parse_and_print_back() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent: TraceParent = text.parse().unwrap();
        assert_eq!(parent.to_string(), text);
        assert_eq!(parent.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parent.span_id(), "00f067aa0ba902b7");
        assert_eq!(parent.flags(), TraceParent::SAMPLED);
        let child = parent.child();
        assert_eq!(child.trace_id(), parent.trace_id());
        assert_ne!(child.span_id(), parent.span_id());
        // A later version is read by its first fields.
        assert!(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
                .parse::<TraceParent>()
                .is_ok()
        );
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-xyz",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "{bad}");
        }
        let new = TraceParent::new_root();
        assert_eq!(new.to_string().parse::<TraceParent>().unwrap(), new);
    }
}
