//! Interop with real oslo.messaging (pip-installed into a virtualenv under the target directory):
//! a Python `RPCClient` calls a Rust server, and a Rust client calls a Python server, over the
//! local RabbitMQ in a vhost of the test's own.

mod notifications;
mod objects;

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

use rpc_integration_tests::{Vhost, python_venv};
use rpc_runtime::{
    ApplicationError, CallOptions, Client, Context, RpcError, RpcServer, ServerConfig, Target,
    Version, rpc_endpoint,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The oslo.messaging release the captured samples come from.
const OSLO_MESSAGING: &str = "oslo.messaging==18.3.1";

/// The virtualenv's python with oslo.messaging, installed on first use. `None` (skip) when it
/// cannot be installed outside CI.
fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("oslo-venv");
            python_venv(&venv, &[OSLO_MESSAGING], "oslo_messaging")
        })
        .clone()
}

/// oslo.versionedobjects' release in nova 34's pinned set.
const OSLO_VERSIONEDOBJECTS: &str = "oslo.versionedobjects==3.12.0";

/// The virtualenv's python with oslo.messaging and oslo.versionedobjects.
fn python_with_objects() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ovo-venv");
            python_venv(
                &venv,
                &[OSLO_MESSAGING, OSLO_VERSIONEDOBJECTS],
                "oslo_versionedobjects",
            )
        })
        .clone()
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("interop/py")
        .join(name)
}

/// The Rust side's typed error; Python sees its class name and message.
#[derive(Debug, Serialize, Deserialize)]
struct InteropError {
    message: String,
}

impl fmt::Display for InteropError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApplicationError for InteropError {}

struct Interop {
    host: String,
    notes: mpsc::UnboundedSender<(String, i64)>,
}

#[rpc_endpoint(topic = "interop", version = "1.1")]
impl Interop {
    #[rpc(since = "1.0")]
    async fn echo(&self, _ctx: &Context, value: Value) -> Value {
        value
    }

    #[rpc(since = "1.0")]
    async fn add(&self, _ctx: &Context, a: i64, b: i64) -> i64 {
        a + b
    }

    #[rpc(since = "1.0")]
    async fn slow(&self, _ctx: &Context, millis: u64) -> u64 {
        tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
        millis
    }

    #[rpc(since = "1.0")]
    async fn host(&self, _ctx: &Context) -> String {
        self.host.clone()
    }

    #[rpc(since = "1.1")]
    async fn fail(&self, _ctx: &Context, message: String) -> Result<(), InteropError> {
        Err(InteropError { message })
    }

    #[rpc(since = "1.1")]
    async fn whoami(&self, ctx: &Context) -> serde_json::Map<String, Value> {
        ctx.to_dict()
    }

    #[rpc(since = "1.0", cast)]
    async fn note(&self, _ctx: &Context, value: i64) {
        let _ = self.notes.send((self.host.clone(), value));
    }
}

