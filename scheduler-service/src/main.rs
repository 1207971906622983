//! The `scheduler-service` binary: not built yet (see the library docs).

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("{}", scheduler_service::NOT_YET);
    ExitCode::from(2)
}
