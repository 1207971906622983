//! The binary's command line: the all-in-one run (README's first command) and the one-line
//! errors a user can cause.

// Helpers report by panicking.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_scheduler-service");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a failure with exit code `code` and exactly one line on stderr; returns it.
fn one_line_failure(output: &Output, code: i32) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    stderr
}

#[test]
fn all_in_one_boots_a_batch_shows_the_services_and_exits_cleanly() {
    let output = run(&[]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    for host in ["compute-1", "compute-2", "compute-3"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains("| nova-compute ") && l.contains(host) && l.contains(" up ")),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("| nova-scheduler | controller | internal |"),
        "{stdout}"
    );
    // 4 + 2 + 3 instances and 2 from the 3.x caller placed; the xlarge one does not fit.
    assert_eq!(
        stdout.lines().filter(|l| l.contains(" -> ")).count(),
        11,
        "{stdout}"
    );
    assert!(
        stdout.contains("m1.xlarge in zone east: NoValidHost"),
        "{stdout}"
    );
    // Zone east holds only compute-3.
    let east: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.contains("m1.large in zone east"))
        .skip(1)
        .take(2)
        .collect();
    assert!(east.iter().all(|l| l.contains("-> compute-3")), "{east:?}");
    assert!(
        stdout.contains("stopped: Graceful, exit code 0"),
        "{stdout}"
    );
    // The scheduler's notifications: 5 starts and 4 ends (the xlarge boot failed), legacy and
    // versioned each, and its service.update on start.
    for (count, event_type, publisher) in [
        (
            5,
            "scheduler.select_destinations.start",
            "scheduler.controller",
        ),
        (
            4,
            "scheduler.select_destinations.end",
            "scheduler.controller",
        ),
        (
            5,
            "scheduler.select_destinations.start",
            "nova-scheduler:controller",
        ),
        (
            4,
            "scheduler.select_destinations.end",
            "nova-scheduler:controller",
        ),
        (1, "service.update", "nova-scheduler:controller"),
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(&format!("{count:>2} x {event_type} "))
                    && l.ends_with(&format!("from {publisher}"))),
            "{count} x {event_type} from {publisher}:\n{stdout}"
        );
    }
    assert!(stdout.contains("5. notifications: 19 sent"), "{stdout}");
}

#[test]
fn an_unreachable_broker_is_one_line_without_the_password() {
    let output = run(&[
        "boot",
        "--transport-url",
        "rabbit://guest:s3cret@127.0.0.1:1/",
    ]);
    let line = one_line_failure(&output, 1);
    assert!(line.contains("could not connect"), "{line}");
    assert!(!line.contains("s3cret"), "{line}");
}

#[test]
fn a_bad_database_url_is_one_line_without_the_password() {
    let output = run(&[
        "services",
        "--database-connection",
        "postgresql://u:s3cret@127.0.0.1:1/x",
    ]);
    let line = one_line_failure(&output, 1);
    assert!(line.contains("Connection refused"), "{line}");
    assert!(!line.contains("s3cret"), "{line}");
    let output = run(&["services", "--database-connection", "oracle://db/x"]);
    let line = one_line_failure(&output, 1);
    assert!(line.contains("unsupported database URL"), "{line}");
}

#[test]
fn bad_flags_are_one_line_and_exit_code_2() {
    one_line_failure(&run(&["--frobnicate"]), 2);
    one_line_failure(
        &run(&[
            "compute",
            "--host",
            "h",
            "--vcpus",
            "0",
            "--ram-mb",
            "1",
            "--disk-gb",
            "1",
        ]),
        2,
    );
    let line = one_line_failure(&run(&["boot", "--flavor", "m9.huge"]), 2);
    assert!(line.contains("m1.small"), "{line}");
    let line = one_line_failure(&run(&["serve", "--set", "DEFAULT.report_interval=soon"]), 1);
    assert!(line.contains("report_interval"), "{line}");
}

#[test]
fn disabling_an_unknown_service_says_so() {
    let line = one_line_failure(
        &run(&[
            "services",
            "disable",
            "nohost",
            "nova-compute",
            "--database-connection",
            "sqlite::memory:",
        ]),
        1,
    );
    assert!(
        line.contains("no service nova-compute on host nohost"),
        "{line}"
    );
}

#[test]
fn help_lists_the_subcommands() {
    let output = run(&["--help"]);
    assert!(output.status.success());
    let help = text(&output.stdout);
    for command in ["all-in-one", "serve", "compute", "boot", "services"] {
        assert!(help.contains(command), "{help}");
    }
}

/// `notifications` tails a topic: `ready`, then one JSON line per notification up to `--count`
/// (the next is put back on its queue, not lost), then a clean exit; the human form is one
/// readable line each.
#[test]
fn notifications_tails_a_topic_as_json_lines_and_as_text() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let Some(vhost) = rpc_integration_tests::Vhost::create("cli-tail") else {
        return;
    };
    let url = vhost.url("");
    let topic = rpc_integration_tests::unique_name("tail");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let notifier = runtime.block_on(async {
        let transport = rpc_runtime::connect(&url).await.unwrap();
        rpc_runtime::notify::Notifier::new(transport, "scheduler.host1")
            .with_topics([topic.as_str()])
    });
    let send = |event_type: &str| {
        runtime
            .block_on(notifier.info(
                &rpc_runtime::Context::new(),
                event_type,
                &serde_json::json!({"n": event_type}),
            ))
            .unwrap();
    };
    let tail = |mode: &[&str]| {
        let mut args = vec!["notifications", "--transport-url", &url, "--topic", &topic];
        args.extend_from_slice(mode);
        let mut child = Command::new(BIN)
            .args(&args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        (child, lines)
    };

    let (mut child, mut lines) = tail(&["--json", "--count", "2"]);
    // Nothing is queued yet: `ready` comes first, and says the tail consumes.
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    for event_type in ["first", "second", "third"] {
        send(event_type);
    }
    let got: Vec<serde_json::Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert!(child.wait().unwrap().success());
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["event_type"], "first");
    assert_eq!(got[0]["priority"], "info");
    assert_eq!(got[0]["publisher_id"], "scheduler.host1");
    assert_eq!(got[1]["payload"]["n"], "second");

    // `third` was put back: the next tail prints it first, as text.
    // (What is queued may print before `ready` does.)
    let (mut child, lines) = tail(&["--count", "1"]);
    let mut got: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success());
    let ready = got.iter().position(|l| l == "ready").expect("`ready`");
    got.remove(ready);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("INFO") && got[0].contains("third") && got[0].contains("scheduler.host1"),
        "{got:?}"
    );
}
