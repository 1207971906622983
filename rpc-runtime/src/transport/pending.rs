//! Calls waiting for their reply, by `_msg_id`: shared by every transport's reply queue.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::envelope::{self, MessageId, Reply};
use crate::error::TransportError;

/// What a waiting call hears: heartbeats (`Ok` with `ending: false`), then the final reply or an
/// error.
type Waiter = mpsc::UnboundedSender<Result<Reply, TransportError>>;

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
    /// Registers a call; the guard removes it however the call ends.
    pub(crate) fn register(&self, msg_id: MessageId) -> PendingCall<'_> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.waiters).insert(msg_id, tx);
        PendingCall {
            calls: self,
            msg_id,
            rx,
        }
    }

    /// Routes an encoded reply or heartbeat (`ending: false`, "still working") to its call;
    /// replies no call waits for (late, or for another process) are dropped.
    pub(crate) fn deliver(&self, body: &[u8]) {
        let (reply, msg_id) = match envelope::decode_reply(body) {
            Ok(decoded) => decoded,
            Err(error) => {
                tracing::warn!(%error, "dropping an unreadable reply");
                return;
            }
        };
        let waiter = MessageId::parse(&msg_id).and_then(|id| {
            let mut waiters = lock(&self.waiters);
            if reply.ending {
                waiters.remove(&id)
            } else {
                waiters.get(&id).cloned()
            }
        });
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(Ok(reply));
            }
            None => {
                tracing::debug!(%msg_id, "dropping a reply no call waits for (late or unknown)");
            }
        }
    }

    /// Fails every waiting call, for example when the connection is lost.
    #[cfg_attr(not(feature = "amqp"), allow(dead_code))]
    pub(crate) fn fail_all(&self, error: impl Fn() -> TransportError) {
        let waiters: Vec<Waiter> = lock(&self.waiters).drain().map(|(_, w)| w).collect();
        for waiter in waiters {
            let _ = waiter.send(Err(error()));
        }
    }
}

/// One registered call.
pub(crate) struct PendingCall<'a> {
    calls: &'a PendingCalls,
    msg_id: MessageId,
    rx: mpsc::UnboundedReceiver<Result<Reply, TransportError>>,
}

impl PendingCall<'_> {
    /// Waits for the final reply, up to `timeout`; with a `monitor` timeout, also fails when
    /// neither a heartbeat nor the reply comes within it (oslo's call monitor).
    pub(crate) async fn wait(
        mut self,
        timeout: Duration,
        monitor: Option<Duration>,
    ) -> Result<Reply, TransportError> {
        let overall = tokio::time::sleep(timeout);
        tokio::pin!(overall);
        let quiet_limit = monitor.unwrap_or(timeout);
        loop {
            let heard = tokio::select! {
                heard = self.rx.recv() => heard,
                () = &mut overall => return Err(TransportError::Timeout { timeout }),
                () = tokio::time::sleep(quiet_limit), if monitor.is_some() => {
                    return Err(TransportError::Timeout { timeout: quiet_limit });
                }
            };
            match heard {
                Some(Ok(reply)) if reply.ending => return Ok(reply),
                Some(Ok(_heartbeat)) => {}
                Some(Err(error)) => return Err(error),
                None => return Err(TransportError::Closed),
            }
        }
    }
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        lock(&self.calls.waiters).remove(&self.msg_id);
    }
}
