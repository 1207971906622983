//! Replies from servers: published mandatory on the transport's current session, and published
//! again, in a task of their own, while their queue is missing or the broker refuses them (the
//! caller may be reconnecting), for `kombu_missing_consumer_retry_timeout`.

use std::sync::Weak;
use std::time::Duration;

use lapin::types::ShortString;

use super::broker::short;
use super::connection::{self, current_session};
use super::{CAST_CONNECT_WAIT, Inner, Routed, topology};
use crate::error::TransportError;
use crate::transport::{ReplyKind, ReplySink, Sent};

/// Publishes replies for servers, on the transport's current session.
pub(super) struct AmqpReplySink {
    pub(super) inner: Weak<Inner>,
}

impl AmqpReplySink {
    /// Publishes a reply on the current session; when the publish broke with its connection,
    /// publishes it again on the next one, for up to [`CAST_CONNECT_WAIT`] (the caller keeps
    /// waiting across the reconnect).
    async fn publish_reply(
        inner: &Inner,
        routing_key: &ShortString,
        body: &[u8],
    ) -> Result<Routed, TransportError> {
        let deadline = tokio::time::Instant::now() + CAST_CONNECT_WAIT;
        let mut session = current_session(&inner.session, CAST_CONNECT_WAIT).await?;
        loop {
            let error = match inner
                .publish(
                    &session,
                    (ShortString::default(), routing_key.clone()),
                    true,
                    body,
                    topology::message_properties(None),
                    || "basic_publish of a reply".to_owned(),
                )
                .await
            {
                Err(error) if *inner.broken.borrow() >= session.generation => error,
                routed => return routed,
            };
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tracing::debug!(%error, "a reply's publish broke with its connection; publishing again on the next");
            session = match connection::next_session(&inner.session, session.generation, left).await
            {
                Ok(next) => next,
                Err(_) => return Err(error),
            };
        }
    }

    /// Publishes a final reply whose queue was missing (or that the broker refused) again, in a task of its own, until a queue
    /// takes it or `kombu_missing_consumer_retry_timeout` has passed since the first try (the
    /// caller may be reconnecting and declaring its queue again, as oslo allows for). Other
    /// replies never wait for it.
    fn retry_missing(inner: Weak<Inner>, routing_key: ShortString, body: Vec<u8>) {
        let Some(timeout) = inner
            .upgrade()
            .map(|i| i.options.missing_consumer_retry_timeout)
        else {
            return;
        };
        tokio::spawn(async move {
            let first = tokio::time::Instant::now();
            let mut wait = MISSING_REPLY_QUEUE_FIRST_WAIT;
            loop {
                if first.elapsed() + wait > timeout {
                    tracing::warn!(
                        reply_q = routing_key.as_str(),
                        waited = ?first.elapsed(),
                        "dropping a reply: its reply queue is gone and did not come back within \
                         kombu_missing_consumer_retry_timeout"
                    );
                    return;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MISSING_REPLY_QUEUE_MAX_WAIT);
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                match Self::publish_reply(&inner, &routing_key, &body).await {
                    Ok(Routed::Taken) => {
                        tracing::debug!(
                            reply_q = routing_key.as_str(),
                            after = ?first.elapsed(),
                            "a reply found its queue again"
                        );
                        return;
                    }
                    Ok(Routed::Returned | Routed::Nacked) => {}
                    Err(error) => {
                        tracing::debug!(%error, "retrying a reply whose queue was gone");
                    }
                }
            }
        });
    }
}

/// The first wait before a reply whose queue is gone is published again; it doubles up to
/// [`MISSING_REPLY_QUEUE_MAX_WAIT`].
const MISSING_REPLY_QUEUE_FIRST_WAIT: Duration = Duration::from_millis(250);
/// The longest wait between two tries of a reply whose queue is gone.
const MISSING_REPLY_QUEUE_MAX_WAIT: Duration = Duration::from_secs(2);

impl ReplySink for AmqpReplySink {
    fn send_reply(&self, reply_q: &str, body: Vec<u8>, kind: ReplyKind) -> Sent {
        let Some(inner) = self.inner.upgrade() else {
            return Sent::Now(Err(TransportError::Closed));
        };
        // Checked here, once: the name came from the network.
        let routing_key = match short(reply_q) {
            Ok(routing_key) => routing_key,
            Err(error) => return Sent::Now(Err(error)),
        };
        let weak = self.inner.clone();
        Sent::Later(Box::pin(async move {
            let routed = Self::publish_reply(&inner, &routing_key, &body).await?;
            // A reply refused or unroutable now may be taken in a moment: its caller may be
            // reconnecting, or the node that refused it shutting down.
            if matches!(routed, Routed::Returned | Routed::Nacked) {
                if let (Routed::Returned, Some(metrics)) = (&routed, crate::metrics::get()) {
                    metrics.transport_event(
                        super::METRICS_NAME,
                        crate::metrics::TransportEvent::ReplyUnroutable,
                    );
                }
                match kind {
                    ReplyKind::Final => Self::retry_missing(weak, routing_key, body),
                    ReplyKind::Heartbeat => tracing::debug!(
                        reply_q = routing_key.as_str(),
                        "a call-monitor heartbeat found no reply queue"
                    ),
                }
            }
            Ok(())
        }))
    }
}
