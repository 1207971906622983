//! Calls waiting for their reply, by `_msg_id`: shared by every transport's reply queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};

use crate::envelope::{self, MessageId, Reply};
use crate::error::TransportError;

/// How a waiting call hears: the final reply or an error once, and, when it runs oslo's call
/// monitor, a nudge for each heartbeat (`ending: false`, "still working"). A oneshot and an
/// optional notifier cost far less per call than a channel.
struct Waiter {
    done: oneshot::Sender<Result<Reply, TransportError>>,
    heartbeats: Option<Arc<Notify>>,
}

/// Calls waiting for replies on one reply queue.
#[derive(Default)]
pub(crate) struct PendingCalls {
    waiters: Mutex<HashMap<MessageId, Waiter>>,
}

fn lock(waiters: &Mutex<HashMap<MessageId, Waiter>>) -> MutexGuard<'_, HashMap<MessageId, Waiter>> {
    waiters
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl PendingCalls {
    /// Registers a call (with `monitor`, oslo's call-monitor limit between heartbeats); the
    /// guard removes it however the call ends.
    pub(crate) fn register(&self, msg_id: MessageId, monitor: Option<Duration>) -> PendingCall<'_> {
        let (done, rx) = oneshot::channel();
        let heartbeats = monitor.map(|_| Arc::new(Notify::new()));
        let waiter = Waiter {
            done,
            heartbeats: heartbeats.clone(),
        };
        lock(&self.waiters).insert(msg_id, waiter);
        PendingCall {
            calls: self,
            msg_id,
            rx,
            heartbeats,
            monitor,
        }
    }

    /// Routes an encoded reply or heartbeat to its call; replies no call waits for (late, or
    /// for another process) are dropped.
    pub(crate) fn deliver(&self, body: &[u8]) {
        let decoded = envelope::decode_reply_then(body, |reply, msg_id| {
            let id = MessageId::parse(msg_id);
            if id.is_none() {
                tracing::debug!(%msg_id, "dropping a reply to a message id this process never sends");
            }
            (reply, id)
        });
        let (reply, id) = match decoded {
            Ok((reply, Some(id))) => (reply, id),
            Ok((_, None)) => return,
            Err(error) => {
                tracing::warn!(%error, "dropping an unreadable reply");
                return;
            }
        };
        if reply.ending {
            match lock(&self.waiters).remove(&id) {
                Some(waiter) => {
                    let _ = waiter.done.send(Ok(reply));
                }
                None => {
                    tracing::debug!(msg_id = %id, "dropping a reply no call waits for (late or unknown)")
                }
            }
        } else if let Some(heartbeats) = lock(&self.waiters)
            .get(&id)
            .and_then(|w| w.heartbeats.clone())
        {
            heartbeats.notify_one();
        }
    }

    /// Fails every waiting call, when the transport closes.
    #[cfg_attr(not(feature = "amqp"), allow(dead_code))]
    pub(crate) fn fail_all(&self, error: impl Fn() -> TransportError) {
        let waiters: Vec<Waiter> = lock(&self.waiters).drain().map(|(_, w)| w).collect();
        for waiter in waiters {
            let _ = waiter.done.send(Err(error()));
        }
    }
}

/// One registered call.
pub(crate) struct PendingCall<'a> {
    calls: &'a PendingCalls,
    msg_id: MessageId,
    rx: oneshot::Receiver<Result<Reply, TransportError>>,
    heartbeats: Option<Arc<Notify>>,
    monitor: Option<Duration>,
}

impl PendingCall<'_> {
    /// Waits for the final reply, up to `timeout`; with a monitor, also fails when neither a
    /// heartbeat nor the reply comes within it (oslo's call monitor).
    pub(crate) async fn wait(mut self, timeout: Duration) -> Result<Reply, TransportError> {
        let overall = tokio::time::sleep(timeout);
        tokio::pin!(overall);
        let (Some(heartbeats), Some(quiet_limit)) = (self.heartbeats.clone(), self.monitor) else {
            return tokio::select! {
                heard = &mut self.rx => heard.unwrap_or(Err(TransportError::Closed)),
                () = &mut overall => Err(TransportError::Timeout { timeout }),
            };
        };
        loop {
            tokio::select! {
                heard = &mut self.rx => return heard.unwrap_or(Err(TransportError::Closed)),
                () = &mut overall => return Err(TransportError::Timeout { timeout }),
                () = heartbeats.notified() => {}
                () = tokio::time::sleep(quiet_limit) => {
                    return Err(TransportError::Timeout { timeout: quiet_limit });
                }
            }
        }
    }
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        lock(&self.calls.waiters).remove(&self.msg_id);
    }
}
