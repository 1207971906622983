//! A calculator endpoint at 4.1 and helpers to serve it on a private broker.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rpc_runtime::{
    ApplicationError, Context, MemoryBroker, RemoteError, RpcServer, ServerConfig, Target,
    Transport, rpc_endpoint,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, mpsc, watch};

/// The calculator's typed error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DivideByZero {
    pub(crate) dividend: i64,
}

impl fmt::Display for DivideByZero {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot divide {} by zero", self.dividend)
    }
}

impl ApplicationError for DivideByZero {}

/// Something that is not the calculator's typed error but crosses the wire as one would.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Overheated {
    pub(crate) celsius: u32,
}

impl fmt::Display for Overheated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "overheated at {}C", self.celsius)
    }
}

impl ApplicationError for Overheated {
    fn class(&self) -> String {
        "Overheated".into()
    }
    fn module(&self) -> String {
        "calc.exceptions".into()
    }
}

/// Observations the tests make of the server side.
#[derive(Default)]
pub(crate) struct Probe {
    pub(crate) executing: AtomicUsize,
    pub(crate) max_executing: AtomicUsize,
    pub(crate) invocations: AtomicUsize,
}

pub(crate) struct Calculator {
    pub(crate) host: String,
    pub(crate) probe: Arc<Probe>,
    /// `wait` blocks until the test adds permits here.
    pub(crate) gate: Arc<Semaphore>,
    /// `wait` reports how many are executing at once.
    pub(crate) executing_tx: watch::Sender<usize>,
    /// Casts and fanouts report here: (host, value).
    pub(crate) notes: mpsc::UnboundedSender<(String, i64)>,
    /// `hang` reports here when its future is dropped (cancelled).
    pub(crate) cancelled: mpsc::UnboundedSender<()>,
}

struct DropSignal(mpsc::UnboundedSender<()>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[rpc_endpoint(topic = "calc", version = "4.1")]
impl Calculator {
    #[rpc(since = "4.0")]
    async fn add(&self, _ctx: &Context, a: i64, b: i64) -> i64 {
        self.probe.invocations.fetch_add(1, Ordering::SeqCst);
        a + b
    }

    #[rpc(since = "4.0")]
    async fn divide(&self, _ctx: &Context, a: i64, b: i64) -> Result<i64, DivideByZero> {
        if b == 0 {
            Err(DivideByZero { dividend: a })
        } else {
            Ok(a / b)
        }
    }

    #[rpc(since = "4.0")]
    async fn overheat(&self, _ctx: &Context) -> Result<(), Overheated> {
        Err(Overheated { celsius: 99 })
    }

    #[rpc(since = "4.0")]
    async fn panics(&self, _ctx: &Context) -> i64 {
        panic!("the calculator caught fire")
    }

    #[rpc(since = "4.0")]
    async fn whoami(&self, ctx: &Context) -> Map<String, Value> {
        ctx.to_dict()
    }

    #[rpc(since = "4.0")]
    async fn host(&self, _ctx: &Context) -> String {
        self.host.clone()
    }

    #[rpc(since = "4.1")]
    async fn wait(&self, _ctx: &Context, value: i64) -> i64 {
        let now = self.probe.executing.fetch_add(1, Ordering::SeqCst) + 1;
        self.probe.max_executing.fetch_max(now, Ordering::SeqCst);
        self.executing_tx.send_replace(now);
        let permit = self.gate.acquire().await;
        drop(permit);
        let now = self.probe.executing.fetch_sub(1, Ordering::SeqCst) - 1;
        self.executing_tx.send_replace(now);
        value
    }

    #[rpc(since = "4.1")]
    async fn sleep_ms(&self, _ctx: &Context, millis: u64) -> u64 {
        tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
        millis
    }

    #[rpc(since = "4.1")]
    async fn hang(&self, _ctx: &Context) {
        let _signal = DropSignal(self.cancelled.clone());
        std::future::pending::<()>().await;
    }

    #[rpc(since = "4.1", cast)]
    async fn note(&self, _ctx: &Context, value: i64) {
        let _ = self.notes.send((self.host.clone(), value));
    }
}

/// A served calculator and what the test reads from it.
pub(crate) struct Served {
    pub(crate) broker: MemoryBroker,
    pub(crate) probe: Arc<Probe>,
    pub(crate) gate: Arc<Semaphore>,
    pub(crate) executing: watch::Receiver<usize>,
    pub(crate) notes: mpsc::UnboundedReceiver<(String, i64)>,
    pub(crate) cancelled: mpsc::UnboundedReceiver<()>,
    pub(crate) servers: Vec<RpcServer>,
}

impl Served {
    /// A client transport on the same broker.
    pub(crate) fn transport(&self) -> Arc<dyn Transport> {
        Arc::new(self.broker.transport())
    }

    /// A typed client on the same broker.
    pub(crate) fn client(&self) -> CalculatorClient {
        CalculatorClient::new(self.transport())
    }
}

/// Serves calculators on `hosts` (one server each) on a private broker.
pub(crate) async fn serve(hosts: &[&str], config: ServerConfig) -> Served {
    let broker = MemoryBroker::new();
    let probe = Arc::new(Probe::default());
    let gate = Arc::new(Semaphore::new(0));
    let (executing_tx, executing) = watch::channel(0);
    let (notes_tx, notes) = mpsc::unbounded_channel();
    let (cancelled_tx, cancelled) = mpsc::unbounded_channel();
    let mut servers = Vec::new();
    for host in hosts {
        let manager = Arc::new(Calculator {
            host: (*host).to_owned(),
            probe: Arc::clone(&probe),
            gate: Arc::clone(&gate),
            executing_tx: executing_tx.clone(),
            notes: notes_tx.clone(),
            cancelled: cancelled_tx.clone(),
        });
        let server = RpcServer::start(
            Arc::new(broker.transport()),
            CalculatorClient::target().with_server(*host),
            vec![manager],
            config.clone(),
        )
        .await
        .expect("listen on memory://");
        servers.push(server);
    }
    Served {
        broker,
        probe,
        gate,
        executing,
        notes,
        cancelled,
        servers,
    }
}

/// A hand-written endpoint that fails the way a Python service does, with a builtin exception.
pub(crate) struct PythonLike;

static PYTHON_LIKE: rpc_runtime::EndpointDescriptor = rpc_runtime::EndpointDescriptor::new(
    "PythonLike",
    None,
    Some("legacy"),
    rpc_runtime::Version::new(1, 0),
    &[rpc_runtime::MethodDescriptor::new(
        "explode",
        rpc_runtime::Version::new(1, 0),
        rpc_runtime::MethodKind::Call,
        &[],
    )],
);

impl rpc_runtime::Endpoint for PythonLike {
    fn descriptor(&self) -> &rpc_runtime::EndpointDescriptor {
        &PYTHON_LIKE
    }

    fn invoke<'a>(
        &'a self,
        _ctx: Context,
        _method: &'a str,
        _args: rpc_runtime::envelope::Args,
    ) -> rpc_runtime::BoxFuture<'a, Result<rpc_runtime::envelope::JsonText, RemoteError>> {
        let mut failure = RemoteError::new("ValueError", "builtins", "('bad value: x', 42)");
        failure.args = vec![Value::from("bad value: x"), Value::from(42)];
        failure.traceback = vec!["Traceback (most recent call last):\n".into()];
        Box::pin(std::future::ready(Err(failure)))
    }
}

/// A target for the calculator's topic on a server.
pub(crate) fn on(host: &str) -> Target {
    CalculatorClient::target().with_server(host)
}
