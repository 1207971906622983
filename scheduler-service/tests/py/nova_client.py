"""nova 34's own scheduler client (SchedulerQueryClient -> SchedulerAPI) against a scheduler.

    nova_client.py URL

Runs every mode and prints one JSON object: mode -> what nova's client returned (selections as
dictionaries of their fields) or raised. The fanout casts go in two steps: after the first, it
prints a line and waits for one on stdin. No nova database or service is needed.
"""
import json
import os
import sys
import uuid

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')

import oslo_messaging  # noqa: E402

import nova.conf  # noqa: E402
import nova.config  # noqa: E402
import nova.context  # noqa: E402
import nova.objects  # noqa: E402
import nova.rpc  # noqa: E402
from nova import exception, objects  # noqa: E402
from nova.scheduler.client import query  # noqa: E402

CONF = nova.conf.CONF


def setup(url):
    nova.config.parse_args([sys.argv[0]], default_config_files=[], configure_db=False,
                           init_rpc=False)
    try:
        CONF.register_opts(oslo_messaging.transport._transport_opts)
    except Exception:  # already registered by this nova/oslo combination
        pass
    CONF.set_override('transport_url', url)
    nova.rpc.init(CONF)
    nova.objects.register_all()


def flavor(name, vcpus, ram, disk):
    return objects.Flavor(id=1, name=name, memory_mb=ram, vcpus=vcpus, root_gb=disk,
                          ephemeral_gb=0, flavorid=name, swap=0, rxtx_factor=1.0,
                          vcpu_weight=0, disabled=False, is_public=True, extra_specs={},
                          description=None)


def request_spec(ctxt, uuids, fl, az=None):
    image = {'id': str(uuid.uuid4()), 'name': 'cirros', 'min_ram': 0, 'min_disk': 0,
             'size': 0, 'disk_format': 'qcow2', 'container_format': 'bare', 'properties': {}}
    spec = objects.RequestSpec.from_components(
        ctxt, uuids[0], image, fl, None, objects.InstancePCIRequests(requests=[]),
        {'scheduler_hints': {}}, None, az,
        security_groups=objects.SecurityGroupList(objects=[]),
        project_id=ctxt.project_id, user_id=ctxt.user_id)
    spec.is_bfv = False
    spec.num_instances = len(uuids)
    return spec


def selection(sel):
    out = {f: getattr(sel, f) for f in sel.fields if sel.obj_attr_is_set(f) and f != 'limits'}
    out['limits'] = sel.limits.obj_to_primitive() if sel.limits is not None else None
    return out


def select(qc, ctxt, n, fl, alternates=True, az=None):
    uuids = [str(uuid.uuid4()) for _ in range(n)]
    try:
        lists = qc.select_destinations(ctxt, request_spec(ctxt, uuids, fl, az), uuids,
                                       return_objects=True, return_alternates=alternates)
        return {'selections': [[selection(s) for s in lst] for lst in lists]}
    except exception.NoValidHost as error:
        return {'novalidhost': True, 'kwargs': error.kwargs, 'message': error.format_message()}
    except Exception as error:
        return {'error': type(error).__name__, 'message': str(error)[:500]}


def main():
    setup(sys.argv[1])
    qc = query.SchedulerQueryClient()
    ctxt = nova.context.RequestContext(user_id='demo-user', project_id='demo-project',
                                       is_admin=False, roles=['member'])
    small = flavor('m1.small', 1, 2048, 20)
    results = {
        'select': select(qc, ctxt, 1, small),
        'select_noalts': select(qc, ctxt, 1, small, alternates=False),
        'select_multi': select(qc, ctxt, 2, small),
        'novalidhost': select(qc, ctxt, 1, flavor('m1.huge', 4096, 8 * 1024 * 1024, 100000)),
    }
    admin = ctxt.elevated()
    # The casts, in two steps, so the test sees each one's effect: after the first line this
    # prints, it waits for a line on stdin before undoing some of them.
    agg1 = objects.Aggregate(id=1, uuid=str(uuid.uuid4()), name='agg-az1', hosts=['compute-0'],
                             metadata={'availability_zone': 'az1'})
    agg2 = objects.Aggregate(id=2, uuid=str(uuid.uuid4()), name='agg-az2', hosts=['compute-1'],
                             metadata={'availability_zone': 'az2'})
    qc.update_aggregates(admin, [agg1])
    qc.update_aggregates(admin, [agg2])
    i1, i2 = str(uuid.uuid4()), str(uuid.uuid4())
    instances = objects.InstanceList(objects=[
        objects.Instance(uuid=i1, host='compute-2', node='compute-2', vcpus=1, memory_mb=512),
        objects.Instance(uuid=i2, host='compute-2', node='compute-2', vcpus=1, memory_mb=512),
    ])
    qc.update_instance_info(admin, 'compute-2', instances)
    print('casts: first step sent', flush=True)
    sys.stdin.readline()
    qc.delete_aggregate(admin, agg2)
    qc.delete_instance_info(admin, 'compute-2', i1)
    qc.sync_instance_info(admin, 'compute-1', [str(uuid.uuid4()) for _ in range(3)])
    results['casts'] = 'sent'
    # A long call: the slow host takes longer than rpc_response_timeout (the call monitor's
    # limit); the scheduler's heartbeats keep the call alive.
    CONF.set_override('rpc_response_timeout', 2)
    results['select_slow'] = select(qc, ctxt, 1, small, az='slow')
    print(json.dumps(results))


if __name__ == '__main__':
    main()
