//! The AMQP operations this transport uses, each mapping lapin's error to a typed
//! [`TransportError`] that names the operation, and every name checked against AMQP's 255-byte
//! limit first.

use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Consumer, ExchangeKind};

use super::connection::Session;
use crate::error::TransportError;

/// A queue, exchange or routing-key name as AMQP carries it. lapin panics on a name over 255
/// bytes; every name from a user or the network goes through here instead.
pub(super) fn short(name: &str) -> Result<ShortString, TransportError> {
    if name.len() > usize::from(u8::MAX) {
        return Err(TransportError::NameTooLong {
            prefix: name.chars().take(32).collect(),
            length: name.len(),
        });
    }
    // Within the limit: lapin's conversion cannot fail.
    Ok(ShortString::from(name))
}

pub(super) fn broker(operation: &str, error: &lapin::Error) -> TransportError {
    TransportError::Broker {
        operation: operation.to_owned(),
        reason: error.to_string(),
    }
}

pub(super) async fn create_channel(session: &Session) -> Result<Channel, TransportError> {
    session
        .connection
        .create_channel()
        .await
        .map_err(|e| broker("channel_open", &e))
}

pub(super) async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
    durable: bool,
    auto_delete: bool,
) -> Result<(), TransportError> {
    channel
        .exchange_declare(
            short(name)?,
            kind,
            ExchangeDeclareOptions {
                durable,
                auto_delete,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| broker(&format!("exchange_declare {name}"), &e))
}

pub(super) async fn declare_queue(
    channel: &Channel,
    name: &str,
    durable: bool,
    arguments: FieldTable,
) -> Result<(), TransportError> {
    channel
        .queue_declare(
            short(name)?,
            QueueDeclareOptions {
                durable,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .map(drop)
        .map_err(|e| broker(&format!("queue_declare {name}"), &e))
}

pub(super) async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    routing_key: &str,
) -> Result<(), TransportError> {
    channel
        .queue_bind(
            short(queue)?,
            short(exchange)?,
            short(routing_key)?,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| broker(&format!("queue_bind {queue} to {exchange}"), &e))
}

pub(super) async fn consume(
    channel: &Channel,
    queue: &str,
    no_ack: bool,
) -> Result<Consumer, TransportError> {
    channel
        .basic_consume(
            short(queue)?,
            "".into(),
            BasicConsumeOptions {
                no_ack,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| broker(&format!("basic_consume {queue}"), &e))
}
