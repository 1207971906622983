"""oslo.messaging RPC server for interop tests: prints `ready`, stops on SIGTERM."""
import argparse
import signal
import sys
import threading
import time

from oslo_config import cfg
import oslo_messaging as messaging


class Failure(Exception):
    """An application error, as a Python service would raise one."""


class Endpoint:
    target = messaging.Target(version="1.1")

    def __init__(self, transport):
        self.transport = transport

    def echo(self, ctxt, value):
        return value

    def add(self, ctxt, a, b):
        return a + b

    def fail(self, ctxt, message):
        raise ValueError(message)

    def whoami(self, ctxt):
        return ctxt

    def relay(self, ctxt, topic):
        """Calls `whoami` on `topic` with the context received, as a service calling onward."""
        onward = messaging.get_rpc_client(
            self.transport, messaging.Target(topic=topic, version="1.0"), timeout=15
        )
        return onward.call(ctxt, "whoami")

    def slow(self, ctxt, millis):
        time.sleep(millis / 1000.0)
        return millis


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--server", default="py1")
    args = parser.parse_args()
    cfg.CONF([], project="interop", default_config_files=[])
    transport = messaging.get_rpc_transport(cfg.CONF, url=args.url)
    target = messaging.Target(topic=args.topic, server=args.server)
    server = messaging.get_rpc_server(transport, target, [Endpoint(transport)], executor="threading")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print("ready")
    sys.stdout.flush()
    stop.wait()
    server.stop()
    server.wait()
    transport.cleanup()


if __name__ == "__main__":
    main()
