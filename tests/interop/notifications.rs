//! Notifications with real oslo.messaging (`py/notifications.py`): Python's `Notifier` to Rust
//! listeners (every priority, the `messaging` v1 driver, filters, pools, requeue, a batch), and the Rust `Notifier`
//! to Python `NotificationListener`s (every priority, both drivers, pools).

// Helpers outside `#[test]` fns report by panicking.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use rpc_integration_tests::notifications::{
    AllPriorities, Batches, ComputeOnly, Infos, RequeueOnce, Seen,
};
use rpc_integration_tests::{Vhost, unique_name};
use rpc_runtime::notify::{Driver, NotificationListener, Notifier, Priority};
use rpc_runtime::{Context, Target};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{PythonServer, python, script};

/// Runs `notifications.py send`, the notifications given on its stdin.
fn python_send(python: &std::path::Path, url: &str, topic: &str, items: &Value) {
    let mut child = Command::new(python)
        .arg(script("notifications.py"))
        .args(["send", "--url", url, "--topic", topic])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(items.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("sent"),
        "notifications.py send failed: {output:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_notifier_to_rust_listeners() {
    let Some(vhost) = Vhost::create("interop-notify-py") else {
        return;
    };
    let Some(python) = python() else { return };
    let url = vhost.url("");
    let topic = unique_name("pynotify");
    let transport = rpc_runtime::connect(&url).await.unwrap();
    let (all, filtered) = (Seen::new(), Seen::new());
    let everything = NotificationListener::builder(Arc::clone(&transport))
        .target(Target::new(topic.as_str()))
        .endpoint(Arc::new(AllPriorities(Arc::clone(&all))))
        .endpoint(Arc::new(ComputeOnly(Arc::clone(&filtered))))
        .start()
        .await
        .unwrap();
    let (pool_a1, pool_a2, pool_b) = (Seen::new(), Seen::new(), Seen::new());
    let mut pooled = Vec::new();
    for (seen, pool) in [(&pool_a1, "a"), (&pool_a2, "a"), (&pool_b, "b")] {
        pooled.push(
            NotificationListener::builder(Arc::clone(&transport))
                .target(Target::new(topic.as_str()))
                .pool(format!("{topic}-{pool}"))
                .endpoint(Arc::new(Infos(Arc::clone(seen))))
                .start()
                .await
                .unwrap(),
        );
    }
    // A listener that asks to requeue each event type once, and a batch listener, each in a
    // pool of its own (so each gets every info).
    let requeued = Seen::new();
    pooled.push(
        NotificationListener::builder(Arc::clone(&transport))
            .target(Target::new(topic.as_str()))
            .pool(format!("{topic}-requeue"))
            .endpoint(Arc::new(RequeueOnce {
                seen: Arc::clone(&requeued),
                first: Mutex::default(),
            }))
            .start()
            .await
            .unwrap(),
    );
    let batched = Seen::new();
    let batches = Arc::new(Batches {
        seen: Arc::clone(&batched),
        sizes: Mutex::default(),
    });
    pooled.push(
        NotificationListener::builder(Arc::clone(&transport))
            .target(Target::new(topic.as_str()))
            .pool(format!("{topic}-batch"))
            .endpoint(Arc::clone(&batches) as Arc<_>)
            .batch(5, std::time::Duration::from_millis(200))
            .start()
            .await
            .unwrap(),
    );
    let mut items: Vec<Value> = Priority::ALL
        .iter()
        .map(|p| {
            json!({"priority": p.as_str(), "publisher_id": "compute.host1",
                   "event_type": format!("py.{p}"), "payload": {"p": p.as_str(), "state": "active"}})
        })
        .collect();
    items.push(
        json!({"priority": "info", "publisher_id": "compute.host1", "driver": "messaging",
                      "event_type": "compute.instance.v1", "payload": {"state": "active"}}),
    );
    items.push(
        json!({"priority": "info", "publisher_id": "conductor.host1",
                      "event_type": "compute.instance.other", "payload": {"state": "active"}}),
    );
    let (py, u, t, i) = (
        python.clone(),
        url.clone(),
        topic.clone(),
        Value::from(items),
    );
    tokio::task::spawn_blocking(move || python_send(&py, &u, &t, &i))
        .await
        .unwrap();
    all.wait_for(9).await;
    let by_priority: Vec<(Priority, String)> =
        all.items().into_iter().map(|(p, e, _)| (p, e)).collect();
    for p in Priority::ALL {
        assert!(
            by_priority.contains(&(p, format!("py.{p}"))),
            "{by_priority:?}"
        );
    }
    // The bare v1 message reads as the enveloped one does.
    assert!(by_priority.contains(&(Priority::Info, "compute.instance.v1".to_owned())));
    // Only compute.* from compute publishers passed the filter.
    assert_eq!(filtered.event_types(), ["compute.instance.v1"]);
    // Three infos: pool b gets all three, pool a shares them.
    pool_b.wait_for(3).await;
    let shared = || pool_a1.items().len() + pool_a2.items().len();
    while shared() < 3 {
        tokio::select! {
            () = pool_a1.wait_for(pool_a1.items().len() + 1) => {}
            () = pool_a2.wait_for(pool_a2.items().len() + 1) => {}
        }
    }
    assert_eq!(shared(), 3);
    // Each info twice at the requeueing listener (put back once, as oslo's requeue does).
    requeued.wait_for(6).await;
    let mut twice = requeued.event_types();
    twice.sort();
    twice.dedup();
    assert_eq!(twice.len(), 3, "{:?}", requeued.event_types());
    // The batch listener got the three infos in batches of at most five.
    batched.wait_for(3).await;
    let sizes = batches.sizes.lock().unwrap().clone();
    assert_eq!(sizes.iter().sum::<usize>(), 3, "{sizes:?}");
    assert!(sizes.iter().all(|s| (1..=5).contains(s)), "{sizes:?}");
    everything.stop().await;
    for listener in pooled {
        listener.stop().await;
    }
}

/// A Python listener's lines, read in a thread of its own.
fn python_listener(
    python: &std::path::Path,
    url: &str,
    topic: &str,
    pool: &str,
) -> (PythonServer, mpsc::UnboundedReceiver<Value>) {
    let mut child = Command::new(python)
        .arg(script("notifications.py"))
        .args(["listen", "--url", url, "--topic", topic, "--pool", pool])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut ready = Some(ready_tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line == "ready" {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
            } else {
                match serde_json::from_str::<Value>(&line) {
                    Ok(value) => {
                        let _ = tx.send(value);
                    }
                    Err(_) => eprintln!("notifications.py printed a line that is not JSON: {line}"),
                }
            }
        }
    });
    let server = PythonServer(child);
    assert!(
        ready_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .is_ok(),
        "notifications.py listen never said `ready`"
    );
    (server, rx)
}