/// Runs one scenario of `client.py` and returns its JSON line.
async fn python_client(python: &Path, url: &str, topic: &str, scenario: &str) -> Value {
    let mut command = Command::new(python);
    command
        .arg(script("client.py"))
        .args(["--url", url, "--topic", topic, scenario]);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the client task")
        .expect("client.py runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|_| {
        panic!(
            "{scenario}: no JSON from client.py: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_oslo_client_calls_a_rust_server() {
    let Some(vhost) = Vhost::create("interop-pyclient") else {
        return;
    };
    let Some(python) = python() else { return };
    let url = vhost.url("");
    let transport = rpc_runtime::connect(&url).await.unwrap();
    let topic = rpc_integration_tests::unique_name("interop");
    let (tx, mut notes) = mpsc::unbounded_channel();
    let mut servers = Vec::new();
    for host in ["h1", "h2"] {
        let endpoint = Arc::new(Interop {
            host: host.into(),
            notes: tx.clone(),
        });
        servers.push(
            RpcServer::start(
                transport.clone(),
                Target::new(topic.as_str()).with_server(host),
                vec![endpoint],
                // oslo's `rpc_ping_enabled`.
                ServerConfig::default().with_ping_endpoint(true),
            )
            .await
            .unwrap(),
        );
    }
    let run = |scenario: &'static str| python_client(&python, &url, &topic, scenario);

    let out = run("call").await;
    assert_eq!(
        out["result"],
        json!({"a": [1, "two", null], "é": "\"q\""}),
        "{out}"
    );
    assert_eq!(run("add").await["result"], 42);

    assert_eq!(run("cast").await["result"], "sent");
    assert_eq!(notes.recv().await.unwrap().1, 5);

    assert_eq!(run("fanout").await["result"], "sent");
    let mut hosts = vec![notes.recv().await.unwrap(), notes.recv().await.unwrap()];
    hosts.sort();
    assert_eq!(hosts, vec![("h1".to_owned(), 7), ("h2".to_owned(), 7)]);

    assert_eq!(
        run("server").await["result"],
        json!(["h2", "h2", "h2", "h2", "h2"])
    );

    let ctx = run("context").await["result"].clone();
    assert_eq!(ctx["user_id"], "u-py", "{ctx}");
    assert_eq!(ctx["project_id"], "p-py");
    assert_eq!(ctx["request_id"], "req-py-1");
    assert_eq!(ctx["roles"], json!(["member"]));

    let err = run("app_error").await["error"].clone();
    assert_eq!(err["type"], "RemoteError", "{err}");
    assert_eq!(err["exc_type"], "InteropError");
    assert_eq!(err["value"], "boom");

    let err = run("bad_version").await["error"].clone();
    assert_eq!(err["exc_type"], "UnsupportedVersion", "{err}");
    assert!(err["value"].as_str().unwrap().contains("1.9"), "{err}");

    let err = run("no_method").await["error"].clone();
    assert_eq!(err["exc_type"], "NoSuchMethod", "{err}");

    // `oslo_rpc_server_ping`, as oslo's servers answer it with `rpc_ping_enabled`.
    let out = run("ping").await;
    assert_eq!(out["result"], "pong", "{out}");

    // oslo's call monitor: the Rust server heartbeats, the Python client keeps waiting.
    let out = run("monitor").await;
    assert_eq!(out["result"], 3500, "{out}");

    for server in servers {
        server.stop().await;
    }
}

/// A Python oslo.messaging server, terminated when dropped.
struct PythonServer(std::process::Child);

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_calls_a_python_oslo_server() {
    let Some(vhost) = Vhost::create("interop-pyserver") else {
        return;
    };
    let Some(python) = python() else { return };
    let url = vhost.url("");
    let topic = rpc_integration_tests::unique_name("pyserver");
    let mut child = Command::new(&python)
        .arg(script("server.py"))
        .args(["--url", &url, "--topic", &topic, "--server", "py1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = PythonServer(child);
    // Wait for the server's `ready` line: it consumes from then on.
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line == "ready")
    })
    .await
    .unwrap();
    assert!(ready, "server.py exited before `ready`");

    let transport = rpc_runtime::connect(&url).await.unwrap();
    let client = Client::new(
        transport,
        Target::new(topic.as_str()).with_version(Version::new(1, 0)),
    )
    .prepare(CallOptions::new().timeout(std::time::Duration::from_secs(15)));
    let ctx = Context::new()
        .with_user("u-rust")
        .with_project("p-rust")
        .with_roles(["admin"]);

    let value = json!({"nested": [1, 2.5, "é", null, {"k": true}]});
    let echoed: Value = client
        .call(&ctx, "echo", &json!({"value": value}))
        .await
        .unwrap();
    assert_eq!(echoed, value);
    let sum: i64 = client
        .call(&ctx, "add", &json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    assert_eq!(sum, 42);

    let v11 = client.prepare(CallOptions::new().version(Version::new(1, 1)));
    match v11
        .call::<()>(&ctx, "fail", &json!({"message": "boom"}))
        .await
        .unwrap_err()
    {
        RpcError::Remote(remote) => {
            assert_eq!(remote.class, "ValueError");
            assert_eq!(remote.module, "builtins");
            assert_eq!(remote.message, "boom");
            assert!(
                remote
                    .traceback
                    .iter()
                    .any(|l| l.contains("raise ValueError")),
                "{:?}",
                remote.traceback
            );
        }
        other => panic!("unexpected {other:?}"),
    }

    // Rust -> Python -> Rust keeps one trace: the Python server passes the context on as it
    // received it, the last Rust server continues the trace as a child span.
    let relayed_topic = rpc_integration_tests::unique_name("relayed");
    let (notes_tx, _notes) = mpsc::unbounded_channel();
    let relayed = RpcServer::start(
        rpc_runtime::connect(&url).await.unwrap(),
        Target::new(relayed_topic.as_str()).with_server("r1"),
        vec![Arc::new(Interop {
            host: "r1".into(),
            notes: notes_tx,
        })],
        ServerConfig::default(),
    )
    .await
    .unwrap();
    let traced = ctx.clone().with_new_trace();
    let sent = traced.traceparent().unwrap();
    let seen: serde_json::Map<String, Value> = v11
        .call(&traced, "relay", &json!({"topic": relayed_topic}))
        .await
        .unwrap();
    let arrived: rpc_runtime::trace::TraceParent = seen["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("no traceparent through Python: {seen:?}"))
        .parse()
        .unwrap();
    assert_eq!(
        arrived.trace_id(),
        sent.trace_id(),
        "one trace id end to end"
    );
    assert_ne!(
        arrived.span_id(),
        sent.span_id(),
        "the last server's own span"
    );
    assert_eq!(
        seen["user_id"], "u-rust",
        "the rest of the context came through too"
    );
    relayed.stop().await;

    // rpcctl reads a Python peer's failure as clearly as a Rust one's: class, the server's
    // message, what was sent; the traceback on request.
    let rpcctl = |extra: &'static [&'static str]| {
        let (url, topic) = (url.clone(), topic.clone());
        async move {
            let mut argv = vec!["rpcctl".to_owned()];
            argv.extend(extra.iter().map(|a| (*a).to_owned()));
            argv.extend(
                [
                    "call",
                    "--transport-url",
                    &url,
                    "--topic",
                    &topic,
                    "--version",
                    "1.1",
                ]
                .map(str::to_owned),
            );
            argv.extend(["fail", r#"{"message": "boom"}"#].map(str::to_owned));
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let code = rpc_runtime::cli::run(argv, &mut out, &mut err).await;
            (
                code,
                String::from_utf8(out).unwrap(),
                String::from_utf8(err).unwrap(),
            )
        }
    };
    let (code, _, err) = rpcctl(&[]).await;
    assert_eq!(code, std::process::ExitCode::from(1));
    assert!(
        err.starts_with("remote error builtins.ValueError: boom\n"),
        "{err}"
    );
    assert!(
        err.contains(r#"sent: fail({"message":"boom"}) to topic "#),
        "{err}"
    );
    assert!(err.contains("--traceback shows it"), "{err}");
    let (_, _, err) = rpcctl(&["--traceback"]).await;
    assert!(err.contains("raise ValueError"), "{err}");
    let (_, out, _) = rpcctl(&["--output", "json"]).await;
    let failed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(failed["error"]["class"], "ValueError", "{failed}");
    assert_eq!(failed["error"]["module"], "builtins");
    assert_eq!(failed["error"]["message"], "boom");

    let seen: serde_json::Map<String, Value> = v11.call(&ctx, "whoami", &json!({})).await.unwrap();
    assert_eq!(seen["user_id"], "u-rust");
    assert_eq!(seen["project_id"], "p-rust");
    assert_eq!(seen["request_id"], json!(ctx.request_id));
    assert_eq!(seen["roles"], json!(["admin"]));
    assert!(
        seen.contains_key("client_timeout"),
        "oslo adds client_timeout: {seen:?}"
    );

    let err = client
        .prepare(CallOptions::new().version(Version::new(1, 9)))
        .call::<Value>(&ctx, "echo", &json!({"value": 1}))
        .await
        .unwrap_err();
    // oslo names the version only in its sentence: the caller reads it from there and keeps the
    // sentence.
    match &err {
        RpcError::UnsupportedVersion {
            method,
            requested,
            message,
            ..
        } => {
            assert_eq!(method, "echo");
            assert_eq!(*requested, Some(Version::new(1, 9)), "{err}");
            assert!(
                message.contains("Endpoint does not support RPC version 1.9"),
                "{message}"
            );
            assert!(err.to_string().contains(message.as_str()), "{err}");
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = client
        .call::<Value>(&ctx, "no_such_method", &json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::NoSuchMethod { .. }), "{err:?}");

    // oslo's call monitor the other way: the Python server heartbeats a 3.5 s call that a 2 s
    // monitor would otherwise fail.
    let monitored =
        client.prepare(CallOptions::new().call_monitor_timeout(std::time::Duration::from_secs(2)));
    let millis: u64 = monitored
        .call(&ctx, "slow", &json!({"millis": 3500}))
        .await
        .unwrap();
    assert_eq!(millis, 3500);
    drop(server);
}
