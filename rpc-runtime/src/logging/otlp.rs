//! OpenTelemetry export (feature `otlp`): spans go over OTLP/HTTP (JSON) to a collector, in
//! batches, from a thread of the exporter's own. The endpoint is `[tracing] otlp_endpoint`, a base
//! URL as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it (`/v1/traces` is appended), or else the standard
//! `OTEL_EXPORTER_OTLP_*` variables; with neither, nothing is exported.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{Layer, Registry};

use super::LoggingError;

/// The provider, kept for [`flush_traces`].
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The OpenTelemetry layer, when an endpoint is configured; spans are named `program`'s
/// (`service.name`).
pub(super) fn layer(
    endpoint: Option<&str>,
    program: &str,
) -> Result<Option<Box<dyn Layer<Registry> + Send + Sync>>, LoggingError> {
    let from_env = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    if endpoint.is_none() && !from_env {
        return Ok(None);
    }
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson);
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')));
    }
    let exporter = builder.build().map_err(|error| LoggingError::Otlp {
        reason: error.to_string(),
    })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(program.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("rpc-runtime");
    let _ = PROVIDER.set(provider);
    Ok(Some(Box::new(
        tracing_opentelemetry::layer().with_tracer(tracer),
    )))
}

/// Sends the spans not yet exported and waits for the collector to take them (at exit, or in a
/// test). Nothing to do without an exporter.
pub fn flush_traces() {
    if let Some(provider) = PROVIDER.get()
        && let Err(error) = provider.force_flush()
    {
        tracing::warn!(%error, "could not export the last spans");
    }
}
