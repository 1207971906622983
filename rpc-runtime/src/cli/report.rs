//! Why an `rpcctl` command failed, with what it sent: as a sentence for people, as JSON for
//! scripts, and as the exit code.

use std::process::ExitCode;

use serde_json::Value;

use crate::error::RpcError;
use crate::target::Target;

/// `rpcctl`'s exit codes, as its documentation lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exit {
    /// 0: the call answered (or the cast was sent).
    Ok = 0,
    /// 1: the server answered with a failure (its own, `NoSuchMethod`, `UnsupportedVersion`,
    /// invalid arguments).
    Remote = 1,
    /// 2: the command line is wrong (flags, arguments that are not a JSON object, a version
    /// above the cap).
    Usage = 2,
    /// 3: no reply came within `--timeout`.
    Timeout = 3,
    /// 4: the broker could not be reached or the transport failed.
    Transport = 4,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(exit as u8)
    }
}

/// What the client sent, for a failure's report.
#[derive(Debug, Clone)]
pub(super) struct Sent {
    pub(super) method: String,
    pub(super) target: Target,
    pub(super) args: Value,
}

impl Sent {
    fn to_json(&self) -> Value {
        serde_json::json!({
            "method": self.method,
            "topic": &*self.target.topic,
            "server": self.target.server.as_deref(),
            "namespace": self.target.namespace.as_deref(),
            "version": self.target.version.map(|v| v.to_string()),
            "fanout": self.target.fanout,
            "args": self.args,
        })
    }

    fn describe(&self) -> String {
        let mut to = format!("topic {}", self.target.topic);
        if let Some(server) = &self.target.server {
            to.push_str(&format!(", server {server}"));
        }
        if let Some(namespace) = &self.target.namespace {
            to.push_str(&format!(", namespace {namespace}"));
        }
        if let Some(version) = self.target.version {
            to.push_str(&format!(", version {version}"));
        }
        format!("sent: {}({}) to {to}", self.method, self.args)
    }
}

/// Why a command failed, with what was sent when something was.
#[derive(Debug)]
pub(super) enum Failure {
    /// The server answered with a failure.
    Remote {
        class: String,
        module: String,
        message: String,
        traceback: Vec<String>,
        sent: Box<Sent>,
    },
    Usage(String),
    Timeout {
        message: String,
        sent: Box<Sent>,
    },
    Transport(String),
}

impl Failure {
    pub(super) fn from_rpc(error: RpcError, sent: &Sent) -> Self {
        let sent = Box::new(sent.clone());
        let remote = |class: &str, module: &str, message: String| Self::Remote {
            class: class.to_owned(),
            module: module.to_owned(),
            message,
            traceback: Vec::new(),
            sent: sent.clone(),
        };
        match error {
            RpcError::Remote(failure) => Self::Remote {
                class: failure.class,
                module: failure.module,
                message: failure.message,
                traceback: failure.traceback,
                sent,
            },
            error @ RpcError::NoSuchMethod { .. } => {
                remote("NoSuchMethod", OSLO_DISPATCHER, error.to_string())
            }
            error @ RpcError::UnsupportedVersion { .. } => {
                remote("UnsupportedVersion", OSLO_DISPATCHER, error.to_string())
            }
            error @ RpcError::InvalidArguments { .. } => remote(
                "InvalidArguments",
                crate::error::RUNTIME_MODULE,
                error.to_string(),
            ),
            error @ RpcError::Timeout { .. } => Self::Timeout {
                message: error.to_string(),
                sent,
            },
            error @ RpcError::Transport(_) => Self::Transport(crate::error::chain(&error)),
            other => Self::Usage(crate::error::chain(&other)),
        }
    }

    pub(super) fn exit(&self) -> Exit {
        match self {
            Self::Remote { .. } => Exit::Remote,
            Self::Usage(_) => Exit::Usage,
            Self::Timeout { .. } => Exit::Timeout,
            Self::Transport(_) => Exit::Transport,
        }
    }

    pub(super) fn sentence(&self, with_traceback: bool) -> String {
        match self {
            Self::Remote {
                class,
                module,
                message,
                traceback,
                sent,
            } => {
                let mut text = format!(
                    "remote error {module}.{class}: {message}\n  {}",
                    sent.describe()
                );
                if with_traceback && !traceback.is_empty() {
                    text.push_str("\n  the server's traceback:\n");
                    for line in traceback {
                        text.push_str("    ");
                        text.push_str(line.trim_end());
                        text.push('\n');
                    }
                } else if !traceback.is_empty() {
                    text.push_str(&format!(
                        "\n  (the server sent a traceback of {} lines: --traceback shows it)",
                        traceback.len()
                    ));
                }
                text.trim_end().to_owned()
            }
            Self::Timeout { message, sent } => format!("rpcctl: {message}\n  {}", sent.describe()),
            Self::Usage(message) | Self::Transport(message) => format!("rpcctl: {message}"),
        }
    }

    pub(super) fn to_json(&self) -> Value {
        match self {
            Self::Remote {
                class,
                module,
                message,
                traceback,
                sent,
            } => serde_json::json!({
                "kind": "remote", "class": class, "module": module, "message": message,
                "traceback": traceback, "sent": sent.to_json(),
            }),
            Self::Timeout { message, sent } => serde_json::json!({
                "kind": "timeout", "message": message, "sent": sent.to_json(),
            }),
            Self::Usage(message) => serde_json::json!({"kind": "usage", "message": message}),
            Self::Transport(message) => {
                serde_json::json!({"kind": "transport", "message": message})
            }
        }
    }
}

/// The module oslo names its dispatcher's failures by.
const OSLO_DISPATCHER: &str = "oslo_messaging.rpc.dispatcher";
