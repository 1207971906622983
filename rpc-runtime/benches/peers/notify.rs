//! Notifications over RabbitMQ: this framework's `Notifier` → `NotificationListener` with 64
//! sends in flight (against the raw lapin cast loop's casts), and a listener draining a queue
//! filled beforehand (against oslo.messaging's listener draining the same messages).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use rpc_runtime::notify::{Notification, NotificationListener, Notifier};
use rpc_runtime::{Context, Target, Transport, notification_endpoint};

use crate::measure::{Arrivals, CASTS_IN_FLIGHT, Caster, Figures, Operation, PAYLOAD};
use crate::rabbit::BROKER;

/// Counts what arrives.
struct Counter(Arc<Arrivals>);

#[notification_endpoint]
impl Counter {
    async fn info(&self, n: Notification<serde_json::Value>) {
        debug_assert_eq!(
            n.payload["value"].as_str().map(str::len),
            Some(PAYLOAD.len())
        );
        self.0.add();
    }
}

/// A notifier whose notifications a listener on the same topic counts.
#[derive(Clone)]
pub(crate) struct Notifying {
    notifier: Notifier,
    ctx: Context,
    payload: serde_json::Value,
    arrivals: Arc<Arrivals>,
}

impl Caster for Notifying {
    async fn cast(&self) {
        self.notifier
            .info(&self.ctx, "bench.notified", &self.payload)
            .await
            .expect("notify");
    }

    fn arrivals(&self) -> &Arrivals {
        &self.arrivals
    }
}

impl Operation for Notifying {
    fn run(&self) -> impl std::future::Future<Output = ()> + Send {
        self.cast()
    }
}

/// Without publisher confirms, as the raw loop publishes.
fn url() -> String {
    format!("rabbit://guest:guest@{BROKER}/?confirm_publish=false")
}

/// The notifier and a listener counting on `topic`; the listener runs while the handle lives.
pub(crate) async fn ours(topic: &str) -> (Notifying, NotificationListener) {
    let listener_side = rpc_runtime::connect(&url()).await.expect("connect");
    let notifier_side = rpc_runtime::connect(&url()).await.expect("connect");
    let arrivals = Arc::new(Arrivals::default());
    let listener = listen(listener_side, topic, &arrivals).await;
    let notifying = Notifying {
        notifier: Notifier::new(notifier_side, "bench.host").with_topics([topic]),
        ctx: Context::new().with_user("bench").with_project("bench"),
        payload: serde_json::json!({ "value": PAYLOAD }),
        arrivals,
    };
    (notifying, listener)
}

async fn listen(
    transport: Arc<dyn Transport>,
    topic: &str,
    arrivals: &Arc<Arrivals>,
) -> NotificationListener {
    NotificationListener::builder(transport)
        .target(Target::new(topic))
        .endpoint(Arc::new(Counter(Arc::clone(arrivals))))
        // As the RPC server of this harness runs: 256 at once.
        .max_concurrency(256)
        .start()
        .await
        .expect("listen")
}

/// Fills `<topic>.info` with `n` notifications (64 in flight), no listener consuming.
async fn fill(topic: &str, n: usize) {
    let transport = rpc_runtime::connect(&url()).await.expect("connect");
    let notifying = Notifying {
        notifier: Notifier::new(transport, "bench.host").with_topics([topic]),
        ctx: Context::new().with_user("bench").with_project("bench"),
        payload: serde_json::json!({ "value": PAYLOAD }),
        arrivals: Arc::default(),
    };
    crate::measure::run_in_flight(CASTS_IN_FLIGHT, n, &notifying).await;
}

/// This framework's listener draining `n` notifications queued before it starts.
pub(crate) async fn ours_drain(topic: &str, n: usize, figures: &mut Figures) {
    fill(topic, n).await;
    let transport = rpc_runtime::connect(&url()).await.expect("connect");
    let arrivals = Arc::new(Arrivals::default());
    let started = Instant::now();
    let listener = listen(transport, topic, &arrivals).await;
    arrivals.wait_for(n as u64).await;
    figures
        .casts
        .push(n as f64 / started.elapsed().as_secs_f64());
    listener.stop().await;
}

