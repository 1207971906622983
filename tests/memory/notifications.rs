//! Notifications over `memory://`: the shared scenarios (`support/notifications.rs`).

use std::sync::Arc;

use rpc_integration_tests::notifications as scenario;
use rpc_integration_tests::unique_name;
use rpc_runtime::{MemoryBroker, Transport};

fn transports() -> [Arc<dyn Transport>; 3] {
    let broker = MemoryBroker::new();
    [(); 3].map(|()| Arc::new(broker.transport()) as Arc<dyn Transport>)
}

#[tokio::test]
async fn every_priority_reaches_its_method() {
    scenario::every_priority_reaches_its_method(transports(), &unique_name("n")).await;
}

#[tokio::test]
async fn pools_share_and_pools_each_get_all() {
    scenario::pools_share_and_pools_each_get_all(transports(), &unique_name("n")).await;
}

#[tokio::test]
async fn filters_choose_what_an_endpoint_sees() {
    scenario::filters_choose_what_an_endpoint_sees(transports(), &unique_name("n")).await;
}

#[tokio::test]
async fn requeue_delivers_again() {
    scenario::requeue_delivers_again(transports(), &unique_name("n")).await;
}

#[tokio::test]
async fn batches_are_bounded() {
    scenario::batches_are_bounded(transports(), &unique_name("n")).await;
}

#[tokio::test]
async fn bad_input_never_stops_the_listener() {
    scenario::bad_input_never_stops_the_listener(transports(), &unique_name("n")).await;
}

#[tokio::test]
async fn stop_finishes_what_runs_and_leaves_the_rest() {
    scenario::stop_finishes_what_runs_and_leaves_the_rest(transports(), &unique_name("n")).await;
}
