"""oslo.messaging RPC client for interop tests: runs one scenario, prints one JSON line."""
import argparse
import json
import sys

from oslo_config import cfg
import oslo_messaging as messaging


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("scenario")
    args = parser.parse_args()
    cfg.CONF([], project="interop", default_config_files=[])
    transport = messaging.get_rpc_transport(cfg.CONF, url=args.url)
    client = messaging.get_rpc_client(
        transport, messaging.Target(topic=args.topic, version="1.0"), timeout=15
    )
    ctxt = {"user_id": "u-py", "project_id": "p-py", "request_id": "req-py-1", "roles": ["member"]}
    out = {}
    try:
        s = args.scenario
        if s == "call":
            out["result"] = client.call(ctxt, "echo", value={"a": [1, "two", None], "é": "\"q\""})
        elif s == "add":
            out["result"] = client.call(ctxt, "add", a=2, b=40)
        elif s == "cast":
            client.cast(ctxt, "note", value=5)
            out["result"] = "sent"
        elif s == "fanout":
            client.prepare(fanout=True, version="1.1").cast(ctxt, "note", value=7)
            out["result"] = "sent"
        elif s == "server":
            out["result"] = [client.prepare(server="h2").call(ctxt, "host") for _ in range(5)]
        elif s == "context":
            out["result"] = client.prepare(version="1.1").call(ctxt, "whoami")
        elif s == "app_error":
            client.prepare(version="1.1").call(ctxt, "fail", message="boom")
        elif s == "bad_version":
            client.prepare(version="1.9").call(ctxt, "echo", value=1)
        elif s == "monitor":
            # 3.5 s of work, a 2 s call monitor: only heartbeats keep this call alive.
            out["result"] = client.prepare(timeout=20, call_monitor_timeout=2).call(
                ctxt, "slow", millis=3500
            )
        elif s == "ping":
            out["result"] = client.call(ctxt, "oslo_rpc_server_ping")
        elif s == "no_method":
            client.call(ctxt, "no_such_method")
        else:
            raise SystemExit("unknown scenario " + s)
    except messaging.RemoteError as e:
        out["error"] = {"type": "RemoteError", "exc_type": e.exc_type, "value": e.value}
    except Exception as e:  # noqa: BLE001 - reported to the Rust side
        out["error"] = {"type": type(e).__name__, "str": str(e)}
    transport.cleanup()
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
