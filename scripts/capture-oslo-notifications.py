#!/usr/bin/env python3
"""Captures what oslo.messaging's Notifier puts on the wire, as test fixtures.

Run with a Python that has oslo.messaging (the interop tests' venv, `target/tmp/oslo-venv`):

    python scripts/capture-oslo-notifications.py OUT_DIR [AMQP_URL]

It makes a vhost of its own (rabbitmqctl), sends one notification per priority with the
`messagingv2` driver and one with the `messaging` (v1) driver, and reads each back from its
`<topic>.<priority>` queue with py-amqp, writing `<NN>_<driver>_<priority>.body.json` (the body
bytes as published) and `.amqp.json` (exchange, routing key, properties) into OUT_DIR.
"""
import json
import os
import subprocess
import sys
import uuid

import amqp
from oslo_config import cfg
from oslo_context import context as oslo_context
import oslo_messaging

out = sys.argv[1]
vhost = "capture-notifications-" + uuid.uuid4().hex[:8]
subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
               check=True)
try:
    url = f"rabbit://guest:guest@127.0.0.1:5672/{vhost}"
    conf = cfg.ConfigOpts()
    conf([], project="capture")
    transport = oslo_messaging.get_notification_transport(conf, url=url)
    ctx = oslo_context.RequestContext(user_id="u-1", project_id="p-1", request_id="req-capture",
                                     auth_token="SECRET-TOKEN")
    payload = {"instance_id": "i-1", "state": "active", "memory_mb": 512}
    sent = []
    for index, (driver, priority) in enumerate(
        [("messagingv2", p) for p in ("audit", "debug", "info", "warn", "error", "critical",
                                       "sample")] + [("messaging", "info")], start=1):
        topic = f"notifications_{driver}"
        notifier = oslo_messaging.Notifier(transport, publisher_id="compute.host1",
                                           driver=driver, topics=[topic])
        # A RequestContext, not a dict: oslo drops a dict context and sends a context's
        # `redacted_copy()` (no auth token) as `_context_*` keys.
        getattr(notifier, priority)(ctx, f"capture.{priority}", payload)
        sent.append((index, driver, priority, topic))
    connection = amqp.Connection(host="127.0.0.1:5672", userid="guest", password="guest",
                                 virtual_host=vhost)
    connection.connect()
    channel = connection.channel()
    for index, driver, priority, topic in sent:
        # oslo writes the routing key's priority lower-case: `warn` goes to `<topic>.warn`.
        queue = f"{topic}.{priority}"
        message = channel.basic_get(queue, no_ack=True)
        assert message is not None, f"nothing on {queue}"
        stem = os.path.join(out, f"{index:02d}_{driver}_{priority}")
        with open(stem + ".body.json", "wb") as f:
            f.write(message.body if isinstance(message.body, bytes) else message.body.encode())
        with open(stem + ".amqp.json", "w") as f:
            json.dump({
                "exchange": message.delivery_info.get("exchange"),
                "routing_key": message.delivery_info.get("routing_key"),
                "properties": {k: v for k, v in message.properties.items()
                               if k != "application_headers"},
                "queue": queue,
            }, f, indent=2, sort_keys=True, default=str)
            f.write("\n")
    connection.close()
finally:
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)
