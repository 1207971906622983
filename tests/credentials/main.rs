//! Credentials never reach logs, errors or `Debug` output: a broker user and database URLs with a
//! password, through success, failure, failover and reconnection, with every log line at TRACE
//! captured. A binary of its own: the subscriber is process-wide.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rpc_integration_tests::{ExternalService, MARIADB, Vhost, rabbitmqctl, require, unique_name};
use rpc_runtime::config::ConfigLoader;
use rpc_runtime::registry::{DatabaseUrl, SqlRegistry};
use rpc_runtime::transport::TransportUrl;
use rpc_runtime::{Context, RpcServer, ServerConfig, Target, rpc_endpoint};

const SECRET: &str = "Sup3r-s3cret_pw";

fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(Mutex::default)
}

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        logs()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A broker user whose password is [`SECRET`], deleted when dropped.
struct BrokerUser(String);

impl BrokerUser {
    fn create(vhost: &Vhost) -> Self {
        let name = unique_name("user");
        rabbitmqctl(&["add_user", &name, SECRET]);
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            vhost.name(),
            &name,
            ".*",
            ".*",
            ".*",
        ]);
        Self(name)
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["delete_user", &self.0])
            .output();
    }
}

struct Echo;

#[rpc_endpoint(topic = "secrets", version = "1.0")]
impl Echo {
    #[rpc]
    async fn echo(&self, _ctx: &Context, value: String) -> String {
        value
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_logs_errors_or_debug() {
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_writer(|| Capture)
        .with_ansi(false)
        .init();
    let Some(vhost) = Vhost::create("credentials") else {
        return;
    };
    let user = BrokerUser::create(&vhost);
    let mut shown = Vec::new();

    // A good connection with a password, serving and calling; a dead host first in the list, so
    // the transport fails over (and logs it).
    let url = format!(
        "rabbit://{u}:{SECRET}@127.0.0.1:1,{u}:{SECRET}@127.0.0.1:5672/{}",
        vhost.name(),
        u = user.0
    );
    let parsed: TransportUrl = url.parse().expect("a transport URL");
    shown.push(format!("{parsed:?} {parsed}"));
    let transport = rpc_runtime::connect(&url)
        .await
        .expect("connect with a password");
    shown.push(format!("{transport:?}"));
    let server = RpcServer::start(
        Arc::clone(&transport),
        Target::new("secrets").with_server("h1"),
        vec![Arc::new(Echo)],
        ServerConfig::default(),
    )
    .await
    .expect("serve");
    let client = EchoClient::new(Arc::clone(&transport));
    assert_eq!(
        client
            .echo(&Context::new(), "hi".into())
            .await
            .expect("call"),
        "hi"
    );
    server.stop().await;

    // Failures: a wrong password, an unreachable broker, a malformed URL with a password.
    let wrong = format!(
        "rabbit://{}:{SECRET}-wrong@127.0.0.1:5672/{}",
        user.0,
        vhost.name()
    );
    for bad in [
        wrong,
        format!("rabbit://u:{SECRET}@127.0.0.1:1/"),
        format!("rabbit://u:{SECRET}@127.0.0.1:notaport/"),
        format!("nosuch://u:{SECRET}@host/"),
    ] {
        let error = tokio::time::timeout(Duration::from_secs(60), rpc_runtime::connect(&bad))
            .await
            .expect("a connection failure ends")
            .expect_err("a bad URL or credentials fail");
        shown.push(format!("{error} {error:?}"));
    }

    // Databases: a password MariaDB refuses (its root has none), and a server that is not there.
    let mut databases = vec![(
        format!("postgres://postgres:{SECRET}@127.0.0.1:1/test"),
        "Connection refused",
    )];
    if require(ExternalService::MariaDb) {
        databases.push((
            format!("mysql://root:{SECRET}@{MARIADB}/test"),
            "Access denied",
        ));
    }
    for (database, cause) in databases {
        let url = DatabaseUrl::new(database);
        shown.push(format!("{url:?} {url}"));
        let error = SqlRegistry::connect(&url)
            .await
            .expect_err("the database refuses or is unreachable");
        // The failure is the one meant (the server's refusal, or nothing listening), not another.
        let chain = error_chain(&error);
        assert!(chain.contains(cause), "expected {cause:?}: {chain}");
        shown.push(format!("{chain} {error:?}"));
    }

    // Configuration holding both.
    let loaded = ConfigLoader::new()
        .text(
            "nova.conf",
            format!(
                "[DEFAULT]\ntransport_url = rabbit://nova:{SECRET}@rabbit/\n\
                 [database]\nconnection = mysql://nova:{SECRET}@db/nova\n\
                 [keystone_authtoken]\npassword = {SECRET}\n"
            ),
        )
        .load()
        .expect("the configuration loads");
    shown.push(format!("{:?}", loaded.config));
    shown.push(format!("{:?}", loaded.config.effective_transport_url()));

    drop(transport);
    let logs = String::from_utf8_lossy(&logs().lock().expect("logs")).into_owned();
    assert!(
        !logs.is_empty(),
        "nothing was logged: the capture is broken"
    );
    assert!(
        logs.contains("127.0.0.1:1"),
        "the failover was not logged: the check would prove nothing"
    );
    let leaked_log = logs.lines().find(|l| l.contains(SECRET));
    assert!(
        leaked_log.is_none(),
        "a log line shows the password: {leaked_log:?}"
    );
    let leaked = shown.iter().find(|t| t.contains(SECRET));
    assert!(
        leaked.is_none(),
        "an error or Debug output shows the password: {leaked:?}"
    );
}

/// An error and its sources, one after another.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
