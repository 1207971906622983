"""oslo.messaging client side of the benchmark: prints one JSON line of figures.

Arguments: URL TOPIC CALLS IN_FLIGHT[,IN_FLIGHT...] CASTS
"""
import json
import sys
import threading
import time

from oslo_config import cfg
import oslo_messaging as messaging

PAYLOAD = "0123456789abcdef" * 4


def run_in_flight(n, total, op):
    remaining = [total]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            op()

    threads = [threading.Thread(target=worker) for _ in range(n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return total / (time.perf_counter() - started)


def main():
    url, topic = sys.argv[1], sys.argv[2]
    calls = int(sys.argv[3])
    levels = [int(n) for n in sys.argv[4].split(",")]
    casts = int(sys.argv[5])
    cfg.CONF([], project="bench", default_config_files=[])
    transport = messaging.get_rpc_transport(cfg.CONF, url=url)
    client = messaging.get_rpc_client(
        transport, messaging.Target(topic=topic, version="1.0"), timeout=600
    )
    ctxt = {"user_id": "bench", "project_id": "bench"}
    for _ in range(min(200, calls)):
        client.call(ctxt, "echo", value=PAYLOAD)
    samples = []
    for _ in range(calls):
        t = time.perf_counter()
        client.call(ctxt, "echo", value=PAYLOAD)
        samples.append(time.perf_counter() - t)
    samples.sort()
    rates = {}
    for n in levels:
        total = calls // 4 if n == 1 else calls
        rates[str(n)] = run_in_flight(n, total, lambda: client.call(ctxt, "echo", value=PAYLOAD))
    before = client.call(ctxt, "wait_for", total=0)
    started = time.perf_counter()
    run_in_flight(64, casts, lambda: client.cast(ctxt, "note", value=PAYLOAD))
    client.call(ctxt, "wait_for", total=before + casts)
    cast_rate = casts / (time.perf_counter() - started)
    print(json.dumps({
        "p50_us": samples[len(samples) // 2] * 1e6,
        "p99_us": samples[int(len(samples) * 0.99)] * 1e6,
        "rates": rates,
        "cast_rate": cast_rate,
    }))
    transport.cleanup()


if __name__ == "__main__":
    main()
