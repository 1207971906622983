//! In process: this framework over `memory://` (the full oslo envelope encoded and decoded both
//! ways), tarpc's in-process channel (which encodes nothing) and tarpc over TCP with JSON on
//! loopback.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, future};
use rpc_runtime::{MemoryBroker, RpcServer};
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Json;

use crate::measure::{Caller, EchoClient, Ours, PAYLOAD};

#[tarpc::service]
trait TarpcEcho {
    async fn echo(value: String) -> String;
}

#[derive(Clone)]
struct TarpcEchoServer;

impl TarpcEcho for TarpcEchoServer {
    async fn echo(self, _: tarpc::context::Context, value: String) -> String {
        value
    }
}

/// A tarpc client, in process or over TCP.
#[derive(Clone)]
pub(crate) struct Tarpc(TarpcEchoClient);

impl Caller for Tarpc {
    async fn call(&self) {
        let mut ctx = tarpc::context::current();
        ctx.deadline = Instant::now() + Duration::from_secs(60);
        let reply = self.0.echo(ctx, PAYLOAD.to_owned()).await;
        assert_eq!(reply.expect("echo over tarpc").len(), PAYLOAD.len());
    }
}

/// This framework over `memory://`; the server runs as long as the returned handle lives.
pub(crate) async fn ours() -> (Ours, RpcServer) {
    let broker = MemoryBroker::new();
    let client = EchoClient::new(Arc::new(broker.transport()));
    Ours::serve(
        Arc::new(broker.transport()),
        EchoClient::target().with_server("bench"),
        client,
    )
    .await
}

fn tarpc_client<T>(transport: T) -> Tarpc
where
    T: tarpc::Transport<tarpc::ClientMessage<TarpcEchoRequest>, tarpc::Response<TarpcEchoResponse>>
        + Send
        + 'static,
{
    let mut config = tarpc::client::Config::default();
    config.max_in_flight_requests = 4096;
    Tarpc(TarpcEchoClient::new(config, transport).spawn())
}

/// tarpc's in-process channel: requests and responses move as Rust values.
pub(crate) fn tarpc_in_process() -> Tarpc {
    let (client_transport, server_transport) = tarpc::transport::channel::unbounded();
    let server = BaseChannel::with_defaults(server_transport);
    tokio::spawn(
        server
            .execute(TarpcEchoServer.serve())
            .for_each(|response| async move {
                tokio::spawn(response);
            }),
    );
    tarpc_client(client_transport)
}

/// tarpc over TCP on loopback, JSON-framed.
pub(crate) async fn tarpc_tcp_json() -> Tarpc {
    let mut listener =
        tarpc::serde_transport::tcp::listen((IpAddr::V4(Ipv4Addr::LOCALHOST), 0), Json::default)
            .await
            .expect("listen on loopback");
    listener.config_mut().max_frame_length(usize::MAX);
    let addr = listener.local_addr();
    tokio::spawn(
        listener
            .filter_map(|r| future::ready(r.ok()))
            .map(BaseChannel::with_defaults)
            .for_each(|channel| async move {
                tokio::spawn(channel.execute(TarpcEchoServer.serve()).for_each(
                    |response| async move {
                        tokio::spawn(response);
                    },
                ));
            }),
    );
    let transport = tarpc::serde_transport::tcp::connect(addr, Json::default)
        .await
        .expect("connect on loopback");
    tarpc_client(transport)
}
