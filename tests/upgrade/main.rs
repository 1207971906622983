//! Rolling upgrades, over `memory://` and over RabbitMQ: the release being replaced (`v4_1`) and
//! the new one (`v4_2`, with a shim for 3.x callers) run side by side, as they do mid-upgrade.

// Helpers outside `#[test]` fns report by panicking.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use rpc_integration_tests::{Vhost, unique_name};
use rpc_runtime::config::ConfigLoader;
use rpc_runtime::registry::{DatabaseUrl, NewService, Registry, SqlRegistry};
use rpc_runtime::upgrade::version_cap;
use rpc_runtime::{
    CallOptions, Client, Context, Endpoint, RpcError, RpcServer, ServerConfig, Target, Transport,
    Version,
};

/// The release being replaced, as it was deployed.
mod v4_1 {
    use rpc_runtime::{Context, rpc_endpoint};

    pub(crate) struct Scheduler {
        pub(crate) host: String,
    }

    #[rpc_endpoint(topic = "sched", version = "4.1")]
    impl Scheduler {
        #[rpc(since = "4.0")]
        async fn select(&self, _ctx: &Context, count: u32) -> Vec<String> {
            vec![format!("old:{}", self.host); count as usize]
        }

        #[rpc(since = "4.1", cast)]
        async fn update(&self, _ctx: &Context, host: String) {
            let _ = host;
        }
    }
}

/// The new release: a 4.2 API, and the 3.x shim for callers older still.
mod v4_2 {
    use std::sync::Arc;

    use rpc_runtime::{Context, rpc_endpoint};

    pub(crate) struct Scheduler {
        pub(crate) host: String,
    }

    #[rpc_endpoint(topic = "sched", version = "4.2", aliases = "zed=4.1, antelope=4.2")]
    impl Scheduler {
        #[rpc(since = "4.0")]
        async fn select(
            &self,
            _ctx: &Context,
            count: u32,
            #[since("4.2")] prefer: Option<String>,
        ) -> Vec<String> {
            let host = prefer.unwrap_or_else(|| self.host.clone());
            vec![format!("new:{host}"); count as usize]
        }

        #[rpc(since = "4.1", cast)]
        async fn update(&self, _ctx: &Context, host: String) {
            let _ = host;
        }

        #[rpc(since = "4.2")]
        async fn reserve(&self, _ctx: &Context, host: String) -> bool {
            !host.is_empty()
        }
    }

    /// nova's `_SchedulerManagerV3Proxy`: the 3.x API, forwarding to the 4.x manager.
    pub(crate) struct SchedulerV3Proxy {
        pub(crate) manager: Arc<Scheduler>,
    }

    #[rpc_endpoint(topic = "sched", version = "3.9")]
    impl SchedulerV3Proxy {
        /// 3.x called it `select_destinations`, with `num_instances`.
        #[rpc(since = "3.0")]
        async fn select_destinations(&self, ctx: &Context, num_instances: u32) -> Vec<String> {
            self.manager.select(ctx, num_instances, None).await
        }
    }
}

/// Where the servers and clients of one test meet.
enum Broker {
    Memory(String),
    Rabbit(Vhost),
}

impl Broker {
    fn memory() -> Self {
        Self::Memory(format!("memory://{}", unique_name("upgrade")))
    }

    fn rabbit() -> Option<Self> {
        Vhost::create("upgrade").map(Self::Rabbit)
    }

    async fn transport(&self) -> Arc<dyn Transport> {
        let url = match self {
            Self::Memory(url) => url.clone(),
            Self::Rabbit(vhost) => vhost.url(""),
        };
        rpc_runtime::connect(&url).await.unwrap()
    }

    async fn serve_old(&self, host: &str) -> RpcServer {
        let endpoint = Arc::new(v4_1::Scheduler { host: host.into() });
        self.serve(host, vec![endpoint]).await
    }

    async fn serve_new(&self, host: &str) -> RpcServer {
        let manager = Arc::new(v4_2::Scheduler { host: host.into() });
        let shim = Arc::new(v4_2::SchedulerV3Proxy {
            manager: Arc::clone(&manager),
        });
        self.serve(host, vec![manager, shim]).await
    }

    async fn serve(&self, host: &str, endpoints: Vec<Arc<dyn Endpoint>>) -> RpcServer {
        RpcServer::start(
            self.transport().await,
            Target::new("sched").with_server(host),
            endpoints,
            ServerConfig::default(),
        )
        .await
        .unwrap()
    }
}

fn cannot_send(result: Result<impl std::fmt::Debug, RpcError>, needs: Version, cap: Version) {
    match result {
        Err(RpcError::CannotSendVersion {
            version, cap: c, ..
        }) => {
            assert_eq!((version, c), (needs, cap));
        }
        other => panic!("expected CannotSendVersion at {needs} under {cap}, got {other:?}"),
    }
}

fn upgrade_levels(level: &str) -> rpc_runtime::config::Config {
    ConfigLoader::new()
        .text("nova.conf", format!("[upgrade_levels]\nsched = {level}\n"))
        .topic("sched")
        .load()
        .unwrap()
        .config
}

