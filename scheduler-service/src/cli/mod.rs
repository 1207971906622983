//! The command line: `scheduler-service [all-in-one | serve | compute | boot | services |
//! notifications]`.
//!
//! Every error a user can cause (a bad flag, no broker at the URL, a database URL that does not
//! open) ends with one line on stderr and a non-zero exit code.

/// `println!` that ignores a closed standard output (`scheduler-service | head`) instead of
/// panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

mod all_in_one;
mod boot;
mod compute;
mod notifications;
mod serve;
mod services;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rpc_runtime::cli::ConfigArgs;
use rpc_runtime::config::Config;

/// A nova-scheduler built on rpc-runtime: run with no subcommand for an all-in-one demonstration
/// (memory transport, SQLite, no servers needed).
#[derive(Debug, Parser)]
#[command(name = "scheduler-service", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The scheduler, compute agents and a boot client in one process, on the embedded default;
    /// prints the lifecycle, the services table and the placements, then exits.
    AllInOne(all_in_one::Args),
    /// Runs the scheduler service (from a config file and flags) until SIGTERM or SIGINT.
    Serve(serve::Args),
    /// Runs a simulated compute agent that registers, heartbeats and reports its capacity.
    Compute(compute::Args),
    /// Asks the scheduler for destinations and prints them.
    Boot(boot::Args),
    /// Lists the services registry (like `nova service-list`), or disables or enables a service.
    Services(services::Args),
    /// Tails notifications (`notifications`, `versioned_notifications`): a line each, or JSON.
    Notifications(notifications::Args),
}

/// Why a subcommand failed: printed as one line.
type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Runs the binary: parses the command line, runs the subcommand, prints any error as one line.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let command = cli
        .command
        .unwrap_or_else(|| Command::AllInOne(all_in_one::Args::default()));
    // Loaded once here: the logs are set up from it before the subcommand runs.
    let config = match command.config_args().map(load_config).transpose() {
        Ok(config) => config.unwrap_or_default(),
        Err(error) => return failed(&error),
    };
    if let Err(error) = init_logging(&command, &config) {
        return failed(&error);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return failed(&error),
    };
    let outcome = runtime.block_on(async move {
        match command {
            Command::AllInOne(args) => all_in_one::run(args).await,
            Command::Serve(args) => serve::run(args, config).await,
            Command::Compute(args) => compute::run(args).await,
            Command::Boot(args) => boot::run(args, config).await,
            Command::Services(args) => services::run(args, config).await,
            Command::Notifications(args) => notifications::run(args, config).await,
        }
    });
    // Stop at once: a connection's background tasks must not hold the exit.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => code,
        Err(error) => failed(error.as_ref()),
    }
}

/// Clap's message in one line; help and version print as usual.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    // Clap's first paragraph, on one line: "the following required arguments were not
    // provided:" is followed by the arguments on lines of their own.
    let rendered = error.to_string();
    let first: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let first = first.join(" ");
    let first = first.strip_prefix("error: ").unwrap_or(&first);
    let first = if first.is_empty() {
        "invalid arguments"
    } else {
        first
    };
    eprintln!("error: {first} (see `scheduler-service --help`)");
    ExitCode::from(2)
}

/// Prints `error: what: why: …` on one line; exit code 1.
fn failed(error: &(dyn std::error::Error + 'static)) -> ExitCode {
    let mut line = format!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    eprintln!("{line}");
    ExitCode::FAILURE
}

impl Command {
    /// The configuration flags, for the subcommands that read a configuration.
    fn config_args(&self) -> Option<&ConfigArgs> {
        match self {
            Self::Serve(args) => Some(&args.config),
            Self::Compute(args) => Some(&args.config),
            Self::Boot(args) => Some(&args.config),
            Self::Notifications(args) => Some(&args.config),
            Self::Services(args) => Some(&args.config),
            Self::AllInOne(_) => None,
        }
    }
}

/// Sets up logging as the configuration's oslo.log options say (`debug`, `log_file`, `log_dir`,
/// `use_json`, ...), `RUST_LOG` overriding the level.
fn init_logging(
    command: &Command,
    config: &Config,
) -> Result<(), rpc_runtime::logging::LoggingError> {
    let (program, level) = match command {
        // Daemons log what they do; the others print their own account.
        Command::Serve(_) => (crate::wiring::SCHEDULER_BINARY, "info"),
        Command::Compute(_) => (crate::scheduler::COMPUTE_BINARY, "info"),
        Command::AllInOne(_) => ("scheduler-service", "warn"),
        Command::Boot(_) | Command::Services(_) | Command::Notifications(_) => {
            ("scheduler-service", "error")
        }
    };
    rpc_runtime::logging::init(&config.logging, program, level)
}

/// Prints `ready` once serving, for scripts and tests to wait on; a closed stdout is no error.
fn say_ready() {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
}

/// Loads the configuration the flags name.
fn load_config(args: &ConfigArgs) -> Result<Config, rpc_runtime::config::ConfigError> {
    Ok(args.loader().topic("scheduler").load()?.config)
}
