"""oslo.messaging echo server for the benchmark (threading executor, 64 workers).

`echo(value)` returns the value; `note(value)` (sent as a cast) counts; `wait_for(total)` returns
once `total` casts in all have arrived. Prints `ready` once it consumes; exits on SIGTERM.
"""
import signal
import sys
import threading

from oslo_config import cfg
import oslo_messaging as messaging


class Echo:
    target = messaging.Target(version="1.0")

    def __init__(self):
        self.arrived = 0
        self.changed = threading.Condition()

    def echo(self, ctxt, value):
        return value

    def note(self, ctxt, value):
        with self.changed:
            self.arrived += 1
            self.changed.notify_all()

    def wait_for(self, ctxt, total):
        with self.changed:
            self.changed.wait_for(lambda: self.arrived >= total, timeout=600)
            return self.arrived


def main():
    url, topic = sys.argv[1], sys.argv[2]
    cfg.CONF([], project="bench", default_config_files=[])
    transport = messaging.get_rpc_transport(cfg.CONF, url=url)
    server = messaging.get_rpc_server(
        transport, messaging.Target(topic=topic, server="oslo"), [Echo()], executor="threading"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print("ready", flush=True)
    stop.wait()
    server.stop()
    server.wait()


if __name__ == "__main__":
    main()
