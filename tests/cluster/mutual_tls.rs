//! Mutual TLS, as clusters behind a firewall run it: the cluster's third node also listens on
//! [`CLUSTER_TLS_PORT`] with `ssl_options.verify = verify_peer` and `fail_if_no_peer_cert = true`,
//! with a CA and certificates `scripts/rabbit-cluster` makes with openssl. A client that presents
//! its certificate (`ssl_cert_file`, `ssl_key_file`, from the URL or `[oslo_messaging_rabbit]`)
//! calls through it; one without is refused with an error that says so; the key's contents are
//! never logged.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rpc_integration_tests::{CLUSTER_TLS_PORT, Cluster, Vhost, cluster_tls_dir};
use rpc_runtime::config::ConfigLoader;
use rpc_runtime::{Client, Context, RpcServer, ServerConfig, Target, TransportError};

use crate::{CLUSTER, Echo, EchoClient};

fn tls_file(name: &str) -> PathBuf {
    let path = cluster_tls_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: `scripts/rabbit-cluster start` makes it",
        path.display()
    );
    path
}

/// The mutual-TLS listener's URL for `vhost`, with `query` appended.
fn tls_url(vhost: &Vhost, query: &str) -> String {
    format!(
        "amqps://guest:guest@localhost:{CLUSTER_TLS_PORT}/{}{query}",
        vhost.name()
    )
}

/// Log lines written while a test runs, on its own thread (`set_default`).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread: everything the runtime logs while the test runs is captured.
#[tokio::test]
async fn a_client_with_its_certificate_calls_through_the_mutual_tls_listener() {
    let _one_at_a_time = CLUSTER.lock().await;
    let Some(_cluster) = Cluster::require() else {
        return;
    };
    let Some(vhost) = Vhost::create("mtls") else {
        return;
    };
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let (ca, cert, key) = (
        tls_file("ca.pem"),
        tls_file("client.pem"),
        tls_file("client.key"),
    );
    // The server's options in its URL.
    let server_url = tls_url(
        &vhost,
        &format!(
            "?ssl_ca_file={}&ssl_cert_file={}&ssl_key_file={}",
            ca.display(),
            cert.display(),
            key.display()
        ),
    );
    let topic = rpc_integration_tests::unique_name("mtls");
    let server = RpcServer::start(
        rpc_runtime::connect(&server_url)
            .await
            .expect("a server connects with its certificate"),
        Target::new(topic.as_str()).with_server("h1"),
        vec![Arc::new(Echo::default())],
        ServerConfig::default(),
    )
    .await
    .expect("serve over mutual TLS");
    // The client's in `[oslo_messaging_rabbit]`, as an operator's nova.conf has them.
    let conf = format!(
        "[DEFAULT]\ntransport_url = {}\n[oslo_messaging_rabbit]\nssl = true\nssl_ca_file = {}\n\
         ssl_cert_file = {}\nssl_key_file = {}\n",
        tls_url(&vhost, ""),
        ca.display(),
        cert.display(),
        key.display()
    );
    let loaded = ConfigLoader::new()
        .text("nova.conf", &conf)
        .load()
        .expect("the configuration loads");
    assert_eq!(loaded.warnings, Vec::new(), "every TLS option is known");
    let transport = loaded
        .config
        .connect_transport()
        .await
        .expect("a client connects with its certificate from the configuration");
    let client = EchoClient::from_client(Client::new(transport, Target::new(topic.as_str())));
    assert_eq!(client.echo(&Context::new(), 42).await.expect("a call"), 42);

    // The broker saw both connections over TLS, each with the client certificate.
    let connections = rpc_integration_tests::rabbitmqctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "vhost",
        "ssl",
        "peer_cert_subject",
    ]);
    let ours: Vec<&str> = connections
        .lines()
        .filter(|line| line.starts_with(&format!("{}\t", vhost.name())))
        .collect();
    assert_eq!(ours.len(), 2, "{connections}");
    for line in &ours {
        assert!(
            line.contains("\ttrue\t") && line.contains("CN=rpc-client"),
            "a TLS connection with the client certificate: {line}"
        );
    }
    server.stop().await;

    // Never the key's contents, at any level.
    let logs = String::from_utf8_lossy(
        &logs
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
    .into_owned();
    assert!(
        logs.contains("connected to RabbitMQ"),
        "the logs were captured"
    );
    let key_text = std::fs::read_to_string(&key).expect("the client key");
    for line in key_text.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!logs.contains(line), "a line of the private key was logged");
    }
    assert!(!logs.contains("PRIVATE KEY"), "the private key was logged");
}

#[tokio::test]
async fn without_a_client_certificate_the_broker_refuses_and_the_error_says_so() {
    let _one_at_a_time = CLUSTER.lock().await;
    let Some(_cluster) = Cluster::require() else {
        return;
    };
    let Some(vhost) = Vhost::create("mtls-refused") else {
        return;
    };
    let url = format!(
        "amqps://guest:s3cret@localhost:{CLUSTER_TLS_PORT}/{}?ssl_ca_file={}",
        vhost.name(),
        tls_file("ca.pem").display()
    );
    let error = rpc_runtime::connect(&url)
        .await
        .expect_err("no certificate, no connection");
    let text = format!("{error} {error:?}");
    eprintln!("without a client certificate: {error}");
    assert!(matches!(error, TransportError::Connect { .. }), "{text}");
    // The broker's alert names it; when the broker closed the connection before its alert was
    // read (under load), the likely reason is named.
    assert!(
        text.contains("require a client certificate")
            || text.contains("requires a client certificate"),
        "the error says what is missing: {text}"
    );
    assert!(text.contains("none was given"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");

    // A key that is not there: named by its option and path, no connection.
    let url = format!(
        "{url}&ssl_cert_file={}&ssl_key_file=/nonexistent/client.key",
        tls_file("client.pem").display()
    );
    let error = rpc_runtime::connect(&url)
        .await
        .expect_err("an unreadable key");
    assert!(
        error
            .to_string()
            .contains("cannot read ssl_key_file /nonexistent/client.key"),
        "{error}"
    );
}
