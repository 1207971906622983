//! Run-time version caps (`[upgrade_levels]`): a call that needs more than the cap fails with
//! `CannotSendVersion` before anything is sent; a `None` newer argument does not raise the version.

use std::sync::Arc;
use std::time::Duration;

use rpc_runtime::config::ConfigLoader;
use rpc_runtime::registry::{DatabaseUrl, NewService, Registry, SqlRegistry};
use rpc_runtime::upgrade::{CapError, version_cap};
use rpc_runtime::{
    CallOptions, Context, Endpoint, MemoryBroker, RpcError, RpcServer, ServerConfig, Version,
    rpc_endpoint,
};

pub(crate) struct Scheduler;

#[rpc_endpoint(topic = "capped", version = "4.2", aliases = "zed=4.1, 2023.1=4.2")]
impl Scheduler {
    #[rpc(since = "4.0")]
    async fn select(
        &self,
        _ctx: &Context,
        count: u32,
        #[since("4.2")] uuids: Option<Vec<String>>,
    ) -> u32 {
        count + uuids.map_or(0, |u| u32::try_from(u.len()).unwrap_or(u32::MAX))
    }

    #[rpc(since = "4.1", cast)]
    async fn update(&self, _ctx: &Context, host: String) {
        let _ = host;
    }
}

