//! An endpoint to serve over RabbitMQ, and helpers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rpc_integration_tests::Vhost;
use rpc_runtime::{ApplicationError, Context, RpcServer, ServerConfig, Transport, rpc_endpoint};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Refused {
    pub(crate) reason: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused: {}", self.reason)
    }
}

impl ApplicationError for Refused {}

pub(crate) struct Worker {
    pub(crate) host: String,
    pub(crate) notes: mpsc::UnboundedSender<(String, i64)>,
}

#[rpc_endpoint(topic = "worker", version = "1.1")]
impl Worker {
    #[rpc(since = "1.0")]
    async fn echo(&self, ctx: &Context, value: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"host": self.host, "value": value, "user": ctx.user_id})
    }

    #[rpc(since = "1.0")]
    async fn refuse(&self, _ctx: &Context, reason: String) -> Result<(), Refused> {
        Err(Refused { reason })
    }

    #[rpc(since = "1.0")]
    async fn slow(&self, _ctx: &Context, millis: u64, value: i64) -> i64 {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        value
    }

    #[rpc(since = "1.1", cast)]
    async fn note(&self, _ctx: &Context, value: i64) {
        let _ = self.notes.send((self.host.clone(), value));
    }
}

/// Servers on `hosts` in `vhost`, with a topic of the test's own.
pub(crate) struct Served {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) topic: String,
    pub(crate) notes: mpsc::UnboundedReceiver<(String, i64)>,
    pub(crate) servers: Vec<RpcServer>,
}

impl Served {
    pub(crate) fn client(&self) -> WorkerClient {
        WorkerClient::from_client(rpc_runtime::Client::new(
            Arc::clone(&self.transport),
            rpc_runtime::Target::new(self.topic.as_str()),
        ))
    }
}

pub(crate) async fn serve(vhost: &Vhost, query: &str, hosts: &[&str]) -> Served {
    serve_url(&vhost.url(query), hosts).await
}

pub(crate) async fn serve_url(url: &str, hosts: &[&str]) -> Served {
    serve_url_with(url, hosts, ServerConfig::default()).await
}

/// [`serve_url`] with a server configuration of the test's own.
pub(crate) async fn serve_url_with(url: &str, hosts: &[&str], config: ServerConfig) -> Served {
    let transport = rpc_runtime::connect(url)
        .await
        .expect("connect to RabbitMQ");
    let topic = rpc_integration_tests::unique_name("worker");
    let (tx, notes) = mpsc::unbounded_channel();
    let mut servers = Vec::new();
    for host in hosts {
        let worker = Arc::new(Worker {
            host: (*host).to_owned(),
            notes: tx.clone(),
        });
        let server = RpcServer::start(
            Arc::clone(&transport),
            rpc_runtime::Target::new(topic.as_str()).with_server(*host),
            vec![worker],
            config.clone(),
        )
        .await
        .expect("listen on RabbitMQ");
        servers.push(server);
    }
    Served {
        transport,
        topic,
        notes,
        servers,
    }
}
