//! Notification scenarios run on every transport (`memory://` and RabbitMQ): each takes three
//! transports of one broker (a notifier's and two listeners') and asserts what arrives where.

// Helpers outside `#[test]` fns report by panicking.
#![allow(clippy::unwrap_used, missing_docs, missing_debug_implementations)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rpc_runtime::notify::{
    Notification, NotificationListener, NotificationResult, Notifier, Priority, RawNotification,
};
use rpc_runtime::{Context, Target, Transport, notification_endpoint};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

/// How long a scenario waits for what it expects before failing.
const PATIENCE: Duration = Duration::from_secs(20);

/// What an endpoint saw: (priority, event type, payload), in order, and a counter to wait on.
#[derive(Default)]
pub struct Seen {
    items: Mutex<Vec<(Priority, String, Value)>>,
    count: Mutex<Option<watch::Sender<usize>>>,
}

impl Seen {
    pub fn new() -> Arc<Self> {
        let seen = Self::default();
        *seen.count.lock().unwrap() = Some(watch::channel(0).0);
        Arc::new(seen)
    }

    fn record(&self, priority: Priority, event_type: &str, payload: Value) {
        let mut items = self.items.lock().unwrap();
        items.push((priority, event_type.to_owned(), payload));
        let n = items.len();
        drop(items);
        if let Some(count) = &*self.count.lock().unwrap() {
            count.send_replace(n);
        }
    }

    pub fn items(&self) -> Vec<(Priority, String, Value)> {
        self.items.lock().unwrap().clone()
    }

    pub fn event_types(&self) -> Vec<String> {
        self.items().into_iter().map(|(_, e, _)| e).collect()
    }

    /// Waits until at least `n` were seen.
    pub async fn wait_for(&self, n: usize) {
        let mut rx = self.count.lock().unwrap().as_ref().unwrap().subscribe();
        let reached = tokio::time::timeout(PATIENCE, rx.wait_for(|c| *c >= n)).await;
        assert!(
            matches!(reached, Ok(Ok(_))),
            "waited {PATIENCE:?} for {n} notifications; saw {:?}",
            self.event_types()
        );
    }
}

/// Every priority, each recorded with the priority its method is named for.
pub struct AllPriorities(pub Arc<Seen>);

#[notification_endpoint]
impl AllPriorities {
    async fn audit(&self, n: Notification<Value>) {
        self.0.record(Priority::Audit, &n.event_type, n.payload);
    }
    async fn debug(&self, n: Notification<Value>) {
        self.0.record(Priority::Debug, &n.event_type, n.payload);
    }
    async fn info(&self, n: Notification<Value>) {
        self.0.record(Priority::Info, &n.event_type, n.payload);
    }
    async fn warn(&self, n: Notification<Value>) {
        self.0.record(Priority::Warn, &n.event_type, n.payload);
    }
    async fn error(&self, n: Notification<Value>) {
        self.0.record(Priority::Error, &n.event_type, n.payload);
    }
    async fn critical(&self, n: Notification<Value>) {
        self.0.record(Priority::Critical, &n.event_type, n.payload);
    }
    async fn sample(&self, n: Notification<Value>) {
        self.0.record(Priority::Sample, &n.event_type, n.payload);
    }
}

/// `info` only, whatever the payload.
pub struct Infos(pub Arc<Seen>);

#[notification_endpoint]
impl Infos {
    async fn info(&self, n: RawNotification) {
        let payload = serde_json::from_str(n.payload.as_str()).unwrap_or(Value::Null);
        self.0.record(n.priority, &n.event_type, payload);
    }
}

/// `info` of `compute.*` from publishers `compute…` whose payload's state is active.
pub struct ComputeOnly(pub Arc<Seen>);

#[notification_endpoint(
    event_type = r"compute\.",
    publisher_id = "^compute",
    payload(state = "active$")
)]
impl ComputeOnly {
    async fn info(&self, n: Notification<Value>) {
        self.0.record(n.priority, &n.event_type, n.payload);
    }
}

/// A typed payload.
#[derive(Debug, Deserialize)]
pub struct Instance {
    pub instance_id: String,
    pub memory_mb: u64,
}

/// `info` with a typed payload: a payload of another shape does not reach it.
pub struct Typed(pub Arc<Seen>);

#[notification_endpoint]
impl Typed {
    async fn info(&self, n: Notification<Instance>) {
        let payload =
            json!({"instance_id": n.payload.instance_id, "memory_mb": n.payload.memory_mb});
        self.0.record(n.priority, &n.event_type, payload);
    }
}

