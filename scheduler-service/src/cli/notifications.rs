//! `scheduler-service notifications`: tails the notifications on some topics, one line each, for
//! a person (time, priority, event type, publisher, payload) or, with `--json`, for a script.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rpc_runtime::cli::ConfigArgs;
use rpc_runtime::launcher::{self, LaunchError, Services};
use rpc_runtime::notify::versioned::VERSIONED_TOPIC;
use rpc_runtime::notify::{
    EndpointOutcome, NotificationEndpoint, NotificationListener, NotificationResult, Priority,
    RawNotification,
};
use rpc_runtime::{BoxFuture, Target};
use tokio::sync::Notify;

use rpc_runtime::config::Config;

use super::{Failure, say_ready};

/// `notifications [--topic T]... [--priority P]... [--pool NAME] [--json] [--count N]`.
///
/// Without `--pool` it consumes the topics' own queues (`<topic>.<priority>`), taking the
/// notifications from whoever else consumes them; give a pool name of its own to get a copy.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    pub(super) config: ConfigArgs,
    /// A topic to tail (repeatable). Default: `[oslo_messaging_notifications] topics` and
    /// `versioned_notifications`.
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Only these priorities (repeatable). Default: all.
    #[arg(long = "priority", value_parser = parse_priority)]
    priorities: Vec<Priority>,
    /// Listen in this pool: listeners of one pool share; each pool gets every notification.
    #[arg(long)]
    pool: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Exit after this many notifications.
    #[arg(long)]
    count: Option<usize>,
}

fn parse_priority(text: &str) -> Result<Priority, String> {
    text.parse()
        .map_err(|e: rpc_runtime::notify::UnknownPriority| e.to_string())
}

pub(super) async fn run(args: Args, config: Config) -> Result<ExitCode, Failure> {
    let mut topics = args.topics.clone();
    if topics.is_empty() {
        topics.clone_from(&config.notifications.topics);
        topics.push(VERSIONED_TOPIC.to_owned());
    }
    let transport = match &config.notifications.transport_url {
        Some(url) => rpc_runtime::connect_url(url).await?,
        None => config.connect_transport().await?,
    };
    let printer = Arc::new(Printer {
        priorities: if args.priorities.is_empty() {
            Priority::ALL.to_vec()
        } else {
            args.priorities.clone()
        },
        json: args.json,
        printed: AtomicUsize::new(0),
        count: args.count,
        done: Notify::new(),
    });
    // Through the launcher, as a service's listener runs: SIGTERM or SIGINT stop it gracefully.
    let build = {
        let printer = Arc::clone(&printer);
        let pool = args.pool.clone();
        move || {
            let mut builder = NotificationListener::builder(Arc::clone(&transport))
                .endpoint(Arc::clone(&printer) as Arc<dyn NotificationEndpoint>)
                // One at a time: lines come out in the order the broker delivers them.
                .max_concurrency(1);
            for topic in &topics {
                builder = builder.target(Target::new(topic.as_str()));
            }
            if let Some(pool) = &pool {
                builder = builder.pool(pool.clone());
            }
            std::future::ready(Ok::<_, LaunchError>(
                Services::new().with_notification_listener(builder),
            ))
        }
    };
    let launcher = launcher::serve(1, build).await?;
    say_ready();
    let stop = launcher.stop_handle();
    let waiting = tokio::spawn(launcher.wait());
    printer.done.notified().await;
    stop.stop();
    let exit = waiting.await?;
    Ok(exit.into())
}

/// Prints each notification; tells `done` after `count`.
struct Printer {
    priorities: Vec<Priority>,
    json: bool,
    printed: AtomicUsize,
    count: Option<usize>,
    done: Notify,
}

/// The text line of a notification: time, priority, event type, publisher, payload.
pub(super) fn text_line(n: &RawNotification) -> String {
    format!(
        "{}  {:<8} {}  {}  {}",
        n.timestamp,
        n.priority.wire_name(),
        n.event_type,
        n.publisher_id,
        n.payload.as_str()
    )
}

impl Printer {
    fn line(&self, n: &RawNotification) -> String {
        let payload: serde_json::Value =
            serde_json::from_str(n.payload.as_str()).unwrap_or(serde_json::Value::Null);
        if self.json {
            serde_json::json!({
                "timestamp": n.timestamp,
                "priority": n.priority.as_str(),
                "event_type": n.event_type,
                "publisher_id": n.publisher_id,
                "payload": payload,
                "message_id": n.message_id,
                "request_id": n.context.request_id,
            })
            .to_string()
        } else {
            text_line(n)
        }
    }
}

impl NotificationEndpoint for Printer {
    fn name(&self) -> &str {
        "notifications tail"
    }

    fn priorities(&self) -> &[Priority] {
        &self.priorities
    }

    fn handle<'a>(&'a self, n: &'a RawNotification) -> BoxFuture<'a, EndpointOutcome> {
        let line = self.line(n);
        Box::pin(async move {
            let printed = self.printed.fetch_add(1, Ordering::SeqCst) + 1;
            if self.count.is_some_and(|count| printed > count) {
                // Past the count (on its way as the tail stops): back to its queue, untouched.
                return EndpointOutcome::Ran(NotificationResult::Requeue);
            }
            say!("{line}");
            if self.count == Some(printed) {
                self.done.notify_one();
            }
            EndpointOutcome::Ran(NotificationResult::Handled)
        })
    }
}
