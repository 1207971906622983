//! `rpcctl`, for operators and tests: call, cast or ping a service over any transport.
//!
//! ```text
//! rpcctl call --transport-url rabbit://guest:guest@127.0.0.1:5672/ --topic scheduler \
//!             --server host1 --version 4.0 select_destinations '{"spec": {}}'
//! rpcctl cast --transport-url URL --topic T --fanout update_instance_info '{"host": "h"}'
//! rpcctl ping --transport-url URL --topic T --server host1
//! ```
//!
//! A call prints its JSON result on stdout and exits 0. A remote failure prints the class,
//! module and message on stderr and exits 1; anything else (bad arguments, no reply, no broker)
//! exits 2.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::client::{CallOptions, Client};
use crate::context::Context;
use crate::error::RpcError;
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
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Call METHOD and print its result.
    Call(Invocation),
    /// Cast METHOD (no reply).
    Cast(Invocation),
    /// Call the base API's `ping` (namespace `baseapi`, version 1.0).
    Ping(Common),
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
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match execute(cli, out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Remote(remote)) => {
            let _ = writeln!(
                err,
                "remote error {}.{}: {}",
                remote.module, remote.class, remote.message
            );
            ExitCode::from(1)
        }
        Err(Failure::Other(message)) => {
            let _ = writeln!(err, "rpcctl: {message}");
            ExitCode::from(2)
        }
    }
}

enum Failure {
    Remote(Box<crate::error::RemoteError>),
    Other(String),
}

impl From<RpcError> for Failure {
    fn from(error: RpcError) -> Self {
        match error {
            RpcError::Remote(remote) => Self::Remote(remote),
            other => Self::Other(crate::error::chain(&other)),
        }
    }
}

async fn execute(cli: Cli, out: &mut impl Write) -> Result<(), Failure> {
    let ctx = Context::new();
    match cli.command {
        Command::Call(invocation) => {
            let (client, method, args) = prepare(&invocation).await?;
            let result: Value = client.call(&ctx, &method, &args).await?;
            print(out, &result)
        }
        Command::Cast(invocation) => {
            let (client, method, args) = prepare(&invocation).await?;
            client.cast(&ctx, &method, &args).await?;
            Ok(())
        }
        Command::Ping(common) => {
            let target = target(&common)
                .with_namespace("baseapi")
                .with_version(Version::new(1, 0));
            let client = client(&common, target).await?;
            let result: Value = client
                .call(&ctx, "ping", &serde_json::json!({"arg": "rpcctl"}))
                .await?;
            print(out, &result)
        }
    }
}

async fn prepare(invocation: &Invocation) -> Result<(Client, String, Value), Failure> {
    let args: Value = serde_json::from_str(&invocation.args)
        .map_err(|e| Failure::Other(format!("the arguments must be a JSON object: {e}")))?;
    if !args.is_object() {
        return Err(Failure::Other(
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
    let client = client(&invocation.common, target).await?;
    Ok((client, invocation.method.clone(), args))
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
    let timeout = Duration::try_from_secs_f64(common.timeout).map_err(|_| {
        Failure::Other(format!(
            "--timeout must be a positive number of seconds, not {}",
            common.timeout
        ))
    })?;
    let transport = crate::transport::connect(&common.transport_url)
        .await
        .map_err(|e| Failure::Other(crate::error::chain(&e)))?;
    Ok(Client::new(transport, target).prepare(CallOptions::new().timeout(timeout)))
}

fn print(out: &mut impl Write, value: &Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure::Other(e.to_string()))?;
    writeln!(out, "{text}").map_err(|e| Failure::Other(e.to_string()))
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
