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

mod checks;
mod config_args;
mod report;
mod rpcctl;

pub use self::config_args::ConfigArgs;
pub use self::report::Exit;
pub use self::rpcctl::{Cli, main, run};
