//! oslo.messaging 18.3.1 (Python, threading executor), pip-installed into a virtualenv under
//! `target/` by the harness, on the same broker: a server and a client process per round.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::measure::{Figures, IN_FLIGHT};
use crate::rabbit::BROKER;

const PACKAGE: &str = "oslo.messaging==18.3.1";

/// A Python with oslo.messaging: the virtualenv under `target/`, made on first use. `None`
/// (with the reason on stderr) when it cannot be made.
pub(crate) fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/oslo-bench-venv");
    let python = venv.join("bin/python");
    let ready = |python: &Path| {
        Command::new(python)
            .args(["-c", "import oslo_messaging"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready(&python) {
        eprintln!("installing {PACKAGE} into {}", venv.display());
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(&python)
                .args(["-m", "pip", "install", "-q", PACKAGE])
                .status()
                .is_ok_and(|s| s.success());
        if !ok || !ready(&python) {
            eprintln!("{PACKAGE} unavailable; leaving oslo.messaging out");
            return None;
        }
    }
    Some(python)
}

/// Kills the server when the round ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// One round: `calls` sequential calls, `calls` at each level in flight (a quarter at one), and
/// `casts` casts. Adds to `figures`; says why when the round failed.
pub(crate) fn round(
    python: &Path,
    topic: &str,
    calls: usize,
    casts: usize,
    figures: &mut Figures,
) -> Result<(), String> {
    let url = format!("rabbit://guest:guest@{BROKER}/");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/py");
    let mut child = Command::new(python)
        .arg(dir.join("oslo_server.py"))
        .args([&url, topic])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the oslo server: {e}"))?;
    let stdout = child.stdout.take();
    let _server = Server(child);
    let mut line = String::new();
    let mut stdout = BufReader::new(stdout.ok_or("no stdout")?);
    stdout
        .read_line(&mut line)
        .map_err(|e| format!("reading the oslo server: {e}"))?;
    if line.trim() != "ready" {
        return Err("the oslo server did not start".into());
    }
    let levels: Vec<String> = IN_FLIGHT.iter().map(ToString::to_string).collect();
    let output = Command::new(python)
        .arg(dir.join("oslo_client.py"))
        .args([
            &url,
            topic,
            &calls.to_string(),
            &levels.join(","),
            &casts.to_string(),
        ])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("running the oslo client: {e}"))?;
    let out: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("the oslo client's figures: {e}"))?;
    let number = |v: &serde_json::Value| v.as_f64().ok_or("a figure is missing");
    figures.p50.push(number(&out["p50_us"])?);
    figures.p99.push(number(&out["p99_us"])?);
    figures.concurrent.resize(IN_FLIGHT.len(), Vec::new());
    for (i, n) in IN_FLIGHT.iter().enumerate() {
        figures.concurrent[i].push(number(&out["rates"][n.to_string()])?);
    }
    figures.casts.push(number(&out["cast_rate"])?);
    Ok(())
}
