//! Supervised worker processes: the parent re-executes its own program N times (marked by an
//! environment variable so each child serves in process), restarts a worker that dies with a
//! backoff, and relays stop and reload to them. Each worker's stdin is a pipe from the parent: when
//! the parent goes away, the worker sees end of file and stops.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::LaunchError;

/// Set in a worker's environment: its index among the workers.
pub(crate) const WORKER_VAR: &str = "RPC_RUNTIME_WORKER";

/// The first wait before restarting a worker that died, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A worker that lived this long is healthy: its next restart starts from the first backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// One worker slot: the running child and its restart backoff.
struct Slot {
    index: usize,
    child: Option<Child>,
    /// The worker's stdin, held here: `Child::wait` would close it, and a worker stops when its
    /// stdin closes (that is how it learns its parent is gone).
    stdin: Option<tokio::process::ChildStdin>,
    started: Instant,
    backoff: Duration,
    /// When a dead worker is due to be started again.
    restart_at: Option<Instant>,
}

/// The parent's workers.
pub(crate) struct Workers {
    slots: Vec<Slot>,
}

impl Workers {
    /// Starts `count` workers.
    pub(crate) fn spawn(count: usize) -> Result<Self, LaunchError> {
        let mut slots = Vec::with_capacity(count);
        for index in 0..count {
            let (child, stdin) = spawn_worker(index)?;
            slots.push(Slot {
                index,
                child: Some(child),
                stdin,
                started: Instant::now(),
                backoff: FIRST_BACKOFF,
                restart_at: None,
            });
        }
        Ok(Self { slots })
    }

    /// Process ids of the running workers.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.slots
            .iter()
            .filter_map(|s| s.child.as_ref().and_then(Child::id))
            .collect()
    }

    /// Waits for the next thing to do and does it: a worker exited (its restart is booked after
    /// its backoff), or a booked restart is due. Cancel safe: stopping it at any await loses
    /// nothing, so it can race with signals in a `select!`.
    pub(crate) async fn supervise_one(&mut self) {
        enum Step {
            Exited(usize, std::io::Result<std::process::ExitStatus>),
            RestartDue,
        }
        let next_restart = self.slots.iter().filter_map(|s| s.restart_at).min();
        let step = {
            let waits: Vec<_> = self
                .slots
                .iter_mut()
                .filter_map(|slot| {
                    let index = slot.index;
                    slot.child
                        .as_mut()
                        .map(|child| Box::pin(async move { (index, child.wait().await) }))
                })
                .collect();
            let exited = async move {
                if waits.is_empty() {
                    std::future::pending().await
                } else {
                    futures_util::future::select_all(waits).await.0
                }
            };
            let due = async move {
                match next_restart {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                (index, status) = exited => Step::Exited(index, status),
                () = due => Step::RestartDue,
            }
        };
        match step {
            Step::Exited(index, status) => {
                let Some(slot) = self.slots.iter_mut().find(|s| s.index == index) else {
                    return;
                };
                slot.child = None;
                if slot.started.elapsed() >= HEALTHY_AFTER {
                    slot.backoff = FIRST_BACKOFF;
                }
                tracing::warn!(worker = index, status = ?status.ok(), restart_in = ?slot.backoff, "a worker died; restarting it");
                slot.restart_at = Some(Instant::now() + slot.backoff);
                slot.backoff = (slot.backoff * 2).min(MAX_BACKOFF);
            }
            Step::RestartDue => {
                let now = Instant::now();
                for slot in &mut self.slots {
                    if slot.restart_at.is_some_and(|at| at <= now) {
                        slot.restart_at = None;
                        match spawn_worker(slot.index) {
                            Ok((child, stdin)) => {
                                slot.child = Some(child);
                                slot.stdin = stdin;
                                slot.started = now;
                            }
                            Err(error) => {
                                tracing::error!(%error, worker = slot.index, "could not restart a worker");
                                slot.restart_at = Some(now + slot.backoff);
                                slot.backoff = (slot.backoff * 2).min(MAX_BACKOFF);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Sends SIGTERM to every worker and waits for them all; true when all exited 0.
    pub(crate) async fn stop(&mut self) -> bool {
        for slot in &self.slots {
            if let Some(pid) = slot.child.as_ref().and_then(Child::id) {
                terminate(pid);
            }
        }
        let mut clean = true;
        for slot in &mut self.slots {
            if let Some(mut child) = slot.child.take() {
                match child.wait().await {
                    Ok(status) if status.success() => {}
                    Ok(status) => {
                        tracing::warn!(
                            worker = slot.index,
                            ?status,
                            "a worker did not stop cleanly"
                        );
                        clean = false;
                    }
                    Err(error) => {
                        tracing::warn!(worker = slot.index, %error, "could not wait for a worker");
                        clean = false;
                    }
                }
            }
        }
        clean
    }

    /// Stops every worker and starts them again (they read the configuration anew).
    pub(crate) async fn restart(&mut self) -> Result<(), LaunchError> {
        self.stop().await;
        for slot in &mut self.slots {
            let (child, stdin) = spawn_worker(slot.index)?;
            slot.child = Some(child);
            slot.stdin = stdin;
            slot.started = Instant::now();
            slot.backoff = FIRST_BACKOFF;
            slot.restart_at = None;
        }
        Ok(())
    }
}

/// Re-executes this program as worker `index`; the child and the write end of its stdin.
fn spawn_worker(index: usize) -> Result<(Child, Option<tokio::process::ChildStdin>), LaunchError> {
    let program = std::env::current_exe().map_err(LaunchError::Spawn)?;
    let child = Command::new(program)
        .args(std::env::args_os().skip(1))
        .env(WORKER_VAR, index.to_string())
        // The parent tells the service manager it is ready; workers do not.
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(LaunchError::Spawn)?;
    let mut child = child;
    let stdin = child.stdin.take();
    tracing::info!(worker = index, pid = child.id(), "worker started");
    Ok((child, stdin))
}

/// Sends SIGTERM to `pid`.
pub(crate) fn terminate(pid: u32) {
    send(pid, nix::sys::signal::Signal::SIGTERM);
}

/// Sends `signal` to a worker; a worker already gone is logged.
pub(crate) fn send(pid: u32, signal: nix::sys::signal::Signal) {
    let Ok(pid) = i32::try_from(pid) else {
        return;
    };
    if let Err(error) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal) {
        tracing::warn!(%error, pid, %signal, "could not signal a worker");
    }
}