fn refused(
    result: Result<impl std::fmt::Debug, RpcError>,
    method: &str,
    version: Version,
    cap: Version,
) {
    match result {
        Err(RpcError::CannotSendVersion {
            method: m,
            version: v,
            cap: c,
        }) => assert_eq!((m.as_str(), v, c), (method, version, cap)),
        other => panic!("expected CannotSendVersion for {method}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_cap_sends_what_it_can_and_refuses_the_rest() {
    let broker = MemoryBroker::new();
    let server = RpcServer::start(
        Arc::new(broker.transport()),
        SchedulerClient::target().with_server("h1"),
        vec![Arc::new(Scheduler)],
        ServerConfig::default(),
    )
    .await
    .expect("serve");
    let ctx = Context::new();
    let client = SchedulerClient::new(Arc::new(broker.transport()));
    let capped = client.prepare(CallOptions::new().version_cap(Version::new(4, 1)));
    assert_eq!(capped.client().version_cap(), Some(Version::new(4, 1)));
    // 4.0 method, newer argument left `None`: sent at 4.0.
    assert_eq!(
        capped.select(&ctx, 2, None).await.expect("under the cap"),
        2
    );
    // A `Some` argument of 4.2 needs 4.2.
    refused(
        capped.select(&ctx, 2, Some(vec!["u".into()])).await,
        "select",
        Version::new(4, 2),
        Version::new(4, 1),
    );
    capped
        .update(&ctx, "h1".into())
        .await
        .expect("4.1 under a 4.1 cap");
    // Uncapped, the newer argument goes through.
    assert_eq!(
        client
            .select(&ctx, 2, Some(vec!["u".into()]))
            .await
            .expect("uncapped"),
        3
    );

    let at_4_0 = client.prepare(CallOptions::new().version_cap(Version::new(4, 0)));
    refused(
        at_4_0.update(&ctx, "h1".into()).await,
        "update",
        Version::new(4, 1),
        Version::new(4, 0),
    );
    // A cap of another major refuses everything.
    let old_major = client.prepare(CallOptions::new().version_cap(Version::new(3, 9)));
    refused(
        old_major.select(&ctx, 1, None).await,
        "select",
        Version::new(4, 0),
        Version::new(3, 9),
    );
    assert!(at_4_0.client().can_send_version(Version::new(4, 0)));
    assert!(!at_4_0.client().can_send_version(Version::new(4, 1)));
    server.stop().await;
}

#[tokio::test]
async fn a_client_capped_by_type_has_the_cap_at_run_time_too() {
    let broker = MemoryBroker::new();
    let server = RpcServer::start(
        Arc::new(broker.transport()),
        SchedulerClient::target(),
        vec![Arc::new(Scheduler)],
        ServerConfig::default(),
    )
    .await
    .expect("serve");
    let ctx = Context::new();
    let client = SchedulerClient::new(Arc::new(broker.transport()));
    let at_4_1: SchedulerClient<scheduler_versions::V4_1> = client.capped();
    assert_eq!(at_4_1.client().version_cap(), Some(Version::new(4, 1)));
    assert_eq!(at_4_1.select(&ctx, 2, None).await.expect("4.0"), 2);
    at_4_1.update(&ctx, "h".into()).await.expect("4.1");
    // `select` exists at 4.1, its `uuids` argument only at 4.2: refused at run time.
    refused(
        at_4_1.select(&ctx, 2, Some(vec!["u".into()])).await,
        "select",
        Version::new(4, 2),
        Version::new(4, 1),
    );
    // Capping never raises a lower run-time cap.
    let lower = client
        .prepare(CallOptions::new().version_cap(Version::new(4, 0)))
        .capped::<scheduler_versions::V4_1>();
    assert_eq!(lower.client().version_cap(), Some(Version::new(4, 0)));
    server.stop().await;
}

#[tokio::test]
async fn a_refused_call_is_never_sent() {
    // Nobody serves: a call that were sent would time out; a refused one fails at once.
    let client = SchedulerClient::new(Arc::new(MemoryBroker::new().transport())).prepare(
        CallOptions::new()
            .version_cap(Version::new(4, 1))
            .timeout(Duration::from_secs(3600)),
    );
    let refusal = tokio::time::timeout(
        Duration::from_secs(10),
        client.select(&Context::new(), 1, Some(vec![])),
    )
    .await
    .expect("refused without waiting for a reply");
    refused(refusal, "select", Version::new(4, 2), Version::new(4, 1));
}

fn config(level: &str) -> rpc_runtime::config::Config {
    ConfigLoader::new()
        .text("nova.conf", format!("[upgrade_levels]\ncapped = {level}\n"))
        .topic("capped")
        .load()
        .expect("config")
        .config
}

#[tokio::test]
async fn upgrade_levels_resolve_to_caps() {
    let api = Scheduler.descriptor();
    let cap = |level: &'static str| async move { version_cap(&config(level), api, None).await };
    assert_eq!(
        cap("4.1").await.expect("explicit"),
        Some(Version::new(4, 1))
    );
    assert_eq!(cap("zed").await.expect("alias"), Some(Version::new(4, 1)));
    assert_eq!(
        cap("2023.1").await.expect("alias"),
        Some(Version::new(4, 2))
    );
    match cap("yoga").await {
        Err(error @ CapError::UnknownAlias { .. }) => {
            assert!(error.to_string().contains("known: zed, 2023.1"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        cap("auto").await,
        Err(CapError::NoRegistry { .. })
    ));
    let none = ConfigLoader::new().load().expect("defaults").config;
    assert_eq!(version_cap(&none, api, None).await.expect("no entry"), None);
}

#[tokio::test]
async fn auto_caps_at_the_oldest_live_service_of_the_topic() {
    let registry = SqlRegistry::connect(&DatabaseUrl::new("sqlite::memory:"))
        .await
        .expect("registry");
    let api = Scheduler.descriptor();
    let auto = config("auto");
    assert_eq!(
        version_cap(&auto, api, Some(&registry))
            .await
            .expect("empty"),
        None
    );
    for (host, version) in [("a", Version::new(4, 2)), ("b", Version::new(4, 1))] {
        let service = NewService::new(host, "nova-capped", "capped").with_version(version);
        registry.create(&service).await.expect("create");
    }
    // Another topic's older service does not count.
    let other = NewService::new("c", "nova-other", "other").with_version(Version::new(1, 0));
    registry.create(&other).await.expect("create");
    assert_eq!(
        version_cap(&auto, api, Some(&registry))
            .await
            .expect("auto"),
        Some(Version::new(4, 1))
    );
    // The old service is upgraded (a restart records its new version): the cap rises.
    let old = registry
        .get_by_host_and_binary("b", "nova-capped")
        .await
        .expect("get")
        .expect("row");
    registry
        .set_version(old.id, Version::new(4, 2))
        .await
        .expect("upgrade");
    assert_eq!(
        version_cap(&auto, api, Some(&registry))
            .await
            .expect("auto"),
        Some(Version::new(4, 2))
    );
}
