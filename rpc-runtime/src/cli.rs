//! `rpcctl`, for operators and tests: call, cast, ping or describe a service over any transport.
//!
//! ```text
//! rpcctl call --transport-url rabbit://guest:guest@127.0.0.1:5672/ --topic scheduler \
//!             --server host1 --version 4.0 select_destinations '{"spec": {}}'
//! rpcctl cast --transport-url URL --topic T --fanout update_instance_info '{"host": "h"}'
//! rpcctl ping --transport-url URL --topic T --server host1
//! rpcctl describe --transport-url URL --topic T [--server host1]
//! ```
//!
//! Before a call or cast, `rpcctl` asks the server to [describe itself](crate::introspection)
//! and, when it does (a server of this runtime; oslo peers do not), refuses a method or argument
//! name the server does not have, naming those it has, before anything is sent (`--no-check`
//! sends anyway).
//!
//! A call prints its JSON result on stdout. A remote failure prints the server's class, module
//! and message and what was sent, on stderr (`--traceback` adds the server's traceback, which
//! Python peers send). `--output json` prints one compact JSON document on stdout and nothing
//! else: the result, `{"sent": true}` for a cast, or `{"error": {"kind": "remote" | "timeout" |
//! "usage" | "transport", "class", "module", "message", "traceback", "sent": {...}}}`.
//!
//! Exit codes ([`Exit`]): 0 answered; 1 the server answered with a failure; 2 usage (flags,
//! arguments that are not a JSON object); 3 no reply within `--timeout`; 4 the broker could not
//! be reached or the transport failed.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::client::{CallOptions, Client};
use crate::context::Context;
use crate::error::RpcError;
use crate::introspection::{self, MethodDescription, ServerDescription};
use crate::target::Target;
use crate::version::Version;

/// Command line of `rpcctl`.
#[derive(Debug, Parser)]
#[command(
    name = "rpcctl",
    version,
    about = "Call, cast or ping an oslo.messaging-compatible RPC service"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// `text` (indented JSON results, failures as sentences on stderr) or `json` (one compact
    /// JSON document on stdout and nothing else, for `| jq`).
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    output: Output,
    /// With a remote failure, print the server's traceback too (Python peers send one).
    #[arg(long, global = true)]
    traceback: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Call METHOD and print its result.
    Call(Invocation),
    /// Cast METHOD (no reply).
    Cast(Invocation),
    /// Call the base API's `ping` (namespace `baseapi`, version 1.0).
    Ping(Common),
    /// Print what a server serves: its endpoints, versions, aliases, methods and arguments.
    Describe(Common),
}

#[derive(Debug, Args)]
struct Common {
    /// The transport: `rabbit://user:pass@host:port/vhost` (several hosts comma-separated).
    #[arg(long)]
    transport_url: String,
    /// The topic (`scheduler`, `compute`).
    #[arg(long)]
    topic: String,
    /// One server on the topic.
    #[arg(long)]
    server: Option<String>,
    /// The exchange; the transport's control exchange when absent.
    #[arg(long)]
    exchange: Option<String>,
    /// Seconds to wait for the reply.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
}

#[derive(Debug, Args)]
struct Invocation {
    #[command(flatten)]
    common: Common,
    /// The version the request needs (`major.minor`).
    #[arg(long)]
    version: Option<Version>,
    /// The endpoint namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// Cast to every server on the topic.
    #[arg(long)]
    fanout: bool,
    /// Send without first asking the server to describe itself (by default a server that
    /// describes itself has the method and argument names checked before anything is sent).
    #[arg(long)]
    no_check: bool,
    /// The method.
    method: String,
    /// The arguments, a JSON object.
    #[arg(default_value = "{}")]
    args: String,
}

