//! Notifications: oslo.messaging's other half. A [`Notifier`] tells the world what happened
//! (`scheduler.select_destinations.end`); a [`NotificationListener`] runs endpoints
//! (`#[notification_endpoint]`) for what others tell.
//!
//! The layering is RPC's: [`envelope`](crate::envelope) alone knows the message's keys, the
//! transport moves bytes to `<topic>.<priority>` on the control exchange, and this module holds
//! the notifier, the listener and what they are configured by (`[oslo_messaging_notifications]`).
//!
//! ```text
//! Notifier.info(ctx, event_type, payload) ──► envelope ──► Transport::notify ──► <topic>.info
//!                                                                                   │
//! endpoint.info(Notification<P>) ◄── filter ◄── envelope ◄── NotificationListener ◄─┘
//! ```
//!
//! # Example
//!
#![doc = include_str!("../docs/notifications.md")]

mod endpoint;
mod filter;
mod listener;
mod notifier;
mod settings;
pub mod versioned;

pub use self::endpoint::{
    EndpointOutcome, FromNotifications, Notification, NotificationEndpoint, NotificationResult,
};
pub use self::filter::NotificationFilter;
pub use self::listener::{ListenerBuilder, ListenerError, NotificationListener};
pub use self::notifier::{Notifier, NotifyError, SentNotification};
pub(crate) use self::settings::set as set_option;
pub use self::settings::{Driver, NotificationSettings, OPTION_NAMES, SECTION, UnknownDriver};
pub use crate::envelope::{Priority, RawNotification, UnknownPriority};
pub use crate::transport::Retry;