async fn take(rx: &mut mpsc::UnboundedReceiver<Value>, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    while got.len() < n {
        let next = tokio::time::timeout(std::time::Duration::from_secs(20), rx.recv()).await;
        match next {
            Ok(Some(value)) => got.push(value),
            _ => panic!("waited for {n} notifications from Python; got {got:?}"),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_notifier_to_python_listeners() {
    let Some(vhost) = Vhost::create("interop-notify-rs") else {
        return;
    };
    let Some(python) = python() else { return };
    let url = vhost.url("");
    let topic = unique_name("rsnotify");
    let (p, u, t) = (python.clone(), url.clone(), topic.clone());
    let started = tokio::task::spawn_blocking(move || {
        let plain = python_listener(&p, &u, &t, "");
        let shared1 = python_listener(&p, &u, &t, &format!("{t}-shared"));
        let shared2 = python_listener(&p, &u, &t, &format!("{t}-shared"));
        (plain, shared1, shared2)
    })
    .await
    .unwrap();
    let ((_plain, mut plain), (_s1, mut shared1), (_s2, mut shared2)) = started;
    let transport = rpc_runtime::connect(&url).await.unwrap();
    let ctx = Context::new().with_user("u-1").with_project("p-1");
    let v2 = Notifier::new(Arc::clone(&transport), "scheduler.host1").with_topics([topic.as_str()]);
    for p in Priority::ALL {
        v2.notify(&ctx, p, &format!("rs.{p}"), &json!({"p": p.as_str()}))
            .await
            .unwrap();
    }
    let v1 = v2.clone().with_drivers([Driver::Messaging]);
    v1.info(&ctx, "rs.v1", &json!({"bare": true}))
        .await
        .unwrap();
    // The listener of no pool gets all eight, each to the method of its priority.
    let got = take(&mut plain, 8).await;
    for p in Priority::ALL {
        let one = got
            .iter()
            .find(|v| v["event_type"] == format!("rs.{p}"))
            .unwrap_or_else(|| panic!("no rs.{p} in {got:?}"));
        assert_eq!(one["priority"], p.as_str(), "{one}");
        assert_eq!(one["payload"]["p"], p.as_str(), "{one}");
        assert_eq!(one["publisher_id"], "scheduler.host1", "{one}");
        assert_eq!(one["user_id"], "u-1", "{one}");
        assert_eq!(one["message_id"].as_str().map(str::len), Some(36), "{one}");
    }
    let bare = got.iter().find(|v| v["event_type"] == "rs.v1").unwrap();
    assert_eq!(bare["payload"]["bare"], true);
    // The two listeners of one pool share the eight.
    let mut shared = 0;
    while shared < 8 {
        tokio::select! {
            Some(_) = shared1.recv() => shared += 1,
            Some(_) = shared2.recv() => shared += 1,
            () = tokio::time::sleep(std::time::Duration::from_secs(20)) => {
                panic!("the pool got {shared} of 8");
            }
        }
    }
    // Nothing more comes to the pool (each once).
    assert!(shared1.try_recv().is_err() && shared2.try_recv().is_err());
}
