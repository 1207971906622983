"""oslo.messaging echo server for the RabbitMQ benchmark (threading executor, 64 workers)."""
import signal
import sys
import threading

from oslo_config import cfg
import oslo_messaging as messaging


class Echo:
    target = messaging.Target(version="1.0")

    def echo(self, ctxt, value):
        return value


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
