//! What the scheduler-service benchmarks share.

use rpc_runtime::{CallError, Context};
use scheduler_service::SchedulerManagerClient;
use scheduler_service::api::{Destinations, Flavor, RequestSpec};
use scheduler_service::error::NoValidHost;

/// Asks where one new `m1.tiny` instance goes, as nova's conductor does for a boot.
pub(crate) async fn place_one(
    client: &SchedulerManagerClient,
) -> Result<Destinations, CallError<NoValidHost>> {
    let flavor = Flavor::named("m1.tiny").expect("m1.tiny is a known flavor");
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut spec = RequestSpec::new(flavor, 1);
    spec.instance_uuid = Some(uuid.clone());
    client
        .select_destinations(
            &Context::new(),
            spec,
            Some(vec![uuid]),
            Some(true),
            Some(true),
        )
        .await
}
