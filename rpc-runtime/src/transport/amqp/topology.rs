//! Names and declarations of oslo.messaging's rabbit driver: exchanges, queues, routing keys,
//! queue arguments and message properties. Pure functions, table-tested.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, ShortString};

use super::options::AmqpOptions;
use crate::target::Target;

/// The exchange a target publishes to: its own, or the control exchange.
pub(crate) fn exchange<'a>(target: &'a Target, options: &'a AmqpOptions) -> &'a str {
    target
        .exchange
        .as_deref()
        .unwrap_or(&options.control_exchange)
}

/// The fanout exchange of a topic: `<topic>_fanout`.
pub(crate) fn fanout_exchange(topic: &str) -> String {
    format!("{topic}_fanout")
}

/// A server's own fanout queue: `<topic>_fanout_<uuid hex>`.
pub(crate) fn fanout_queue(topic: &str, unique: &str) -> String {
    format!("{topic}_fanout_{unique}")
}

/// A client's reply queue: `reply_<uuid hex>`.
pub(crate) fn reply_queue(unique: &str) -> String {
    format!("reply_{unique}")
}

/// Arguments of topic queues (`topic`, `topic.server`): none, or quorum with its limits.
pub(crate) fn topic_queue_arguments(options: &AmqpOptions) -> FieldTable {
    let mut args = FieldTable::default();
    if options.quorum_queues {
        insert_quorum(&mut args, options);
    }
    args
}

/// Arguments of reply and fanout queues: `x-expires` in milliseconds, and quorum with its limits
/// under `rabbit_transient_quorum_queue`.
pub(crate) fn transient_queue_arguments(options: &AmqpOptions) -> FieldTable {
    let mut args = FieldTable::default();
    let millis = u32::try_from(options.transient_queues_ttl.as_millis()).unwrap_or(u32::MAX);
    args.insert("x-expires".into(), AMQPValue::LongUInt(millis));
    if options.transient_quorum_queues {
        insert_quorum(&mut args, options);
    }
    args
}

/// `x-queue-type: quorum`, and each limit oslo passes when it is set (not 0).
fn insert_quorum(args: &mut FieldTable, options: &AmqpOptions) {
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    let limits = [
        ("x-delivery-limit", u64::from(options.quorum_delivery_limit)),
        (
            "x-max-in-memory-length",
            u64::from(options.quorum_max_memory_length),
        ),
        ("x-max-in-memory-bytes", options.quorum_max_memory_bytes),
    ];
    for (name, limit) in limits {
        if limit > 0 {
            let value = i64::try_from(limit).unwrap_or(i64::MAX);
            args.insert(name.into(), AMQPValue::LongLongInt(value));
        }
    }
}

/// Properties of every message, as kombu sets them; calls add `expiration` (the timeout in ms).
pub(crate) fn message_properties(expiration_ms: Option<u128>) -> BasicProperties {
    let properties = BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_content_encoding(ShortString::from("utf-8"))
        .with_delivery_mode(2)
        .with_priority(0)
        .with_headers(FieldTable::default());
    match expiration_ms {
        Some(ms) => properties.with_expiration(ShortString::from(ms.to_string())),
        None => properties,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn names_follow_oslo() {
        let options = AmqpOptions::default();
        let target = Target::new("scheduler").with_server("host1");
        assert_eq!(exchange(&target, &options), "openstack");
        assert_eq!(
            exchange(&target.clone().with_exchange("nova"), &options),
            "nova"
        );
        assert_eq!(target.routing_key(), "scheduler.host1");
        assert_eq!(fanout_exchange("scheduler"), "scheduler_fanout");
        assert_eq!(fanout_queue("scheduler", "abc"), "scheduler_fanout_abc");
        assert_eq!(reply_queue("abc"), "reply_abc");
    }

    #[test]
    fn queue_arguments_follow_oslo() {
        let mut options = AmqpOptions::default();
        assert!(topic_queue_arguments(&options).inner().is_empty());
        let transient = transient_queue_arguments(&options);
        assert_eq!(
            transient.inner().get("x-expires"),
            Some(&AMQPValue::LongUInt(1_800_000))
        );
        options.quorum_queues = true;
        options.transient_queues_ttl = Duration::from_secs(60);
        assert_eq!(
            topic_queue_arguments(&options).inner().get("x-queue-type"),
            Some(&AMQPValue::LongString("quorum".into()))
        );
        assert_eq!(
            transient_queue_arguments(&options).inner().get("x-expires"),
            Some(&AMQPValue::LongUInt(60_000))
        );
        // Transient queues stay classic unless asked; limits only where set.
        assert!(
            !transient_queue_arguments(&options)
                .inner()
                .contains_key("x-queue-type")
        );
        assert!(
            !topic_queue_arguments(&options)
                .inner()
                .contains_key("x-delivery-limit")
        );
    }

    #[test]
    fn quorum_limits_and_transient_quorum_queues_follow_oslo() {
        let options = AmqpOptions {
            quorum_queues: true,
            transient_quorum_queues: true,
            quorum_delivery_limit: 5,
            quorum_max_memory_length: 1_000,
            quorum_max_memory_bytes: 1 << 20,
            ..AmqpOptions::default()
        };
        for args in [
            topic_queue_arguments(&options),
            transient_queue_arguments(&options),
        ] {
            let args = args.inner();
            assert_eq!(
                args.get("x-queue-type"),
                Some(&AMQPValue::LongString("quorum".into()))
            );
            assert_eq!(
                args.get("x-delivery-limit"),
                Some(&AMQPValue::LongLongInt(5))
            );
            assert_eq!(
                args.get("x-max-in-memory-length"),
                Some(&AMQPValue::LongLongInt(1_000))
            );
            assert_eq!(
                args.get("x-max-in-memory-bytes"),
                Some(&AMQPValue::LongLongInt(1 << 20))
            );
        }
        assert!(
            transient_queue_arguments(&options)
                .inner()
                .contains_key("x-expires")
        );
    }

    #[test]
    fn properties_follow_kombu() {
        let p = message_properties(Some(60_000));
        assert_eq!(
            p.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        assert_eq!(
            p.content_encoding().as_ref().map(|s| s.as_str()),
            Some("utf-8")
        );
        assert_eq!(*p.delivery_mode(), Some(2));
        assert_eq!(*p.priority(), Some(0));
        assert_eq!(p.expiration().as_ref().map(|s| s.as_str()), Some("60000"));
        assert!(p.correlation_id().is_none() && p.reply_to().is_none());
        assert!(message_properties(None).expiration().is_none());
    }
}