/// Runs `rpcctl` with these arguments, printing to the process's stdout and stderr.
pub async fn main(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> ExitCode {
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    run(args, &mut out, &mut err).await
}

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

/// How `rpcctl` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
enum Output {
    /// A result as indented JSON on stdout; failures as sentences on stderr.
    #[default]
    Text,
    /// One compact JSON document on stdout and nothing else: the result, or
    /// `{"error": {...}}` (the exit code tells them apart).
    Json,
}

/// Runs `rpcctl` with these arguments, writing to `out` and `err`: what [`main`] does, testable.
pub async fn run(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = write!(err, "{e}");
            return if e.use_stderr() {
                Exit::Usage.into()
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let (output, traceback) = (cli.output, cli.traceback);
    match execute(cli).await {
        Ok(Outcome::Answered(result)) => match output {
            Output::Text => print_pretty(out, &result),
            Output::Json => {
                let _ = writeln!(out, "{result}");
            }
        },
        Ok(Outcome::Sent) => {
            if output == Output::Json {
                let _ = writeln!(out, "{}", serde_json::json!({"sent": true}));
            }
        }
        Ok(Outcome::Described(description)) => match output {
            Output::Text => print_description(out, &description),
            Output::Json => {
                let json = serde_json::to_string(&description).unwrap_or_default();
                let _ = writeln!(out, "{json}");
            }
        },
        Err(failure) => {
            match output {
                Output::Text => {
                    let _ = writeln!(err, "{}", failure.sentence(traceback));
                }
                Output::Json => {
                    let _ = writeln!(out, "{}", serde_json::json!({"error": failure.to_json()}));
                }
            }
            return failure.exit().into();
        }
    }
    Exit::Ok.into()
}

/// What the client sent, for a failure's report.
#[derive(Debug, Clone)]
struct Sent {
    method: String,
    target: Target,
    args: Value,
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
enum Failure {
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
    fn from_rpc(error: RpcError, sent: &Sent) -> Self {
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

    fn exit(&self) -> Exit {
        match self {
            Self::Remote { .. } => Exit::Remote,
            Self::Usage(_) => Exit::Usage,
            Self::Timeout { .. } => Exit::Timeout,
            Self::Transport(_) => Exit::Transport,
        }
    }

    fn sentence(&self, with_traceback: bool) -> String {
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

    fn to_json(&self) -> Value {
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

/// What a command did.
enum Outcome {
    /// A call's result.
    Answered(Value),
    /// A cast went out.
    Sent,
    /// A server's description.
    Described(ServerDescription),
}

/// Runs the command.
async fn execute(cli: Cli) -> Result<Outcome, Failure> {
    let ctx = Context::new();
    match cli.command {
        Command::Call(invocation) => {
            let (client, sent) = prepare(&invocation).await?;
            if !invocation.no_check {
                check(&client, &sent).await?;
            }
            let result: Value = client
                .call(&ctx, &sent.method, &sent.args)
                .await
                .map_err(|e| Failure::from_rpc(e, &sent))?;
            Ok(Outcome::Answered(result))
        }
        Command::Cast(invocation) => {
            let (client, sent) = prepare(&invocation).await?;
            if !invocation.no_check && !invocation.fanout {
                check(&client, &sent).await?;
            }
            client
                .cast(&ctx, &sent.method, &sent.args)
                .await
                .map_err(|e| Failure::from_rpc(e, &sent))?;
            Ok(Outcome::Sent)
        }
        Command::Ping(common) => {
            let target = target(&common)
                .with_namespace("baseapi")
                .with_version(Version::new(1, 0));
            let sent = Sent {
                method: "ping".to_owned(),
                target: target.clone(),
                args: serde_json::json!({"arg": "rpcctl"}),
            };
            let client = client(&common, target).await?;
            let result: Value = client
                .call(&ctx, &sent.method, &sent.args)
                .await
                .map_err(|e| Failure::from_rpc(e, &sent))?;
            Ok(Outcome::Answered(result))
        }
        Command::Describe(common) => {
            let target = target(&common)
                .with_namespace(introspection::NAMESPACE)
                .with_version(introspection::VERSION);
            let sent = Sent {
                method: introspection::METHOD.to_owned(),
                target: target.clone(),
                args: serde_json::json!({}),
            };
            let client = client(&common, target).await?;
            let description: ServerDescription = client
                .call(&ctx, &sent.method, &sent.args)
                .await
                .map_err(|e| Failure::from_rpc(e, &sent))?;
            Ok(Outcome::Described(description))
        }
    }
}

/// Asks the server to describe itself; `None` when it does not (an oslo peer, an older server)
/// or does not answer within five seconds.
async fn describe(client: &Client) -> Result<Option<ServerDescription>, Failure> {
    let target = client
        .target()
        .clone()
        .with_namespace(introspection::NAMESPACE)
        .with_version(introspection::VERSION);
    let asking = Client::new(std::sync::Arc::clone(client.transport()), target)
        .prepare(CallOptions::new().timeout(client.timeout().min(Duration::from_secs(5))));
    match asking
        .call::<ServerDescription>(
            &Context::new(),
            introspection::METHOD,
            &serde_json::json!({}),
        )
        .await
    {
        Ok(description) => Ok(Some(description)),
        Err(RpcError::Transport(error)) => Err(Failure::Transport(crate::error::chain(&error))),
        Err(error) => {
            tracing::debug!(error = %crate::error::chain(&error), "the server does not describe itself");
            Ok(None)
        }
    }
}

/// Checks the method and argument names against the server's description, when it has one.
async fn check(client: &Client, sent: &Sent) -> Result<(), Failure> {
    let Some(description) = describe(client).await? else {
        return Ok(());
    };
    check_against(&description, sent).map_err(Failure::Usage)
}

/// Why `sent` cannot work against `description`, naming the names that exist.
fn check_against(description: &ServerDescription, sent: &Sent) -> Result<(), String> {
    let namespace = sent.target.namespace.as_deref();
    let methods: Vec<&MethodDescription> = description
        .endpoints
        .iter()
        .filter(|e| e.namespace.as_deref() == namespace)
        .flat_map(|e| e.methods.iter())
        .collect();
    let in_namespace = match namespace {
        Some(namespace) => format!("namespace {namespace}"),
        None => "the default namespace".to_owned(),
    };
    let Some(method) = methods.iter().find(|m| m.name == sent.method) else {
        let names: Vec<&str> = methods.iter().map(|m| m.name.as_str()).collect();
        let hint = crate::suggest::closest(&sent.method, &names)
            .map(|name| format!("; did you mean `{name}`?"))
            .unwrap_or_default();
        return Err(format!(
            "topic {} has no method `{}` in {in_namespace} (nothing was sent); it has: {}{hint}",
            description.topic,
            sent.method,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            },
        ));
    };
    let known: Vec<&str> = method.args.iter().map(|a| a.name.as_str()).collect();
    let given: Vec<&str> = sent
        .args
        .as_object()
        .map(|args| args.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for name in &given {
        if !known.contains(name) {
            let hint = crate::suggest::closest(name, &known)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            return Err(format!(
                "`{}` has no argument `{name}` (nothing was sent): {}{hint}",
                method.name,
                method.signature()
            ));
        }
    }
    let missing: Vec<&str> = method
        .args
        .iter()
        .filter(|a| !a.optional && !given.contains(&a.name.as_str()))
        .map(|a| a.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "`{}` needs {} (nothing was sent): {}",
            method.name,
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", "),
            method.signature()
        ));
    }
    Ok(())
}

/// `describe` as a person reads it.
fn print_description(out: &mut impl Write, description: &ServerDescription) {
    let mut text = format!("topic {}", description.topic);
    if let Some(server) = &description.server {
        text.push_str(&format!(", server {server}"));
    }
    text.push('\n');
    for endpoint in &description.endpoints {
        let namespace = endpoint.namespace.as_deref().unwrap_or("(default)");
        text.push_str(&format!(
            "\n{} — namespace {namespace}, version {}",
            endpoint.name, endpoint.version
        ));
        if !endpoint.aliases.is_empty() {
            let aliases: Vec<String> = endpoint
                .aliases
                .iter()
                .map(|(name, version)| format!("{name}={version}"))
                .collect();
            text.push_str(&format!(", aliases {}", aliases.join(" ")));
        }
        text.push('\n');
        for method in &endpoint.methods {
            text.push_str(&format!(
                "  {} {}  since {}\n",
                method.kind,
                method.signature(),
                method.since
            ));
        }
    }
    let _ = write!(out, "{text}");
}

async fn prepare(invocation: &Invocation) -> Result<(Client, Sent), Failure> {
    let args: Value = serde_json::from_str(&invocation.args)
        .map_err(|e| Failure::Usage(format!("the arguments must be a JSON object: {e}")))?;
    if !args.is_object() {
        return Err(Failure::Usage(
            "the arguments must be a JSON object".to_owned(),
        ));
    }
    let mut target = target(&invocation.common).with_fanout(invocation.fanout);
    if let Some(version) = invocation.version {
        target = target.with_version(version);
    }
    if let Some(namespace) = &invocation.namespace {
        target = target.with_namespace(namespace.as_str());
    }
    let client = client(&invocation.common, target.clone()).await?;
    let sent = Sent {
        method: invocation.method.clone(),
        target,
        args,
    };
    Ok((client, sent))
}

fn target(common: &Common) -> Target {
    let mut target = Target::new(common.topic.as_str());
    if let Some(server) = &common.server {
        target = target.with_server(server.as_str());
    }
    if let Some(exchange) = &common.exchange {
        target = target.with_exchange(exchange.as_str());
    }
    target
}

async fn client(common: &Common, target: Target) -> Result<Client, Failure> {
    let timeout = Duration::try_from_secs_f64(common.timeout)
        .ok()
        .filter(|t| !t.is_zero())
        .ok_or_else(|| {
            Failure::Usage(format!(
                "--timeout must be a positive number of seconds, not {}",
                common.timeout
            ))
        })?;
    let transport = crate::transport::connect(&common.transport_url)
        .await
        .map_err(|e| Failure::Transport(crate::error::chain(&e)))?;
    Ok(Client::new(transport, target).prepare(CallOptions::new().timeout(timeout)))
}

fn print_pretty(out: &mut impl Write, value: &Value) {
    // A closed stdout (`rpcctl call … | head -1`) is no failure of the call.
    if let Ok(text) = serde_json::to_string_pretty(value) {
        let _ = writeln!(out, "{text}");
    }
}

/// The configuration flags every service binary takes (oslo.config's `--config-file`, plus the
/// settings most often overridden), for `#[command(flatten)]` into a clap parser.
///
/// Files are read in order, then `OS_<SECTION>__<KEY>` variables, then these flags: each overrides
/// what comes before.
///
/// ```
/// use clap::Parser;
/// use rpc_runtime::cli::ConfigArgs;
///
/// #[derive(Parser)]
/// struct Cli {
///     #[command(flatten)]
///     config: ConfigArgs,
/// }
///
/// let cli = Cli::parse_from(["svc", "--host", "node7", "--set", "DEFAULT.report_interval=5"]);
/// let config = cli.config.loader().load().unwrap().config;
/// assert_eq!(config.host.as_deref(), Some("node7"));
/// assert_eq!(config.report_interval, std::time::Duration::from_secs(5));
/// ```
///
/// The flags are global: flattened into a command, they are also accepted after its
/// subcommands.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// An oslo.config INI file (nova.conf); repeat for more, later ones win.
    #[arg(long = "config-file", value_name = "PATH", global = true)]
    pub config_files: Vec<std::path::PathBuf>,
    /// `[DEFAULT] host`: this node's name.
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// `[DEFAULT] transport_url`: `rabbit://user:pass@host:5672/vhost` or `memory://`.
    #[arg(long, global = true)]
    pub transport_url: Option<String>,
    /// `[database] connection`: `sqlite:services.sqlite`, `postgres://…`, `mysql://…`.
    #[arg(long, global = true)]
    pub database_connection: Option<String>,
    /// Any option, as `SECTION.KEY=VALUE` (`--set DEFAULT.report_interval=5`); repeatable.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE", value_parser = parse_setting, global = true)]
    pub settings: Vec<(String, String, String)>,
}

impl ConfigArgs {
    /// A loader over the files, this process's environment, then the flags.
    pub fn loader(&self) -> crate::config::ConfigLoader {
        let mut loader = crate::config::ConfigLoader::new();
        for file in &self.config_files {
            loader = loader.file(file);
        }
        loader = loader.process_env();
        for (section, key, value) in &self.settings {
            loader = loader.set(section, key, value);
        }
        let flags = [
            ("DEFAULT", "host", &self.host),
            ("DEFAULT", "transport_url", &self.transport_url),
            ("database", "connection", &self.database_connection),
        ];
        for (section, key, value) in flags {
            if let Some(value) = value {
                loader = loader.set(section, key, value);
            }
        }
        loader
    }
}

/// `SECTION.KEY=VALUE` → its three parts.
fn parse_setting(text: &str) -> Result<(String, String, String), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected SECTION.KEY=VALUE, not `{text}`"))?;
    let (section, key) = name
        .split_once('.')
        .filter(|(s, k)| !s.is_empty() && !k.is_empty())
        .ok_or_else(|| format!("expected SECTION.KEY=VALUE, not `{text}`"))?;
    Ok((section.to_owned(), key.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_section_key_value() {
        assert_eq!(
            parse_setting("DEFAULT.host=a=b"),
            Ok(("DEFAULT".into(), "host".into(), "a=b".into()))
        );
        assert!(parse_setting("host=a").is_err());
        assert!(parse_setting(".host=a").is_err());
        assert!(parse_setting("DEFAULT.host").is_err());
    }
}
