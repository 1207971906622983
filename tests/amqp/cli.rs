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
    assert_eq!(code, ExitCode::from(2));
    assert!(err.contains("does not support RPC version 1.0"), "{err}");

    let (code, _, err) = rpcctl(&["call", "--topic", "t", "m"]).await;
    assert_eq!(code, ExitCode::from(2));
    assert!(err.contains("--transport-url"), "{err}");
}
