//! The `rpcctl` command line: its flags, what each command does, how it prints.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use super::checks::{check, print_description};
use super::report::{Exit, Failure, Sent};
use crate::client::{CallOptions, Client};
use crate::context::Context;
use crate::introspection::{self, ServerDescription};
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
            let arg = serde_json::json!({"arg": "rpcctl"});
            let result = call_at(&common, "baseapi", Version::new(1, 0), "ping", arg).await?;
            Ok(Outcome::Answered(result))
        }
        Command::Describe(common) => {
            let description = call_at(
                &common,
                introspection::NAMESPACE,
                introspection::VERSION,
                introspection::METHOD,
                serde_json::json!({}),
            )
            .await?;
            Ok(Outcome::Described(description))
        }
    }
}

/// Calls a method of a fixed namespace and version (the base API's `ping`, `describe`).
async fn call_at<R: serde::de::DeserializeOwned>(
    common: &Common,
    namespace: &str,
    version: Version,
    method: &str,
    args: Value,
) -> Result<R, Failure> {
    let target = target(common)
        .with_namespace(namespace)
        .with_version(version);
    let sent = Sent {
        method: method.to_owned(),
        target: target.clone(),
        args,
    };
    let client = client(common, target).await?;
    client
        .call(&Context::new(), &sent.method, &sent.args)
        .await
        .map_err(|e| Failure::from_rpc(e, &sent))
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
