//! `#[notification_endpoint]` under strict settings: typed, raw and batch endpoints, a filter,
//! both return types.
#![deny(warnings, missing_docs)]

use rpc_runtime::notification_endpoint;
use rpc_runtime::notify::{
    Notification, NotificationEndpoint, NotificationResult, Priority, RawNotification,
};

/// A typed payload.
#[derive(serde::Deserialize)]
pub struct Payload {
    /// A field.
    pub state: String,
}

/// One at a time, filtered.
pub struct Single;

#[notification_endpoint(
    event_type = r"compute\.instance\.",
    publisher_id = "^compute",
    context(user_id = "^admin"),
    payload(state = "active|error")
)]
impl Single {
    async fn info(&self, n: Notification<Payload>) -> NotificationResult {
        if n.payload.state.is_empty() {
            NotificationResult::Requeue
        } else {
            NotificationResult::Handled
        }
    }

    async fn error(&self, _n: RawNotification) {}

    /// Not a listener method.
    pub fn helper(&self) -> u8 {
        1
    }
}

/// In batches.
pub struct Batch;

#[notification_endpoint]
impl Batch {
    async fn sample(&self, batch: Vec<Notification<serde_json::Value>>) {
        let _ = batch.len();
    }
}

fn main() {
    assert_eq!(Single.priorities(), [Priority::Info, Priority::Error]);
    assert!(Single.filter().is_some() && !Single.is_batch());
    assert!(Batch.is_batch() && Batch.filter().is_none());
    assert_eq!(Single.helper(), 1);
}
