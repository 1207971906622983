//! Over RabbitMQ on the local broker: this framework, and a minimal hand-written lapin
//! request/reply loop (the practical limit) with its publish-consume cast loop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use rpc_runtime::{CallOptions, Client, RpcServer, Target};
use tokio::sync::oneshot;

use crate::measure::{Arrivals, Caller, Caster, EchoClient, Ours, PAYLOAD};

/// The broker every benchmark uses.
pub(crate) const BROKER: &str = "127.0.0.1:5672";

/// This framework over `rabbit://`, publishing without confirms (the raw loop's mode); the server
/// runs as long as the returned handle lives.
pub(crate) async fn ours(topic: &str) -> (Ours, RpcServer) {
    let url = format!("rabbit://guest:guest@{BROKER}/?confirm_publish=false");
    let server_transport = rpc_runtime::connect(&url).await.expect("connect");
    let client_transport = rpc_runtime::connect(&url).await.expect("connect");
    let client = EchoClient::from_client(Client::new(client_transport, Target::new(topic)))
        .prepare(CallOptions::new().timeout(Duration::from_secs(60)));
    Ours::serve(
        server_transport,
        Target::new(topic).with_server("bench"),
        client,
    )
    .await
}

/// Deletes the queues [`ours`] declared on `topic` (oslo's topic queues are not auto-delete).
pub(crate) async fn delete_queues(queues: &[String]) {
    let uri = format!("amqp://guest:guest@{BROKER}/%2f");
    if let Ok(conn) = Connection::connect(&uri, ConnectionProperties::default()).await
        && let Ok(channel) = conn.create_channel().await
    {
        for queue in queues {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
}

/// What the raw loop sends: the 64-byte payload alone, or messages the size of this framework's
/// oslo envelopes (~630-byte requests with a per-message `expiration`, ~230-byte replies), which
/// separates the cost of oslo's wire format from the framework's own.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Shape {
    Bare,
    OsloSized,
}

const OSLO_REQUEST: [u8; 630] = [b'x'; 630];
const OSLO_REPLY_LEN: usize = 230;

/// The raw loop: a client with its own reply queue and a map of waiters by correlation id, a
/// server that spawns a task per delivery and acks it; no envelope, no framework. Casts go to a
/// queue of their own whose consumer acks each message in a task, as the server does.
#[derive(Clone)]
pub(crate) struct Raw {
    shape: Shape,
    channel: Channel,
    queue: Arc<str>,
    cast_queue: Arc<str>,
    reply_queue: Arc<str>,
    waiters: Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>,
    next: Arc<AtomicUsize>,
    arrivals: Arc<Arrivals>,
}

impl Raw {
    /// Whether this loop's casts are measured (the bare loop's; the oslo-sized one is for calls).
    pub(crate) fn measures_casts(&self) -> bool {
        self.shape == Shape::Bare
    }
}

impl Caller for Raw {
    async fn call(&self) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) as u64;
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().expect("waiters").insert(id, tx);
        let properties = BasicProperties::default()
            .with_correlation_id(id.to_string().into())
            .with_reply_to(self.reply_queue.as_ref().into());
        let (body, properties, reply_len): (&[u8], _, _) = match self.shape {
            Shape::Bare => (PAYLOAD.as_bytes(), properties, PAYLOAD.len()),
            Shape::OsloSized => (
                &OSLO_REQUEST,
                properties
                    .with_expiration("60000".into())
                    .with_delivery_mode(2),
                OSLO_REPLY_LEN,
            ),
        };
        self.channel
            .basic_publish(
                "".into(),
                self.queue.as_ref().into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .expect("publish");
        assert_eq!(rx.await.expect("reply").len(), reply_len);
    }
}

impl Caster for Raw {
    async fn cast(&self) {
        self.channel
            .basic_publish(
                "".into(),
                self.cast_queue.as_ref().into(),
                BasicPublishOptions::default(),
                PAYLOAD.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .expect("publish");
    }

    fn arrivals(&self) -> &Arrivals {
        &self.arrivals
    }
}

/// A connection, a channel on it, and a consumer of a fresh auto-delete queue.
async fn connect_and_consume(queue: &str, no_ack: bool) -> (Connection, Channel, lapin::Consumer) {
    let uri = format!("amqp://guest:guest@{BROKER}/%2f");
    let connection = Connection::connect(&uri, ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = connection.create_channel().await.expect("channel");
    let consumer = declare_and_consume(&channel, queue, no_ack).await;
    (connection, channel, consumer)
}

pub(crate) async fn declare_and_consume(
    channel: &Channel,
    queue: &str,
    no_ack: bool,
) -> lapin::Consumer {
    let declare = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.into(), declare, FieldTable::default())
        .await
        .expect("declare");
    let consume = BasicConsumeOptions {
        no_ack,
        ..Default::default()
    };
    channel
        .basic_consume(queue.into(), "".into(), consume, FieldTable::default())
        .await
        .expect("consume")
}

/// Acknowledges each of `casts`' deliveries in a task of its own and counts it.
pub(crate) fn count_casts(mut casts: lapin::Consumer) -> Arc<Arrivals> {
    let arrivals = Arc::new(Arrivals::default());
    let counter = Arc::clone(&arrivals);
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = casts.next().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let _ = delivery.ack(BasicAckOptions::default()).await;
                counter.add();
            });
        }
    });
    arrivals
}

/// Starts the raw loop's server and client on queues named after `name`.
pub(crate) async fn raw(name: &str, shape: Shape) -> Raw {
    let queue = format!("raw_{name}");
    let cast_queue = format!("raw_cast_{name}");
    let (server, server_channel, mut requests) = connect_and_consume(&queue, false).await;
    let casts = declare_and_consume(&server_channel, &cast_queue, false).await;
    let reply_len = match shape {
        Shape::Bare => usize::MAX,
        Shape::OsloSized => OSLO_REPLY_LEN,
    };
    let reply_channel = server_channel.clone();
    tokio::spawn(async move {
        let _server = server;
        while let Some(Ok(delivery)) = requests.next().await {
            let channel = reply_channel.clone();
            tokio::spawn(async move {
                let props = &delivery.properties;
                let (Some(reply_to), Some(id)) =
                    (props.reply_to().clone(), props.correlation_id().clone())
                else {
                    return;
                };
                let _ = channel
                    .basic_publish(
                        "".into(),
                        reply_to,
                        BasicPublishOptions::default(),
                        &delivery.data[..delivery.data.len().min(reply_len)],
                        BasicProperties::default().with_correlation_id(id),
                    )
                    .await;
                let _ = delivery.ack(BasicAckOptions::default()).await;
            });
        }
    });
    let arrivals = count_casts(casts);
    let reply_queue = format!("raw_reply_{name}");
    let (client, channel, mut replies) = connect_and_consume(&reply_queue, true).await;
    let waiters: Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>> = Arc::default();
    let routing = Arc::clone(&waiters);
    tokio::spawn(async move {
        let _client = client;
        while let Some(Ok(delivery)) = replies.next().await {
            let id = delivery
                .properties
                .correlation_id()
                .as_ref()
                .and_then(|c| c.as_str().parse::<u64>().ok());
            if let Some(tx) = id.and_then(|id| routing.lock().expect("waiters").remove(&id)) {
                let _ = tx.send(delivery.data);
            }
        }
    });
    Raw {
        shape,
        channel,
        queue: queue.into(),
        cast_queue: cast_queue.into(),
        reply_queue: reply_queue.into(),
        waiters,
        next: Arc::default(),
        arrivals,
    }
}
