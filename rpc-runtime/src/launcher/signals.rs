//! The signals a launcher handles, as one stream of events.

use tokio::signal::unix::{SignalKind, signal};

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// SIGTERM or SIGINT: stop gracefully and exit.
    Stop,
    /// SIGHUP: reload the configuration and restart.
    Reload,
    /// SIGUSR2: drain (stop taking requests from shared topic queues; keep serving the rest).
    Drain,
}

/// Listens for SIGTERM, SIGINT, SIGHUP and SIGUSR2.
pub(crate) struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
    /// Set by a [`StopHandle`](super::StopHandle): stop as for SIGTERM.
    requested: tokio::sync::watch::Receiver<bool>,
}

impl Signals {
    pub(crate) fn new(requested: tokio::sync::watch::Receiver<bool>) -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr2: signal(SignalKind::user_defined2())?,
            requested,
        })
    }

    /// The next signal's event.
    pub(crate) async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.term.recv() => Event::Stop,
            _ = self.int.recv() => Event::Stop,
            _ = self.hup.recv() => Event::Reload,
            _ = self.usr2.recv() => Event::Drain,
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
