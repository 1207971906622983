//! OpenTelemetry export (rpc-runtime's `otlp` feature): a server's `rpc.request` span is exported
//! over OTLP/HTTP as the child of the caller's span. A test binary of its own, because it sets
//! the process's global subscriber; the collector is a small HTTP server of the test's own.

// Helpers report by panicking.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rpc_integration_tests::unique_name;
use rpc_runtime::{Context, RpcServer, ServerConfig, rpc_endpoint};
use serde_json::Value;

struct Echo;

#[rpc_endpoint(topic = "traced", version = "1.0")]
impl Echo {
    #[rpc]
    async fn echo(&self, ctx: &Context, value: i64) -> (i64, Option<String>) {
        (value, ctx.traceparent().map(|t| t.to_string()))
    }
}

/// Takes OTLP/HTTP posts and hands their JSON bodies over.
fn collector() -> (SocketAddr, mpsc::Receiver<Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || serve(stream, &tx));
        }
    });
    (addr, rx)
}

/// Answers the posts of one connection (kept alive by the exporter's client).
fn serve(stream: TcpStream, tx: &mpsc::Sender<Value>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        if let Ok(json) = serde_json::from_slice(&body) {
            let _ = tx.send(json);
        }
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// Every span of an OTLP/JSON export.
fn spans(export: &Value) -> Vec<Value> {
    let mut spans = Vec::new();
    for resource in export["resourceSpans"].as_array().into_iter().flatten() {
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            spans.extend(scope["spans"].as_array().into_iter().flatten().cloned());
        }
    }
    spans
}

#[test]
fn the_servers_span_is_exported_as_the_child_of_the_callers() {
    let (addr, exports) = collector();
    let config = rpc_runtime::config::ConfigLoader::new()
        .set("tracing", "otlp_endpoint", format!("http://{addr}"))
        .load()
        .unwrap()
        .config;
    // Before any runtime: the exporter's client blocks on a thread of its own.
    rpc_runtime::logging::init(&config.logging, "otlp-test", "warn").unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let caller = Context::new().with_new_trace();
    let sent = caller.traceparent().unwrap();
    let (value, onward) = runtime.block_on(async {
        let url = format!("memory://{}", unique_name("otlp"));
        let server = RpcServer::start(
            rpc_runtime::connect(&url).await.unwrap(),
            EchoClient::target(),
            vec![Arc::new(Echo)],
            ServerConfig::default(),
        )
        .await
        .unwrap();
        let client = EchoClient::new(rpc_runtime::connect(&url).await.unwrap());
        let answer = client.echo(&caller, 7).await.unwrap();
        server.stop().await;
        answer
    });
    assert_eq!(value, 7);
    rpc_runtime::logging::flush_traces();

    let deadline = Instant::now() + Duration::from_secs(20);
    let span = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let export = exports
            .recv_timeout(left)
            .expect("an export reaches the collector");
        if let Some(span) = spans(&export)
            .into_iter()
            .find(|s| s["name"] == "rpc.request")
        {
            break span;
        }
    };
    assert_eq!(span["traceId"], sent.trace_id(), "{span}");
    assert_eq!(span["parentSpanId"], sent.span_id(), "{span}");
    // The method's context carries the exported span as the parent of its own calls.
    let onward: rpc_runtime::trace::TraceParent = onward.unwrap().parse().unwrap();
    assert_eq!(onward.trace_id(), sent.trace_id());
    assert_eq!(span["spanId"], onward.span_id(), "{span}");
}