/// Asks to requeue each event type the first time it sees it.
pub struct RequeueOnce {
    pub seen: Arc<Seen>,
    pub first: Mutex<Vec<String>>,
}

#[notification_endpoint]
impl RequeueOnce {
    async fn info(&self, n: Notification<Value>) -> NotificationResult {
        self.seen.record(n.priority, &n.event_type, n.payload);
        let mut first = self.first.lock().unwrap();
        if first.contains(&n.event_type) {
            NotificationResult::Handled
        } else {
            first.push(n.event_type);
            NotificationResult::Requeue
        }
    }
}

/// Records each batch's size.
pub struct Batches {
    pub seen: Arc<Seen>,
    pub sizes: Mutex<Vec<usize>>,
}

#[notification_endpoint]
impl Batches {
    async fn info(&self, batch: Vec<Notification<Value>>) {
        self.sizes.lock().unwrap().push(batch.len());
        for n in batch {
            self.seen.record(n.priority, &n.event_type, n.payload);
        }
    }
}

/// Holds each notification until released; counts those running.
pub struct Slow {
    pub seen: Arc<Seen>,
    pub running: AtomicUsize,
    pub release: watch::Receiver<bool>,
    pub started: watch::Sender<usize>,
}

#[notification_endpoint]
impl Slow {
    async fn info(&self, n: Notification<Value>) {
        self.running.fetch_add(1, Ordering::SeqCst);
        self.started.send_modify(|s| *s += 1);
        let mut release = self.release.clone();
        let _ = release.wait_for(|r| *r).await;
        self.seen.record(n.priority, &n.event_type, n.payload);
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
}

fn ctx() -> Context {
    Context::new().with_user("u-1").with_project("p-1")
}

/// Each priority's notification reaches the method of that name.
pub async fn every_priority_reaches_its_method(transports: [Arc<dyn Transport>; 3], topic: &str) {
    let [notifier_side, listener_side, _] = transports;
    let seen = Seen::new();
    let listener = NotificationListener::builder(listener_side)
        .target(Target::new(topic))
        .endpoint(Arc::new(AllPriorities(Arc::clone(&seen))))
        .start()
        .await
        .unwrap();
    let notifier = Notifier::new(notifier_side, "compute.host1").with_topics([topic]);
    for priority in Priority::ALL {
        let event_type = format!("test.{priority}");
        notifier
            .notify(
                &ctx(),
                priority,
                &event_type,
                &json!({"p": priority.as_str()}),
            )
            .await
            .unwrap();
    }
    seen.wait_for(Priority::ALL.len()).await;
    let mut by_priority: BTreeMap<Priority, String> = BTreeMap::new();
    for (priority, event_type, payload) in seen.items() {
        assert_eq!(payload["p"], priority.as_str());
        by_priority.insert(priority, event_type);
    }
    for priority in Priority::ALL {
        assert_eq!(by_priority[&priority], format!("test.{priority}"));
    }
    listener.stop().await;
}

/// Listeners of one pool share the notifications; another pool, and a listener of no pool, each
/// get all of them. Notifications sent before any listener wait in the default queue.
pub async fn pools_share_and_pools_each_get_all(transports: [Arc<dyn Transport>; 3], topic: &str) {
    let [a, b, c] = transports;
    const N: usize = 20;
    let notifier = Notifier::new(Arc::clone(&a), "compute.host1").with_topics([topic]);
    // Before any listener: kept in `<topic>.info`, the queue oslo's notifier creates.
    notifier.info(&ctx(), "early", &json!({})).await.unwrap();
    let start = |transport: Arc<dyn Transport>, pool: Option<&str>, seen: &Arc<Seen>| {
        let mut builder = NotificationListener::builder(transport)
            .target(Target::new(topic.to_owned()))
            .endpoint(Arc::new(Infos(Arc::clone(seen))));
        if let Some(pool) = pool {
            builder = builder.pool(pool.to_owned());
        }
        builder.start()
    };
    let (a1, a2, b1, none) = (Seen::new(), Seen::new(), Seen::new(), Seen::new());
    let pool = format!("{topic}-pool-a");
    let other = format!("{topic}-pool-b");
    let l1 = start(Arc::clone(&b), Some(&pool), &a1).await.unwrap();
    let l2 = start(Arc::clone(&c), Some(&pool), &a2).await.unwrap();
    let l3 = start(Arc::clone(&b), Some(&other), &b1).await.unwrap();
    let l4 = start(Arc::clone(&c), None, &none).await.unwrap();
    none.wait_for(1).await;
    assert_eq!(none.event_types(), ["early"]);
    for i in 0..N {
        notifier
            .info(&ctx(), &format!("n{i}"), &json!({}))
            .await
            .unwrap();
    }
    b1.wait_for(N).await;
    none.wait_for(N + 1).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while a1.items().len() + a2.items().len() < N && tokio::time::Instant::now() < deadline {
        tokio::select! {
            () = a1.wait_for(a1.items().len() + 1) => {}
            () = a2.wait_for(a2.items().len() + 1) => {}
        }
    }
    let mut pooled: Vec<String> = a1.event_types();
    pooled.extend(a2.event_types());
    pooled.sort();
    let mut expected: Vec<String> = (0..N).map(|i| format!("n{i}")).collect();
    expected.sort();
    assert_eq!(pooled, expected, "each notification once across the pool");
    assert_eq!(b1.items().len(), N, "the other pool gets every one");
    for listener in [l1, l2, l3, l4] {
        listener.stop().await;
    }
}

/// A filtered endpoint sees only what matches; an unfiltered one on the same listener sees all.
pub async fn filters_choose_what_an_endpoint_sees(
    transports: [Arc<dyn Transport>; 3],
    topic: &str,
) {
    let [notifier_side, listener_side, _] = transports;
    let (filtered, all) = (Seen::new(), Seen::new());
    let listener = NotificationListener::builder(listener_side)
        .target(Target::new(topic))
        .endpoint(Arc::new(ComputeOnly(Arc::clone(&filtered))))
        .endpoint(Arc::new(Infos(Arc::clone(&all))))
        .start()
        .await
        .unwrap();
    let compute = Notifier::new(Arc::clone(&notifier_side), "compute.host1").with_topics([topic]);
    let conductor = compute.prepare("conductor.host1");
    let active = json!({"state": "active"});
    compute
        .info(&ctx(), "compute.instance.create", &active)
        .await
        .unwrap();
    compute
        .info(&ctx(), "volume.attach", &active)
        .await
        .unwrap();
    conductor
        .info(&ctx(), "compute.instance.delete", &active)
        .await
        .unwrap();
    compute
        .info(
            &ctx(),
            "compute.instance.error",
            &json!({"state": "inactive"}),
        )
        .await
        .unwrap();
    compute
        .info(&ctx(), "compute.instance.update", &active)
        .await
        .unwrap();
    all.wait_for(5).await;
    // Notifications run concurrently: in any order.
    let mut passed = filtered.event_types();
    passed.sort();
    assert_eq!(
        passed,
        ["compute.instance.create", "compute.instance.update"]
    );
    listener.stop().await;
}

/// A method's `Requeue` puts the message back: it is delivered again.
pub async fn requeue_delivers_again(transports: [Arc<dyn Transport>; 3], topic: &str) {
    let [notifier_side, listener_side, _] = transports;
    let seen = Seen::new();
    let listener = NotificationListener::builder(listener_side)
        .target(Target::new(topic))
        .endpoint(Arc::new(RequeueOnce {
            seen: Arc::clone(&seen),
            first: Mutex::default(),
        }))
        .start()
        .await
        .unwrap();
    let notifier = Notifier::new(notifier_side, "compute.host1").with_topics([topic]);
    notifier.info(&ctx(), "again", &json!({})).await.unwrap();
    seen.wait_for(2).await;
    assert_eq!(seen.event_types(), ["again", "again"]);
    listener.stop().await;
}

/// A batch listener delivers batches of at most `size`, and every notification once.
pub async fn batches_are_bounded(transports: [Arc<dyn Transport>; 3], topic: &str) {
    let [notifier_side, listener_side, _] = transports;
    const N: usize = 12;
    let seen = Seen::new();
    let batches = Arc::new(Batches {
        seen: Arc::clone(&seen),
        sizes: Mutex::default(),
    });
    let notifier = Notifier::new(notifier_side, "compute.host1").with_topics([topic]);
    // Sent before the listener: the first batches are full.
    for i in 0..N {
        notifier
            .info(&ctx(), &format!("b{i}"), &json!({}))
            .await
            .unwrap();
    }
    let listener = NotificationListener::builder(listener_side)
        .target(Target::new(topic))
        .endpoint(Arc::clone(&batches) as Arc<_>)
        .batch(5, Duration::from_millis(200))
        .max_concurrency(1)
        .start()
        .await
        .unwrap();
    seen.wait_for(N).await;
    let sizes = batches.sizes.lock().unwrap().clone();
    assert!(sizes.iter().all(|s| (1..=5).contains(s)), "{sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), N);
    assert_eq!(sizes.first(), Some(&5), "{sizes:?}");
    listener.stop().await;
}

/// Bodies that are not notifications are acknowledged and logged; a payload of the wrong type
/// does not reach the typed method but still reaches the others; the listener goes on.
pub async fn bad_input_never_stops_the_listener(transports: [Arc<dyn Transport>; 3], topic: &str) {
    let [notifier_side, listener_side, _] = transports;
    let (typed, all) = (Seen::new(), Seen::new());
    let listener = NotificationListener::builder(listener_side)
        .target(Target::new(topic))
        .endpoint(Arc::new(Typed(Arc::clone(&typed))))
        .endpoint(Arc::new(Infos(Arc::clone(&all))))
        .start()
        .await
        .unwrap();
    let routed = Target::new(format!("{topic}.info"));
    let retry = rpc_runtime::notify::Retry::Times(0);
    for body in [
        &b"not json at all"[..],
        br#"{"priority":"INFO","payload":{}}"#,
        br#"{"event_type":"x","priority":"LOUD","payload":{}}"#,
        br#"{"event_type":"x","priority":"INFO"}"#,
    ] {
        notifier_side.notify(&routed, body, retry).await.unwrap();
    }
    let notifier = Notifier::new(notifier_side, "compute.host1").with_topics([topic]);
    notifier
        .info(&ctx(), "wrong.shape", &json!({"instance_id": 7}))
        .await
        .unwrap();
    notifier
        .info(
            &ctx(),
            "right.shape",
            &json!({"instance_id": "i-1", "memory_mb": 512}),
        )
        .await
        .unwrap();
    all.wait_for(2).await;
    // Notifications run concurrently: in any order.
    let mut got = all.event_types();
    got.sort();
    assert_eq!(got, ["right.shape", "wrong.shape"]);
    typed.wait_for(1).await;
    assert_eq!(typed.event_types(), ["right.shape"]);
    assert_eq!(typed.items()[0].2["memory_mb"], 512);
    listener.stop().await;
}

/// `stop` waits for what runs; what was not started stays on the queue for the next listener.
pub async fn stop_finishes_what_runs_and_leaves_the_rest(
    transports: [Arc<dyn Transport>; 3],
    topic: &str,
) {
    let [notifier_side, listener_side, next_side] = transports;
    let seen = Seen::new();
    let (release_tx, release) = watch::channel(false);
    let (started, mut started_rx) = watch::channel(0);
    let slow = Arc::new(Slow {
        seen: Arc::clone(&seen),
        running: AtomicUsize::new(0),
        release,
        started,
    });
    let pool = format!("{topic}-stop");
    let listener = NotificationListener::builder(listener_side)
        .target(Target::new(topic))
        .pool(pool.clone())
        .endpoint(Arc::clone(&slow) as Arc<_>)
        .max_concurrency(2)
        .start()
        .await
        .unwrap();
    let notifier = Notifier::new(notifier_side, "compute.host1").with_topics([topic]);
    for i in 0..6 {
        notifier
            .info(&ctx(), &format!("s{i}"), &json!({}))
            .await
            .unwrap();
    }
    tokio::time::timeout(PATIENCE, started_rx.wait_for(|s| *s == 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(slow.running.load(Ordering::SeqCst), 2);
    // Polled once, `stop` has told the listener to take nothing more; the two running finish
    // once released, and stop returns after them.
    let mut stopping = Box::pin(listener.stop());
    assert!(futures::poll!(&mut stopping).is_pending());
    release_tx.send_replace(true);
    tokio::time::timeout(PATIENCE, stopping).await.unwrap();
    assert_eq!(seen.items().len(), 2, "exactly the two running finished");
    // The four left are delivered to the next listener of the pool.
    let rest = Seen::new();
    let next = NotificationListener::builder(next_side)
        .target(Target::new(topic))
        .pool(pool)
        .endpoint(Arc::new(Infos(Arc::clone(&rest))))
        .start()
        .await
        .unwrap();
    rest.wait_for(4).await;
    let mut all = seen.event_types();
    all.extend(rest.event_types());
    all.sort();
    assert_eq!(all, ["s0", "s1", "s2", "s3", "s4", "s5"]);
    next.stop().await;
}
