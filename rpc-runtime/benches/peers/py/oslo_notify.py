"""oslo.messaging notifications for the benchmark: prints one JSON line, {"rate": per second}.

`drain URL TOPIC N`: a NotificationListener (threading executor) on TOPIC, timed from its start
until it has N (queued beforehand in TOPIC.info).
`end_to_end URL TOPIC N`: a listener and 64 threads sending N with oslo's Notifier, timed until
the listener has them all.
"""
import json
import sys
import threading
import time

from oslo_config import cfg
import oslo_messaging as messaging

PAYLOAD = "0123456789abcdef" * 4


class Counter:
    def __init__(self, total):
        self.total = total
        self.count = 0
        self.lock = threading.Lock()
        self.done = threading.Event()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            self.count += 1
            if self.count >= self.total:
                self.done.set()
        return messaging.NotificationResult.HANDLED


def main():
    mode, url, topic, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    cfg.CONF([], project="bench", default_config_files=[])
    transport = messaging.get_notification_transport(cfg.CONF, url=url)
    counter = Counter(total)
    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [counter], executor="threading")
    started = time.perf_counter()
    listener.start()
    if mode == "end_to_end":
        notifier = messaging.Notifier(
            transport, publisher_id="bench.host", driver="messagingv2", topics=[topic])
        remaining = [total]
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    if remaining[0] <= 0:
                        return
                    remaining[0] -= 1
                notifier.info({}, "bench.notified", {"value": PAYLOAD})

        threads = [threading.Thread(target=worker) for _ in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    counter.done.wait(600)
    rate = counter.count / (time.perf_counter() - started)
    listener.stop()
    listener.wait()
    transport.cleanup()
    print(json.dumps({"rate": rate}))


if __name__ == "__main__":
    main()
