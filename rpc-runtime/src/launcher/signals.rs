//! The signals a launcher handles, as one stream of events.

use tokio::signal::unix::{SignalKind, signal};

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// SIGTERM or SIGINT: stop gracefully and exit.
    Stop,
    /// SIGHUP: reload the configuration and restart.
    Reload,
}

/// Listens for SIGTERM, SIGINT and SIGHUP.
pub(crate) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    /// Set by a [`StopHandle`](super::StopHandle): stop as for SIGTERM.
    requested: tokio::sync::watch::Receiver<bool>,
}

impl Signals {
    pub(crate) fn new(requested: tokio::sync::watch::Receiver<bool>) -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            requested,
        })
    }

    /// The next signal's event.
    pub(crate) async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.term.recv() => Event::Stop,
            _ = self.int.recv() => Event::Stop,
            _ = self.hup.recv() => Event::Reload,
            _ = self.requested.wait_for(|stop| *stop) => Event::Stop,
        }
    }
}

/// Whether this process runs as a daemon (no terminal on stdin): oslo.service restarts a daemon
/// on SIGHUP and stops a foreground process.
pub(crate) fn is_daemon() -> bool {
    use std::io::IsTerminal;
    !std::io::stdin().is_terminal()
}