/// The new client against the old server, capped by configuration: explicit, alias, then `auto`
/// from the registry, which rises once the old service reports the new version.
async fn new_client_old_server_under_caps(broker: &Broker) {
    let server = broker.serve_old("a").await;
    let ctx = Context::new();
    let api = v4_2::Scheduler {
        host: String::new(),
    };
    let client = v4_2::SchedulerClient::new(broker.transport().await);

    for level in ["4.1", "zed"] {
        let cap = version_cap(&upgrade_levels(level), api.descriptor(), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(cap, Version::new(4, 1));
        let capped = client.prepare(CallOptions::new().version_cap(cap));
        assert_eq!(
            capped.select(&ctx, 2, None).await.unwrap(),
            vec!["old:a", "old:a"]
        );
        capped.update(&ctx, "a".into()).await.unwrap();
        cannot_send(
            capped.select(&ctx, 1, Some("b".into())).await,
            Version::new(4, 2),
            cap,
        );
        cannot_send(
            capped.reserve(&ctx, "a".into()).await,
            Version::new(4, 2),
            cap,
        );
    }
    // Uncapped, the new client's 4.2 call reaches the old server, which refuses it.
    assert!(matches!(
        client.reserve(&ctx, "a".into()).await,
        Err(RpcError::UnsupportedVersion { .. })
    ));

    // `auto`: the registry knows the old service at 4.1.
    let registry = SqlRegistry::connect(&DatabaseUrl::new("sqlite::memory:"))
        .await
        .unwrap();
    let old = registry
        .create(&NewService::new("a", "nova-sched", "sched").with_version(Version::new(4, 1)))
        .await
        .unwrap();
    let auto = upgrade_levels("auto");
    let cap = version_cap(&auto, api.descriptor(), Some(&registry))
        .await
        .unwrap();
    assert_eq!(cap, Some(Version::new(4, 1)));
    let capped = client.prepare(CallOptions::new().version_cap(Version::new(4, 1)));
    assert_eq!(capped.select(&ctx, 1, None).await.unwrap(), vec!["old:a"]);

    // The old service is replaced by the new release (a restart records 4.2): the cap rises and
    // 4.2 calls go through.
    server.stop().await;
    let upgraded = broker.serve_new("a").await;
    registry
        .set_version(old.id, Version::new(4, 2))
        .await
        .unwrap();
    let cap = version_cap(&auto, api.descriptor(), Some(&registry))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cap, Version::new(4, 2));
    let capped = client.prepare(CallOptions::new().version_cap(cap));
    assert!(capped.reserve(&ctx, "a".into()).await.unwrap());
    assert_eq!(
        capped.select(&ctx, 1, Some("b".into())).await.unwrap(),
        vec!["new:b"]
    );
    upgraded.stop().await;
}

/// An old client (the 4.1 release's) and a 3.x caller against the new server.
async fn old_callers_new_server(broker: &Broker) {
    let server = broker.serve_new("a").await;
    let ctx = Context::new();
    let old = v4_1::SchedulerClient::new(broker.transport().await);
    assert_eq!(old.select(&ctx, 1).await.unwrap(), vec!["new:a"]);
    old.update(&ctx, "a".into()).await.unwrap();
    // A 3.x caller, played by the shim's own typed client …
    let v3 = v4_2::SchedulerV3ProxyClient::new(broker.transport().await);
    assert_eq!(
        v3.select_destinations(&ctx, 2).await.unwrap(),
        vec!["new:a", "new:a"]
    );
    // … and by an untyped client sending 3.4, as a Python caller would.
    let raw = Client::new(
        broker.transport().await,
        Target::new("sched").with_version(Version::new(3, 4)),
    );
    let hosts: Vec<String> = raw
        .call(
            &ctx,
            "select_destinations",
            &serde_json::json!({"num_instances": 1}),
        )
        .await
        .unwrap();
    assert_eq!(hosts, vec!["new:a"]);
    server.stop().await;
}

/// Old and new servers on one topic mid-upgrade: behind a 4.1 cap every call works, whichever
/// server takes it.
async fn mixed_servers_behind_one_cap(broker: &Broker) {
    let old = broker.serve_old("a").await;
    let new = broker.serve_new("b").await;
    let ctx = Context::new();
    let capped = v4_2::SchedulerClient::new(broker.transport().await)
        .capped::<v4_2::scheduler_versions::V4_1>();
    let mut answered = BTreeSet::new();
    // (Calls only: the queue hands messages to its servers in turn, and a cast between two calls
    // would send every call to the same one.)
    for _ in 0..20 {
        let hosts = capped.select(&ctx, 1, None).await.unwrap();
        answered.insert(hosts[0].split(':').next().unwrap().to_owned());
    }
    capped.update(&ctx, "x".into()).await.unwrap();
    assert_eq!(
        answered,
        BTreeSet::from(["new".to_owned(), "old".to_owned()])
    );
    cannot_send(
        capped.select(&ctx, 1, Some("c".into())).await,
        Version::new(4, 2),
        Version::new(4, 1),
    );
    old.stop().await;
    new.stop().await;
}

#[tokio::test]
async fn memory_new_client_old_server_under_caps() {
    new_client_old_server_under_caps(&Broker::memory()).await;
}

#[tokio::test]
async fn memory_old_callers_new_server() {
    old_callers_new_server(&Broker::memory()).await;
}

#[tokio::test]
async fn memory_mixed_servers_behind_one_cap() {
    mixed_servers_behind_one_cap(&Broker::memory()).await;
}

#[tokio::test]
async fn rabbit_new_client_old_server_under_caps() {
    if let Some(broker) = Broker::rabbit() {
        new_client_old_server_under_caps(&broker).await;
    }
}

#[tokio::test]
async fn rabbit_old_callers_new_server() {
    if let Some(broker) = Broker::rabbit() {
        old_callers_new_server(&broker).await;
    }
}

#[tokio::test]
async fn rabbit_mixed_servers_behind_one_cap() {
    if let Some(broker) = Broker::rabbit() {
        mixed_servers_behind_one_cap(&broker).await;
    }
}
