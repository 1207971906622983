//! Each request runs in an `rpc.request` span recording its context. A binary of its own: a
//! thread-local subscriber races tracing's callsite registration when other tests hit the same
//! callsites at the same time on threads without one (the span then stays disabled).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rpc_runtime::{Context, ServerConfig};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};

#[allow(dead_code)]
#[path = "memory/fixture.rs"]
mod fixture;

use crate::fixture::serve;

/// Records the fields of every `rpc.request` span.
#[derive(Clone, Default)]
struct SpanRecorder(Arc<Mutex<Vec<HashMap<String, String>>>>);

struct FieldVisitor<'a>(&'a mut HashMap<String, String>);

impl Visit for FieldVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: tracing::Subscriber> Layer<S> for SpanRecorder {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: LayerContext<'_, S>,
    ) {
        if attrs.metadata().name() == "rpc.request" {
            let mut fields = HashMap::new();
            attrs.record(&mut FieldVisitor(&mut fields));
            self.0.lock().expect("recorder lock").push(fields);
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn each_request_runs_in_a_span_that_records_its_context() {
    let recorder = SpanRecorder::default();
    let subscriber = tracing_subscriber::registry().with(recorder.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let served = serve(&["host1"], ServerConfig::default()).await;
    let ctx = Context::new()
        .with_user("alice")
        .with_project("demo")
        .with_global_request_id("req-global-7");
    served.client().add(&ctx, 1, 2).await.unwrap();
    let spans = recorder.0.lock().unwrap().clone();
    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = &spans[0];
    assert_eq!(span["method"], "add");
    assert_eq!(span["request_id"], ctx.request_id);
    assert_eq!(span["global_request_id"], "req-global-7");
    assert_eq!(span["user_id"], "alice");
    assert_eq!(span["project_id"], "demo");
    assert!(span.contains_key("msg_id"));
}
