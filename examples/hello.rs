//! A manager with a few methods, served and called over `memory://`: the whole data path in one
//! process, printing what happens.
//!
//! Run it with `cargo run -p rpc-examples --bin hello`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rpc_runtime::{
    ApplicationError, CallError, CallOptions, Context, RpcError, RpcServer, ServerConfig,
    Transport, rpc_endpoint,
};
use serde::{Deserialize, Serialize};

/// The manager: what the server runs.
struct Greeter {
    host: String,
    greeted: AtomicU64,
}

/// A typed application error: the caller gets it back as this type.
#[derive(Debug, Serialize, Deserialize)]
struct NoSuchPerson {
    name: String,
}

impl fmt::Display for NoSuchPerson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nobody called {:?} lives here", self.name)
    }
}

impl ApplicationError for NoSuchPerson {}

#[rpc_endpoint(topic = "greeter", version = "1.2")]
impl Greeter {
    /// Says hello, optionally in a language (added in 1.1).
    #[rpc(since = "1.0")]
    async fn hello(
        &self,
        ctx: &Context,
        name: String,
        #[since("1.1")] language: Option<String>,
    ) -> Result<String, NoSuchPerson> {
        if name.is_empty() {
            return Err(NoSuchPerson { name });
        }
        self.greeted.fetch_add(1, Ordering::Relaxed);
        let greeting = match language.as_deref() {
            Some("fr") => "Bonjour",
            _ => "Hello",
        };
        Ok(format!(
            "{greeting}, {name}, from {} (request {})",
            self.host, ctx.request_id
        ))
    }

    /// Adds two numbers.
    #[rpc(since = "1.0")]
    async fn add(&self, _ctx: &Context, a: i64, b: i64) -> i64 {
        a + b
    }

    /// Counts greetings so far.
    #[rpc(since = "1.2")]
    async fn greeted(&self, _ctx: &Context) -> u64 {
        self.greeted.load(Ordering::Relaxed)
    }

    /// Takes a note; nobody waits for an answer.
    #[rpc(since = "1.1", cast)]
    async fn note(&self, ctx: &Context, text: String) {
        println!("  server got a cast from {:?}: {text}", ctx.user_id);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();

    let transport: Arc<dyn Transport> = rpc_runtime::connect("memory://hello").await?;
    println!("transport: memory://hello (in process, oslo.messaging envelope)");

    let manager = Arc::new(Greeter {
        host: "host1".into(),
        greeted: AtomicU64::new(0),
    });
    let server = RpcServer::start(
        Arc::clone(&transport),
        GreeterClient::target().with_server("host1"),
        vec![manager],
        ServerConfig::default(),
    )
    .await?;
    println!(
        "server: consuming on topic `{}`, RPC API {}",
        GreeterClient::TOPIC,
        GreeterClient::VERSION
    );

    let client = GreeterClient::new(Arc::clone(&transport));
    let ctx = Context::new().with_user("alice").with_project("demo");

    let text = client.hello(&ctx, "Ada".into(), None).await?;
    println!("call  hello(Ada)            -> {text:?} (sent at 1.0: no language)");
    let text = client.hello(&ctx, "Ada".into(), Some("fr".into())).await?;
    println!("call  hello(Ada, fr)        -> {text:?} (sent at 1.1)");
    let sum = client.add(&ctx, 2, 40).await?;
    println!("call  add(2, 40)            -> {sum}");
    match client.hello(&ctx, String::new(), None).await {
        Err(CallError::Application(e)) => {
            println!("call  hello(\"\")             -> typed error: {e}")
        }
        other => println!("call  hello(\"\")             -> unexpected {other:?}"),
    }
    client.note(&ctx, "remember the milk".into()).await?;
    println!("cast  note(...)             -> sent");
    let count = client.greeted(&ctx).await?;
    println!("call  greeted()             -> {count}");

    let nobody = GreeterClient::from_client(rpc_runtime::Client::new(
        Arc::clone(&transport),
        rpc_runtime::Target::new("nobody-listens"),
    ))
    .prepare(CallOptions::new().timeout(Duration::from_millis(200)));
    match nobody.add(&ctx, 1, 1).await {
        Err(RpcError::Timeout { timeout, .. }) => {
            println!("call  add on an empty topic -> timed out after {timeout:?}");
        }
        other => println!("call  add on an empty topic -> unexpected {other:?}"),
    }

    server.stop().await;
    println!("server: stopped after finishing in-flight requests");
    Ok(())
}
