//! TLS to the broker: the test makes a CA and a server certificate with `openssl`, starts a TLS
//! listener on the running RabbitMQ (`rabbitmqctl eval`), serves and calls over it, and stops the
//! listener afterwards.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use rpc_integration_tests::{Vhost, rabbitmqctl};
use rpc_runtime::{Context, TransportError};
use serde_json::json;

/// A TLS listener on the running broker, stopped when dropped.
struct TlsListener {
    port: u16,
    dir: PathBuf,
}

impl TlsListener {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(rpc_integration_tests::unique_name("rpc-tls"));
        std::fs::create_dir_all(&dir).expect("cert dir");
        let run = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl runs");
            assert!(
                status.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&status.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=rpc-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ]);
        // The broker runs as another user: it must read the directory and the files.
        let _ = Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(&dir)
            .status();
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("addr")
            .port();
        let path = |name: &str| dir.join(name).display().to_string();
        let expression = format!(
            "rabbit_networking:start_ssl_listener({port}, [{{cacertfile,\"{}\"}},{{certfile,\"{}\"}},{{keyfile,\"{}\"}}], 1, 1).",
            path("ca.pem"),
            path("server.pem"),
            path("server.key")
        );
        rabbitmqctl(&["eval", &expression]);
        Self { port, dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args([
                "eval",
                &format!("rabbit_networking:stop_tcp_listener({}).", self.port),
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_url(vhost: &Vhost, port: u16, ca: &Path) -> String {
    format!(
        "amqps://guest:guest@localhost:{port}/{}?ssl_ca_file={}",
        vhost.name(),
        ca.display()
    )
}

#[tokio::test]
async fn calls_travel_over_tls_with_a_private_ca() {
    let Some(vhost) = Vhost::create("tls") else {
        return;
    };
    let listener = TlsListener::start();
    // `serve` connects with this vhost's URL plus a query: point it at the TLS port instead.
    let url = tls_url(&vhost, listener.port, &listener.ca());
    let transport = rpc_runtime::connect(&url).await.expect("connect over TLS");
    drop(transport);
    let query = format!("?ssl_ca_file={}", listener.ca().display());
    let served = serve_tls(&vhost, listener.port, &query).await;
    let reply = served
        .client()
        .echo(&Context::new(), json!("secret"))
        .await
        .unwrap();
    assert_eq!(reply["value"], "secret");

    // Without the CA the broker's certificate is not trusted: a clear error, no password.
    let untrusted = format!(
        "amqps://guest:s3cret@localhost:{}/{}",
        listener.port,
        vhost.name()
    );
    let err = rpc_runtime::connect(&untrusted).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, TransportError::Connect { .. }), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

async fn serve_tls(vhost: &Vhost, port: u16, query: &str) -> crate::fixture::Served {
    let local = vhost.url(query).replace(
        &format!("rabbit://guest:guest@{}", rpc_integration_tests::RABBITMQ),
        &format!("amqps://guest:guest@localhost:{port}"),
    );
    crate::fixture::serve_url(&local, &["h1"]).await
}
