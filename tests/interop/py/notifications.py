"""oslo.messaging notifications for interop tests.

`send`: reads a JSON list of notifications on stdin and sends each with oslo's `Notifier`
(its own `driver`, `publisher_id`, `priority`), then prints `sent`.
`listen`: an oslo `NotificationListener` (optionally in `--pool`) with a method for every
priority; prints `ready`, then one JSON line per notification; stops on SIGTERM.
"""
import argparse
import json
import signal
import sys
import threading

from oslo_config import cfg
from oslo_context import context as oslo_context
import oslo_messaging as messaging

PRIORITIES = ["audit", "debug", "info", "warn", "error", "critical", "sample"]



_OUT = threading.Lock()


def say(line):
    """One whole line: listener threads print concurrently, and `print` writes the text and the
    newline apart, so two lines could merge."""
    with _OUT:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def context():
    return oslo_context.RequestContext(user_id="u-1", project_id="p-1", request_id="req-interop")


def send(transport, topic):
    for item in json.load(sys.stdin):
        notifier = messaging.Notifier(
            transport,
            publisher_id=item["publisher_id"],
            driver=item.get("driver", "messagingv2"),
            topics=[topic],
        )
        getattr(notifier, item["priority"])(context(), item["event_type"], item["payload"])
    print("sent", flush=True)


class Endpoint:
    pass


def _method(priority):
    def method(self, ctxt, publisher_id, event_type, payload, metadata):
        say(json.dumps({
            "priority": priority,
            "publisher_id": publisher_id,
            "event_type": event_type,
            "payload": payload,
            "user_id": ctxt.get("user_id") or ctxt.get("user"),
            "message_id": metadata.get("message_id"),
            "timestamp": metadata.get("timestamp"),
        }))
        return messaging.NotificationResult.HANDLED
    return method


for _p in PRIORITIES:
    setattr(Endpoint, _p, _method(_p))


def listen(transport, topic, pool):
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [Endpoint()],
        executor="threading", pool=pool or None)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    listener.start()
    print("ready", flush=True)
    done.wait()
    listener.stop()
    listener.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["send", "listen"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--pool", default="")
    args = parser.parse_args()
    cfg.CONF([], project="interop")
    transport = messaging.get_notification_transport(cfg.CONF, url=args.url)
    if args.mode == "send":
        send(transport, args.topic)
    else:
        listen(transport, args.topic, args.pool)
    transport.cleanup()


if __name__ == "__main__":
    main()
