//! The launcher with real processes (`fixtures/launched.rs`) on RabbitMQ: sd_notify readiness,
//! SIGTERM under load, workers replaced after SIGKILL, SIGHUP reloading the configuration, a second
//! `serve` refused, a failing start reported.

// Helpers outside `#[test]` fns report by panicking.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use rpc_integration_tests::notifications::{Infos, Seen};
use rpc_integration_tests::{Vhost, unique_name};
use rpc_runtime::notify::NotificationListener;
use rpc_runtime::{CallOptions, Client, Context, RpcError, Target};

const FIXTURE: &str = env!("CARGO_BIN_EXE_launched");

/// A vhost of the test's own with the topic queue declared, a scratch directory, and the URL.
async fn on_rabbit(name: &str) -> Option<(Vhost, PathBuf, String)> {
    let vhost = Vhost::create(name)?;
    declare_topic_queue(&vhost).await;
    let url = vhost.url("");
    Some((vhost, scratch(name), url))
}

/// The fixture's arguments: the transport, an in-memory registry, then `extra`.
fn fixture_args(url: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--transport-url".to_owned(),
        url.to_owned(),
        "--database-connection".to_owned(),
        "sqlite::memory:".to_owned(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args
}

/// A scratch directory of the test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_name(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The topic queue exists before any server, so calls wait in it until a server consumes: the
/// tests wait on replies, never on sleeps.
async fn declare_topic_queue(vhost: &Vhost) {
    let connection = vhost.raw_connection().await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .queue_declare(
            "launched".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "declared".into()).await;
}

struct Fixture {
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
    log: PathBuf,
}

impl Fixture {
    fn spawn(args: &[String], notify: Option<&PathBuf>, dir: &std::path::Path) -> Self {
        Self::spawn_with(args, notify, dir, &[])
    }

    /// [`spawn`](Self::spawn) with environment variables of the test's own.
    fn spawn_with(
        args: &[String],
        notify: Option<&PathBuf>,
        dir: &std::path::Path,
        env: &[(&str, &str)],
    ) -> Self {
        let log = dir.join(format!("{}.log", unique_name("fixture")));
        let mut command = Command::new(FIXTURE);
        command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(socket) = notify {
            command.env("NOTIFY_SOCKET", socket);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().map(BufReader::new);
        Self { child, stdout, log }
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, signal).unwrap();
    }

    /// Waits for the process to exit; its exit code.
    fn exit_code(&mut self) -> Option<i32> {
        self.child.wait().unwrap().code()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (off the runtime) for the process to exit: its exit code, and the fixture for its log.
async fn exited(mut fixture: Fixture) -> (Option<i32>, Fixture) {
    tokio::task::spawn_blocking(move || (fixture.exit_code(), fixture))
        .await
        .unwrap()
}

/// SIGTERM, then asserts a clean exit (0).
async fn stop_cleanly(fixture: Fixture) {
    fixture.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, fixture) = exited(fixture).await;
    assert_eq!(code, Some(0), "{}", fixture.log());
}

async fn client(vhost: &Vhost, timeout: Duration) -> Client {
    let transport = rpc_runtime::connect(&vhost.url("")).await.unwrap();
    Client::new(transport, Target::new("launched")).prepare(CallOptions::new().timeout(timeout))
}

async fn whoami(client: &Client) -> Result<(u32, String), RpcError> {
    client
        .call(&Context::new(), "whoami", &serde_json::json!({}))
        .await
}

/// Receives one notify datagram.
async fn notified(socket: &Arc<UnixDatagram>) -> String {
    let socket = Arc::clone(socket);
    tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap()
}

fn notify_socket(dir: &std::path::Path) -> (PathBuf, Arc<UnixDatagram>) {
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    (path, Arc::new(socket))
}

/// Reads `started <value>` lines until `count` values have started (or stdout ends); the values.
fn read_started(stdout: &mut BufReader<ChildStdout>, count: usize) -> Vec<i64> {
    let mut values = Vec::new();
    let mut line = String::new();
    while values.len() < count {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(value) = line.trim().strip_prefix("started ") {
            values.push(value.parse().unwrap());
        }
    }
    values
}

#[tokio::test]
async fn sigterm_with_500_calls_in_flight_answers_each_once_and_loses_none() {
    let Some((vhost, dir, url)) = on_rabbit("lifecycle-term").await else {
        return;
    };
    let (socket_path, socket) = notify_socket(&dir);
    let graceful = Duration::from_secs(30);
    let settings = [
        "--set",
        "DEFAULT.executor_thread_pool_size=256",
        "--set",
        "DEFAULT.graceful_shutdown_timeout=30",
    ];
    let args = fixture_args(&url, &settings);
    let mut server = Fixture::spawn(&args, Some(&socket_path), &dir);
    assert_eq!(notified(&socket).await, "READY=1", "{}", server.log());

    // 500 slow calls in flight; the server runs 256 at once, the rest wait in the queue.
    let client = client(&vhost, Duration::from_secs(120)).await;
    let calls: Vec<_> = (0..500_i64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let args = serde_json::json!({"ms": 2000, "value": i});
                client.call::<i64>(&Context::new(), "slow", &args).await
            })
        })
        .collect();
    // Signal once 256 calls run.
    let mut stdout = server.stdout.take().unwrap();
    let (mut started, mut stdout) = tokio::task::spawn_blocking(move || {
        let started = read_started(&mut stdout, 256);
        (started, stdout)
    })
    .await
    .unwrap();
    assert_eq!(
        started.len(),
        256,
        "the server exited early: {}",
        server.log()
    );
    let signalled = std::time::Instant::now();
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, server) = exited(server).await;
    let shutdown = signalled.elapsed();
    assert_eq!(code, Some(0), "{}", server.log());
    assert!(
        shutdown < graceful,
        "exit took {shutdown:?}, past graceful_shutdown_timeout"
    );
    started.extend(read_started(&mut stdout, usize::MAX));
    assert_eq!(notified(&socket).await, "STOPPING=1");

    // What was not accepted is still queued: a new server answers it. Nothing is lost, and
    // nothing runs twice (a request the first server took is not redelivered).
    let mut successor = Fixture::spawn(&fixture_args(&url, &settings), None, &dir);
    let mut answered = Vec::new();
    for call in calls {
        answered.push(call.await.unwrap().unwrap());
    }
    answered.sort_unstable();
    assert_eq!(
        answered,
        (0..500).collect::<Vec<i64>>(),
        "each call answered once"
    );
    let mut successor_stdout = successor.stdout.take().unwrap();
    stop_cleanly(successor).await;
    started.extend(read_started(&mut successor_stdout, usize::MAX));
    started.sort_unstable();
    assert_eq!(
        started,
        (0..500).collect::<Vec<i64>>(),
        "each call ran exactly once"
    );
    eprintln!("SIGTERM with 500 calls in flight: exited in {shutdown:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_killed_worker_is_replaced_and_serves() {
    let Some((vhost, dir, url)) = on_rabbit("lifecycle-workers").await else {
        return;
    };
    let args = fixture_args(&url, &["--workers", "3"]);
    let parent = Fixture::spawn(&args, None, &dir);
    let client = client(&vhost, Duration::from_secs(5)).await;
    // The queue hands calls to its consumers in turn: three workers show up quickly.
    let mut workers = BTreeSet::new();
    for _ in 0..100 {
        if let Ok((pid, _)) = whoami(&client).await {
            workers.insert(pid);
        }
        if workers.len() == 3 {
            break;
        }
    }
    assert_eq!(workers.len(), 3, "{}", parent.log());
    assert!(
        !workers.contains(&parent.child.id()),
        "the parent never serves"
    );

    let victim = *workers.iter().next().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(victim).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // A call the dead worker had taken times out; the others are answered, by a new worker too
    // once it consumes (calls are quick: bounded by time, not by count).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut replacement = None;
    while replacement.is_none() && tokio::time::Instant::now() < deadline {
        if let Ok((pid, _)) = whoami(&client).await
            && !workers.contains(&pid)
        {
            replacement = Some(pid);
        }
    }
    assert!(replacement.is_some(), "no new worker: {}", parent.log());

    stop_cleanly(parent).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn sighup_reloads_the_configuration() {
    let Some((vhost, dir, url)) = on_rabbit("lifecycle-hup").await else {
        return;
    };
    let conf = dir.join("launched.conf");
    std::fs::write(&conf, "[DEFAULT]\nhost = before\n").unwrap();
    let conf_arg = conf.display().to_string();
    let args = fixture_args(&url, &["--config-file", &conf_arg]);
    let server = Fixture::spawn(&args, None, &dir);
    let client = client(&vhost, Duration::from_secs(30)).await;
    let (pid, host) = whoami(&client).await.unwrap();
    assert_eq!(host, "before");

    std::fs::write(&conf, "[DEFAULT]\nhost = after\n").unwrap();
    server.signal(nix::sys::signal::Signal::SIGHUP);
    let mut seen = host;
    for _ in 0..50 {
        let (now_pid, host) = whoami(&client).await.unwrap();
        assert_eq!(now_pid, pid, "a daemon reloads in place");
        seen = host;
        if seen == "after" {
            break;
        }
    }
    assert_eq!(seen, "after", "{}", server.log());

    stop_cleanly(server).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_systemd_watchdog_is_pinged_at_half_its_interval() {
    let dir = scratch("watchdog");
    let (socket_path, socket) = notify_socket(&dir);
    let transport = format!("memory://{}", unique_name("watchdog"));
    let args = fixture_args(&transport, &[]);
    // 400 ms: a ping every 200 ms.
    let server = Fixture::spawn_with(
        &args,
        Some(&socket_path),
        &dir,
        &[("WATCHDOG_USEC", "400000")],
    );
    assert_eq!(notified(&socket).await, "READY=1", "{}", server.log());
    let started = std::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(notified(&socket).await, "WATCHDOG=1", "{}", server.log());
    }
    // The first ping comes at once, the next two a half interval apart each.
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    stop_cleanly(server).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn serve_twice_in_one_process_is_an_error() {
    let dir = scratch("twice");
    let (socket_path, socket) = notify_socket(&dir);
    let transport = format!("memory://{}", unique_name("twice"));
    let args = fixture_args(&transport, &["--serve-twice"]);
    let server = Fixture::spawn(&args, Some(&socket_path), &dir);
    assert_eq!(notified(&socket).await, "READY=1");
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, server) = exited(server).await;
    assert_eq!(code, Some(0));
    assert!(
        server
            .log()
            .contains("second serve: a launcher already runs in this process"),
        "{}",
        server.log()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_service_that_fails_to_start_stops_the_launcher() {
    let dir = scratch("fails");
    let transport = format!("memory://{}", unique_name("fails"));
    let args = fixture_args(
        &transport,
        &[
            "--set",
            "DEFAULT.launched_manager=nova.launched.OtherManager",
        ],
    );
    let server = Fixture::spawn(&args, None, &dir);
    let (code, server) = exited(server).await;
    assert_eq!(code, Some(1));
    let log = server.log();
    assert!(log.contains("failed to start"), "{log}");
    assert!(log.contains("OtherManager"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn work_past_the_graceful_timeout_is_abandoned_and_the_exit_code_says_so() {
    let Some((vhost, dir, url)) = on_rabbit("lifecycle-grace").await else {
        return;
    };
    let args = fixture_args(&url, &["--set", "DEFAULT.graceful_shutdown_timeout=1"]);
    let mut server = Fixture::spawn(&args, None, &dir);
    let client = client(&vhost, Duration::from_secs(30)).await;
    let call = tokio::spawn(async move {
        let args = serde_json::json!({"ms": 600_000, "value": 7});
        client.call::<i64>(&Context::new(), "slow", &args).await
    });
    let mut stdout = server.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    assert_eq!(line.trim(), "started 7");
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, server) = exited(server).await;
    assert_eq!(code, Some(2), "{}", server.log());
    assert!(server.log().contains("abandoned"), "{}", server.log());
    call.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn several_services_in_one_process_serve_and_stop_together() {
    let Some((vhost, dir, url)) = on_rabbit("lifecycle-several").await else {
        return;
    };
    let args = fixture_args(&url, &["--second-topic", "launched_second"]);
    let (socket_path, socket) = notify_socket(&dir);
    let server = Fixture::spawn(&args, Some(&socket_path), &dir);
    assert_eq!(notified(&socket).await, "READY=1", "{}", server.log());
    let first = whoami(&client(&vhost, Duration::from_secs(30)).await)
        .await
        .unwrap();
    let transport = rpc_runtime::connect(&url).await.unwrap();
    let second: (u32, String) = Client::new(transport, Target::new("launched_second"))
        .call(&Context::new(), "whoami", &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(first.0, second.0, "one process");
    assert!(second.1.starts_with("second@"), "{second:?}");
    stop_cleanly(server).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A notification listener run by the launcher: on SIGTERM the notification it runs finishes and
/// is acknowledged, and the one waiting stays queued for the next listener.
#[tokio::test]
async fn sigterm_lets_a_running_notification_finish_and_leaves_the_rest_queued() {
    let Some((vhost, dir, url)) = on_rabbit("lifecycle-notify").await else {
        return;
    };
    let topic = unique_name("launched-notify");
    let args = fixture_args(&url, &["--notifications", &topic]);
    let (socket_path, socket) = notify_socket(&dir);
    let mut server = Fixture::spawn(&args, Some(&socket_path), &dir);
    assert_eq!(notified(&socket).await, "READY=1", "{}", server.log());
    let transport = rpc_runtime::connect(&url).await.unwrap();
    let notifier = rpc_runtime::notify::Notifier::new(transport, "lifecycle.test")
        .with_topics([topic.as_str()]);
    let ctx = Context::new();
    notifier
        .info(&ctx, "first", &serde_json::json!({"ms": 1500}))
        .await
        .unwrap();
    notifier
        .info(&ctx, "second", &serde_json::json!({}))
        .await
        .unwrap();
    let mut stdout = server.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        (line, stdout)
    })
    .await
    .unwrap();
    assert_eq!(first.0.trim(), "notified first", "{}", server.log());
    server.signal(nix::sys::signal::Signal::SIGTERM);
    let mut stdout = first.1;
    let (code, server) = exited(server).await;
    assert_eq!(code, Some(0), "{}", server.log());
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
    assert_eq!(rest.trim(), "handled first", "{}", server.log());
    // `first` was acknowledged, `second` waits: the next listener gets `second`, then the marker
    // sent after it, and never `first` (a requeued message would come back at the head).
    let seen = Seen::new();
    let next = NotificationListener::builder(rpc_runtime::connect(&url).await.unwrap())
        .target(Target::new(topic.as_str()))
        .endpoint(Arc::new(Infos(Arc::clone(&seen))))
        .max_concurrency(1)
        .start()
        .await
        .unwrap();
    notifier
        .info(&ctx, "marker", &serde_json::json!({}))
        .await
        .unwrap();
    seen.wait_for(2).await;
    assert_eq!(seen.event_types(), ["second", "marker"], "{}", server.log());
    next.stop().await;
    drop(vhost);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr2_drains_the_shared_queue_and_keeps_the_rest() {
    let Some((vhost, dir, url)) = on_rabbit("lifecycle-drain").await else {
        return;
    };
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics_at = format!("metrics.listen=127.0.0.1:{metrics_port}");
    let (socket_path, socket) = notify_socket(&dir);
    let mut drained = Fixture::spawn(
        &fixture_args(&url, &["--host", "drain-a", "--set", &metrics_at]),
        Some(&socket_path),
        &dir,
    );
    assert_eq!(notified(&socket).await, "READY=1", "{}", drained.log());
    let other_dir = scratch("lifecycle-drain-b");
    let (other_socket_path, other_socket) = notify_socket(&other_dir);
    let other = Fixture::spawn(
        &fixture_args(&url, &["--host", "drain-b"]),
        Some(&other_socket_path),
        &other_dir,
    );
    assert_eq!(notified(&other_socket).await, "READY=1", "{}", other.log());
    let client = client(&vhost, Duration::from_secs(30)).await;

    // A slow call in flight on the node to drain, through its own queue.
    let on_a = client.prepare(CallOptions::new().server("drain-a"));
    let slow = tokio::spawn({
        let on_a = on_a.clone();
        async move {
            let args = serde_json::json!({"ms": 1500, "value": 7});
            on_a.call::<i64>(&Context::new(), "slow", &args).await
        }
    });
    let mut stdout = drained.stdout.take().unwrap();
    let (started, stdout) = tokio::task::spawn_blocking(move || {
        let started = read_started(&mut stdout, 1);
        (started, stdout)
    })
    .await
    .unwrap();
    assert_eq!(started, vec![7]);
    drained.stdout = Some(stdout);

    drained.signal(nix::sys::signal::Signal::SIGUSR2);
    let (one_left, vhost) = tokio::task::spawn_blocking(move || {
        let left = vhost.wait_for_consumers("launched", 1, Duration::from_secs(30));
        (left, vhost)
    })
    .await
    .unwrap();
    assert!(
        one_left,
        "the shared queue keeps one consumer: {}",
        drained.log()
    );

    // What was running finishes; the shared topic is served by the other node alone; the
    // drained node still answers on its own queue.
    assert_eq!(slow.await.unwrap().unwrap(), 7);
    for _ in 0..10 {
        let (_, host) = whoami(&client).await.unwrap();
        assert_eq!(host, "drain-b");
    }
    let (pid, host) = whoami(&on_a).await.unwrap();
    assert_eq!((pid, host.as_str()), (drained.child.id(), "drain-a"));
    let addr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    let (status, body) =
        tokio::task::spawn_blocking(move || rpc_integration_tests::scrape::get(addr, "/readyz"))
            .await
            .unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("draining"), "{body}");

    stop_cleanly(drained).await;
    stop_cleanly(other).await;
    drop(vhost);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other_dir);
}
