"""oslo.messaging client side of the RabbitMQ benchmark: prints one JSON line of figures."""
import json
import sys
import threading
import time

from oslo_config import cfg
import oslo_messaging as messaging

PAYLOAD = "0123456789abcdef" * 4


def main():
    url, topic, calls, in_flight = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    cfg.CONF([], project="bench", default_config_files=[])
    transport = messaging.get_rpc_transport(cfg.CONF, url=url)
    client = messaging.get_rpc_client(transport, messaging.Target(topic=topic, version="1.0"), timeout=60)
    ctxt = {"user_id": "bench", "project_id": "bench"}
    for _ in range(min(200, calls)):
        client.call(ctxt, "echo", value=PAYLOAD)
    samples = []
    started = time.perf_counter()
    for _ in range(calls):
        t = time.perf_counter()
        client.call(ctxt, "echo", value=PAYLOAD)
        samples.append(time.perf_counter() - t)
    seq_rate = calls / (time.perf_counter() - started)
    samples.sort()
    remaining = [calls]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            client.call(ctxt, "echo", value=PAYLOAD)

    threads = [threading.Thread(target=worker) for _ in range(in_flight)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = calls / (time.perf_counter() - started)
    print(json.dumps({
        "p50_us": samples[len(samples) // 2] * 1e6,
        "p99_us": samples[int(len(samples) * 0.99)] * 1e6,
        "seq_rate": seq_rate,
        "rate": rate,
    }))
    transport.cleanup()


if __name__ == "__main__":
    main()