/// oslo.messaging's listener (threading executor) draining `n` notifications queued before it
/// starts; and oslo's notifier → listener with 64 threads sending, in one process.
pub(crate) async fn oslo_round(
    python: &Path,
    topic: &str,
    n: usize,
    drain: &mut Figures,
    end_to_end: &mut Figures,
) -> Result<(), String> {
    fill(&format!("{topic}_drain"), n).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/py/oslo_notify.py");
    let broker = format!("rabbit://guest:guest@{BROKER}/");
    for (mode, topic, figures) in [
        ("drain", format!("{topic}_drain"), drain),
        ("end_to_end", format!("{topic}_e2e"), end_to_end),
    ] {
        let (python, script, broker) = (python.to_owned(), script.clone(), broker.clone());
        let count = n.to_string();
        let output = tokio::task::spawn_blocking(move || {
            Command::new(python)
                .arg(script)
                .args([mode, &broker, &topic, &count])
                .output()
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("running oslo_notify.py: {e}"))?;
        let out: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| {
            format!(
                "oslo_notify.py {mode}: {e}: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        figures
            .casts
            .push(out["rate"].as_f64().ok_or("oslo_notify.py: no rate")?);
    }
    Ok(())
}

/// The length of the notification this harness sends (the 2.0 envelope around a 64-byte
/// payload, the bench context and its ids): what the shaped raw loop sends.
const NOTIFICATION_LEN: usize = 570;

/// The raw lapin cast loop shaped as oslo's notifications are: through a topic exchange, with
/// a notification's size and oslo's message properties (`content_type`, `content_encoding`,
/// persistent, priority 0, empty headers), each delivery acknowledged in a task of its own. What
/// it loses against the bare cast loop is the broker's price of the wire format, which no
/// implementation of oslo's notifications avoids.
#[derive(Clone)]
pub(crate) struct RawShaped {
    channel: lapin::Channel,
    exchange: Arc<str>,
    routing_key: Arc<str>,
    arrivals: Arc<Arrivals>,
    _consuming: Arc<lapin::Connection>,
    _connection: Arc<lapin::Connection>,
}

impl Caster for RawShaped {
    async fn cast(&self) {
        let properties = lapin::BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_delivery_mode(2)
            .with_priority(0)
            .with_headers(lapin::types::FieldTable::default());
        self.channel
            .basic_publish(
                self.exchange.as_ref().into(),
                self.routing_key.as_ref().into(),
                lapin::options::BasicPublishOptions::default(),
                &[b'x'; NOTIFICATION_LEN],
                properties,
            )
            .await
            .expect("publish");
    }

    fn arrivals(&self) -> &Arrivals {
        &self.arrivals
    }
}

/// Starts the shaped raw loop on an exchange and queue named after `name` (both auto-delete).
pub(crate) async fn raw_shaped(name: &str) -> RawShaped {
    use lapin::options::{ExchangeDeclareOptions, QueueBindOptions};
    use lapin::types::FieldTable;
    let uri = format!("amqp://guest:guest@{BROKER}/%2f");
    let connect = || lapin::Connection::connect(&uri, lapin::ConnectionProperties::default());
    let (consuming, publishing) = (
        connect().await.expect("connect"),
        connect().await.expect("connect"),
    );
    let exchange = format!("raw_shaped_{name}");
    let queue = format!("raw_shaped_{name}.info");
    let channel = consuming.create_channel().await.expect("channel");
    channel
        .exchange_declare(
            exchange.as_str().into(),
            lapin::ExchangeKind::Topic,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("exchange");
    let deliveries = crate::rabbit::declare_and_consume(&channel, &queue, false).await;
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            queue.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    let arrivals = crate::rabbit::count_casts(deliveries);
    RawShaped {
        _consuming: Arc::new(consuming),
        channel: publishing.create_channel().await.expect("channel"),
        exchange: exchange.into(),
        routing_key: queue.into(),
        arrivals,
        _connection: Arc::new(publishing),
    }
}
