//! Readiness through systemd's notify protocol: a `READY=1` datagram to the socket `NOTIFY_SOCKET`
//! names (a path, or `@name` for an abstract socket), and `WATCHDOG=1` pings when systemd sets
//! `WATCHDOG_USEC` (`WatchdogSec=`). Without the variable nothing is sent.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` (`READY=1`, `STOPPING=1`, `RELOADING=1`) when `NOTIFY_SOCKET` is set.
pub(crate) fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let socket = socket.to_string_lossy().into_owned();
    if let Err(error) = send(&socket, state) {
        tracing::warn!(%error, socket, state, "could not notify the service manager");
    }
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`, when `WATCHDOG_PID` is unset or
/// this process), and the notify socket to ping.
fn watchdog_interval() -> Option<Duration> {
    std::env::var_os("NOTIFY_SOCKET")?;
    if let Some(pid) = std::env::var_os("WATCHDOG_PID")
        && pid.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(std::process::id())
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pings systemd's watchdog (`WATCHDOG=1`) at half the interval it asks for, for as long as the
/// returned task runs: a process whose runtime stops turning stops pinging, and systemd restarts
/// it. `None` without `WATCHDOG_USEC`.
pub(crate) fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let interval = watchdog_interval()?;
    let every = interval / 2;
    tracing::info!(
        ?interval,
        "pinging the systemd watchdog every half interval"
    );
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            notify("WATCHDOG=1");
        }
    }))
}

fn send(socket: &str, state: &str) -> io::Result<()> {
    let datagram = UnixDatagram::unbound()?;
    match socket.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            datagram.send_to_addr(state.as_bytes(), &address)?;
        }
        None => {
            datagram.send_to(state.as_bytes(), socket)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_the_state_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("notify-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("notify.sock");
        let receiver = UnixDatagram::bind(&path).expect("bind");
        send(&path.to_string_lossy(), "READY=1").expect("send");
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
