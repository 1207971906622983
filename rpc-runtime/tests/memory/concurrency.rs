//! Many calls at once, and the limit on requests executing at once.

use std::sync::atomic::Ordering;

use rpc_runtime::{Context, ServerConfig};

use crate::fixture::serve;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_are_all_answered_correctly() {
    const CALLS: usize = 1000;
    let mut served = serve(
        &["host1"],
        ServerConfig::default().with_max_concurrency(CALLS),
    )
    .await;
    let client = served.client();
    let ctx = Context::new();
    // All spawned before any is awaited; each waits at the gate until all are executing at once.
    let calls: Vec<_> = (0..CALLS as i64)
        .map(|i| {
            let client = client.clone();
            let ctx = ctx.clone();
            tokio::spawn(async move { (i, client.wait(&ctx, 1000 * i).await) })
        })
        .collect();
    served.executing.wait_for(|n| *n == CALLS).await.unwrap();
    served.gate.add_permits(CALLS);
    let mut answers = Vec::with_capacity(CALLS);
    for call in calls {
        let (i, result) = call.await.unwrap();
        let answer = result.unwrap();
        assert_eq!(answer, 1000 * i, "call {i} got another call's answer");
        answers.push(answer);
    }
    answers.sort_unstable();
    answers.dedup();
    assert_eq!(answers.len(), CALLS, "distinct answers");
    assert_eq!(served.probe.max_executing.load(Ordering::SeqCst), CALLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_than_the_limit_execute_at_once() {
    const LIMIT: usize = 4;
    let mut served = serve(
        &["host1"],
        ServerConfig::default().with_max_concurrency(LIMIT),
    )
    .await;
    let client = served.client();
    let calls: Vec<_> = (0..40_i64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.wait(&Context::new(), i).await })
        })
        .collect();
    // Wait until the limit is reached, then give every other request the chance to start.
    served.executing.wait_for(|n| *n == LIMIT).await.unwrap();
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    assert_eq!(served.servers[0].in_flight(), LIMIT);
    assert_eq!(served.probe.executing.load(Ordering::SeqCst), LIMIT);
    served.gate.add_permits(1_000);
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), i as i64);
    }
    assert_eq!(served.probe.max_executing.load(Ordering::SeqCst), LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_waits_for_requests_in_flight() {
    let mut served = serve(&["host1"], ServerConfig::default()).await;
    let client = served.client();
    let call = tokio::spawn(async move { client.wait(&Context::new(), 5).await });
    served.executing.wait_for(|n| *n == 1).await.unwrap();
    let server = served.servers.remove(0);
    let stopping = tokio::spawn(server.stop());
    served.gate.add_permits(1);
    stopping.await.unwrap();
    // The request that was executing when the server stopped got its answer.
    assert_eq!(call.await.unwrap().unwrap(), 5);
}
