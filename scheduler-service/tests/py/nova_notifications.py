"""nova 34's versioned notifications, for the interop tests.

`send URL TOPIC`: builds nova's own `ServiceStatusNotification` (a `Service` object, its
`ServiceStatusPayload`, `NotificationPublisher`, `EventType`) and emits it as nova does, through
`nova.rpc` configured for versioned notifications on TOPIC; prints `sent <service uuid>`.
`listen URL TOPIC COUNT`: an oslo.messaging listener that reads COUNT notifications on TOPIC
and prints each payload as nova's objects read it (`NovaObject.obj_from_primitive`).
"""
import json
import threading
import sys
import tempfile



_OUT = threading.Lock()


def say(line):
    """One whole line: listener threads print concurrently, and `print` writes the text and the
    newline apart, so two lines could merge."""
    with _OUT:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def configure(url, topic):
    import nova.conf
    from nova import objects
    objects.register_all()
    conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    conf.write(
        "[DEFAULT]\ntransport_url = %s\n"
        "[oslo_messaging_notifications]\ndriver = messagingv2\n"
        "[notifications]\nnotification_format = versioned\n"
        "versioned_notifications_topics = %s\n" % (url, topic))
    conf.close()
    nova.conf.CONF(["--config-file", conf.name], project="nova", default_config_files=[])
    return nova.conf.CONF


def send(url, topic):
    from oslo_utils import uuidutils
    from nova import context, objects, rpc
    from nova.notifications.objects import base, service
    from nova.objects import fields
    rpc.init(configure(url, topic))
    svc = objects.Service(
        host="node-1", binary="nova-compute", topic="compute", report_count=3,
        disabled=True, disabled_reason="maintenance", availability_zone="nova",
        last_seen_up=None, forced_down=False, uuid=uuidutils.generate_uuid())
    notification = service.ServiceStatusNotification(
        priority=fields.NotificationPriority.INFO,
        publisher=base.NotificationPublisher(
            host="node-1", source=fields.NotificationSource.COMPUTE),
        event_type=base.EventType(
            object="service", action=fields.NotificationAction.UPDATE),
        payload=service.ServiceStatusPayload(svc))
    notification.emit(context.get_admin_context())
    print("sent %s %s" % (svc.uuid, svc.version), flush=True)


def from_primitive(primitive):
    """`obj_from_primitive` for a notification payload: its class takes the object it is built
    from in `__init__`, but oslo builds it with no arguments, so it is built here as
    `NotificationPayloadBase.__init__` alone would."""
    from nova.notifications.objects import base
    from nova.objects import base as nova_base
    cls = nova_base.NovaObject.obj_class_from_name(
        primitive["nova_object.name"], primitive["nova_object.version"])
    original = cls.__init__
    cls.__init__ = lambda self, *args, **kwargs: base.NotificationPayloadBase.__init__(self)
    try:
        return cls.obj_from_primitive(primitive)
    finally:
        cls.__init__ = original


def listen(url, topic, count):
    import threading
    import oslo_messaging as messaging
    from nova.objects import base as nova_base
    import nova.notifications.objects.request_spec  # noqa: registers the payloads
    import nova.notifications.objects.service  # noqa
    conf = configure(url, topic)
    # Notification payloads are registered as objects only on request (nova's tests do this).
    nova_base.NovaObjectRegistry.register_notification_objects()
    transport = messaging.get_notification_transport(conf)
    done = threading.Event()
    seen = []

    class Endpoint:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            obj = from_primitive(payload)
            fields = {name: getattr(obj, name) for name in obj.fields
                      if obj.obj_attr_is_set(name)}
            say(json.dumps({
                "event_type": event_type, "publisher_id": publisher_id,
                "name": obj.obj_name(), "version": obj.VERSION,
                "fields": fields}, default=str))
            seen.append(event_type)
            if len(seen) >= count:
                done.set()
            return messaging.NotificationResult.HANDLED

    listener = messaging.get_notification_listener(
        transport, [messaging.Target(topic=topic)], [Endpoint()], executor="threading")
    listener.start()
    print("ready", flush=True)
    done.wait(120)
    listener.stop()
    listener.wait()


if __name__ == "__main__":
    mode, url, topic = sys.argv[1:4]
    if mode == "send":
        send(url, topic)
    else:
        listen(url, topic, int(sys.argv[4]))
