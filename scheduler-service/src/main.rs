//! `scheduler-service`: the scheduler, simulated compute agents, a boot client and the service
//! list, as subcommands; with none, an all-in-one run on the embedded default.

use std::process::ExitCode;

fn main() -> ExitCode {
    scheduler_service::cli::main()
}
