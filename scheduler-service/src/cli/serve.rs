//! `scheduler-service serve`: the scheduler service through the launcher.

use std::process::ExitCode;

use rpc_runtime::cli::ConfigArgs;
use rpc_runtime::config::Config;
use rpc_runtime::launcher::{self, LaunchError, Services};

use super::{Failure, load_config};
use crate::wiring::{Shared, scheduler_service};

/// `serve [--workers N] [config flags]`.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    pub(super) config: ConfigArgs,
    /// Worker processes serving the scheduler (1: this process serves).
    #[arg(long, default_value_t = 1)]
    workers: usize,
}

/// `config` is what the flags loaded at start; each worker (and every SIGHUP) loads it afresh.
pub(super) async fn run(args: Args, config: Config) -> Result<ExitCode, Failure> {
    if args.workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    // Fail here, with one clear line, rather than in every worker: the broker and the database
    // are reachable and the registry's tables exist before any worker starts.
    let shared = Shared::open(&config).await?;
    drop(shared);
    let config_args = args.config.clone();
    let build = move || {
        let config_args = config_args.clone();
        async move {
            let config = load_config(&config_args)?;
            let shared = Shared::open(&config)
                .await
                .map_err(|e| LaunchError::Build(Box::new(e)))?;
            let service =
                scheduler_service(config, &shared).map_err(|e| LaunchError::Build(Box::new(e)))?;
            Ok(Services::new().with(service))
        }
    };
    let launcher = launcher::serve(args.workers, build).await?;
    if !launcher.is_worker() {
        super::say_ready();
    }
    Ok(launcher.wait().await.into())
}
