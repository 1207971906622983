//! `rpcctl`: call, cast or ping an RPC service from the shell. See `rpc_runtime::cli`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    rpc_runtime::cli::main(std::env::args_os()).await
}
