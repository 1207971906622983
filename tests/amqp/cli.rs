//! `rpcctl` against a server on the real broker.

use std::process::ExitCode;

use rpc_integration_tests::Vhost;

use crate::fixture::serve;

async fn rpcctl(args: &[&str]) -> (ExitCode, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = std::iter::once("rpcctl").chain(args.iter().copied());
    let code = rpc_runtime::cli::run(argv, &mut out, &mut err).await;
    (
        code,
        String::from_utf8(out).expect("utf-8 output"),
        String::from_utf8(err).expect("utf-8 errors"),
    )
}

#[tokio::test]
async fn rpcctl_calls_casts_and_reports_errors() {
    let Some(vhost) = Vhost::create("rpcctl") else {
        return;
    };
    let mut served = serve(&vhost, "", &["h1"]).await;
    let url = vhost.url("");
    let topic = served.topic.clone();
    let common = ["--transport-url", url.as_str(), "--topic", topic.as_str()];

    let mut call = vec!["call"];
    call.extend(common);
    call.extend(["--server", "h1", "echo", r#"{"value": [1, "x"]}"#]);
    let (code, out, err) = rpcctl(&call).await;
    assert_eq!(code, ExitCode::SUCCESS, "{err}");
    let result: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result["value"], serde_json::json!([1, "x"]));

    let mut cast = vec!["cast"];
    cast.extend(common);
    cast.extend(["--version", "1.1", "note", r#"{"value": 3}"#]);
    let (code, _, err) = rpcctl(&cast).await;
    assert_eq!(code, ExitCode::SUCCESS, "{err}");
    assert_eq!(served.notes.recv().await.unwrap().1, 3);

    let mut refuse = vec!["call"];
    refuse.extend(common);
    refuse.extend(["refuse", r#"{"reason": "full"}"#]);
    let (code, _, err) = rpcctl(&refuse).await;
    assert_eq!(code, ExitCode::from(1));
    assert!(err.contains("Refused: refused: full"), "{err}");
    assert!(
        err.contains(&format!(
            r#"sent: refuse({{"reason":"full"}}) to topic {topic}"#
        )),
        "what was sent: {err}"
    );

    let mut bad = vec!["call"];
    bad.extend(common);
    bad.extend(["echo", "[1, 2]"]);
    let (code, _, err) = rpcctl(&bad).await;
    assert_eq!(code, ExitCode::from(2));
    assert!(err.contains("must be a JSON object"), "{err}");

    // This server has no base API yet: ping names the problem instead of hanging.
    let mut ping = vec!["ping"];
    ping.extend(common);
    ping.extend(["--timeout", "5"]);
    let (code, _, err) = rpcctl(&ping).await;
    assert_eq!(
        code,
        ExitCode::from(1),
        "the server answered UnsupportedVersion"
    );
    assert!(err.contains("does not support RPC version 1.0"), "{err}");

    let (code, _, err) = rpcctl(&["call", "--topic", "t", "m"]).await;
    assert_eq!(code, ExitCode::from(2));
    assert!(err.contains("--transport-url"), "{err}");
}

#[tokio::test]
async fn rpcctl_output_json_is_one_document_and_exit_codes_say_what_happened() {
    let Some(vhost) = Vhost::create("rpcctl-json") else {
        return;
    };
    let served = serve(&vhost, "", &["h1"]).await;
    let url = vhost.url("");
    let topic = served.topic.clone();
    let json = |words: &[&str]| {
        let mut argv = vec!["--output", "json"];
        argv.extend_from_slice(&words[..1]);
        argv.extend(["--transport-url", url.as_str(), "--topic", topic.as_str()]);
        argv.extend_from_slice(&words[1..]);
        argv.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    /// One compact JSON document on stdout, nothing on stderr.
    async fn one_document(argv: Vec<String>) -> (ExitCode, serde_json::Value) {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let (code, out, err) = rpcctl(&argv).await;
        assert_eq!(err, "", "nothing but the document");
        assert_eq!(out.lines().count(), 1, "one compact line: {out}");
        (code, serde_json::from_str(&out).expect("a JSON document"))
    }

    let (code, result) = one_document(json(&["call", "echo", r#"{"value": [1, "x"]}"#])).await;
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(result["value"], serde_json::json!([1, "x"]));
    assert_eq!(result["host"], "h1");

    let (code, sent) = one_document(json(&[
        "cast",
        "--version",
        "1.1",
        "note",
        r#"{"value": 1}"#,
    ]))
    .await;
    assert_eq!(
        (code, sent),
        (ExitCode::SUCCESS, serde_json::json!({"sent": true}))
    );

    let (code, failed) = one_document(json(&["call", "refuse", r#"{"reason": "full"}"#])).await;
    assert_eq!(code, ExitCode::from(1));
    let error = &failed["error"];
    assert_eq!(error["kind"], "remote", "{failed}");
    assert_eq!(error["class"], "Refused");
    assert_eq!(error["message"], "refused: full");
    assert_eq!(error["sent"]["method"], "refuse");
    assert_eq!(error["sent"]["topic"], topic.as_str());
    assert_eq!(error["sent"]["args"], serde_json::json!({"reason": "full"}));

    let (code, failed) = one_document(json(&["call", "--no-check", "nope"])).await;
    assert_eq!(code, ExitCode::from(1));
    assert_eq!(failed["error"]["class"], "NoSuchMethod", "{failed}");

    let (code, failed) = one_document(json(&[
        "call",
        "--timeout",
        "0.3",
        "slow",
        r#"{"millis": 3000, "value": 1}"#,
    ]))
    .await;
    assert_eq!(code, ExitCode::from(3), "{failed}");
    assert_eq!(failed["error"]["kind"], "timeout");
    assert_eq!(failed["error"]["sent"]["method"], "slow");

    let (code, failed) = one_document(json(&["call", "echo", "[1]"])).await;
    assert_eq!(code, ExitCode::from(2));
    assert_eq!(failed["error"]["kind"], "usage");

    // Nothing listens on port 1: the transport fails, exit 4.
    let (code, failed) = one_document(vec![
        "--output".into(),
        "json".into(),
        "call".into(),
        "--transport-url".into(),
        "rabbit://guest:guest@127.0.0.1:1/".into(),
        "--topic".into(),
        "t".into(),
        "m".into(),
    ])
    .await;
    assert_eq!(code, ExitCode::from(4), "{failed}");
    assert_eq!(failed["error"]["kind"], "transport");
    assert!(
        !failed.to_string().contains("guest:guest"),
        "no password: {failed}"
    );
}

#[tokio::test]
async fn rpcctl_describe_and_the_checks_before_a_call() {
    let Some(vhost) = Vhost::create("rpcctl-describe") else {
        return;
    };
    let served = serve(&vhost, "", &["h1"]).await;
    let url = vhost.url("");
    let topic = served.topic.clone();
    let with = |words: &[&str]| {
        let mut argv = words[..1].to_vec();
        argv.extend(["--transport-url", url.as_str(), "--topic", topic.as_str()]);
        argv.extend_from_slice(&words[1..]);
        argv.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    async fn run(argv: Vec<String>) -> (ExitCode, String, String) {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        rpcctl(&argv).await
    }

    let (code, out, err) = run(with(&["describe", "--server", "h1"])).await;
    assert_eq!(code, ExitCode::SUCCESS, "{err}");
    assert!(
        out.starts_with(&format!("topic {topic}, server h1\n")),
        "{out}"
    );
    assert!(
        out.contains("Worker — namespace (default), version 1.1"),
        "{out}"
    );
    assert!(
        out.contains("  call echo(value: serde_json::Value)  since 1.0"),
        "{out}"
    );
    assert!(out.contains("  cast note(value: i64)  since 1.1"), "{out}");

    let mut json = vec!["--output".to_owned(), "json".to_owned()];
    json.extend(with(&["describe"]));
    let (code, out, _) = run(json).await;
    assert_eq!(code, ExitCode::SUCCESS);
    let description: rpc_runtime::introspection::ServerDescription =
        serde_json::from_str(&out).expect("a description");
    let worker = &description.endpoints[0];
    assert_eq!(
        (worker.name.as_str(), worker.version.as_str()),
        ("Worker", "1.1")
    );
    let slow = worker
        .methods
        .iter()
        .find(|m| m.name == "slow")
        .expect("slow");
    let args: Vec<&str> = slow.args.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(args, ["millis", "value"]);

    // Mistyped names are caught before anything is sent, naming what exists.
    let (code, _, err) = run(with(&["call", "ecko", r#"{"value": 1}"#])).await;
    assert_eq!(code, ExitCode::from(2), "{err}");
    assert!(err.contains("has no method `ecko`"), "{err}");
    assert!(err.contains("did you mean `echo`?"), "{err}");
    let (code, _, err) = run(with(&["call", "echo", r#"{"valeu": 1}"#])).await;
    assert_eq!(code, ExitCode::from(2), "{err}");
    assert!(err.contains("`echo` has no argument `valeu`"), "{err}");
    assert!(err.contains("did you mean `value`?"), "{err}");
    let (code, _, err) = run(with(&["call", "slow", r#"{"millis": 1}"#])).await;
    assert_eq!(code, ExitCode::from(2), "{err}");
    assert!(err.contains("`slow` needs `value`"), "{err}");
    // --no-check sends it anyway: the server's own answer.
    let (code, _, err) = run(with(&["call", "--no-check", "ecko", "{}"])).await;
    assert_eq!(code, ExitCode::from(1), "{err}");
    assert!(err.contains("NoSuchMethod"), "{err}");
}
