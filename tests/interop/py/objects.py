"""Real oslo.versionedobjects on the other side of the Rust `VersionedObject` derive.

`objects.py emit`: prints one JSON object of primitives made by oslo (a full Host 1.2, the same
backported to 1.0 and 1.1, one with unset fields).
`objects.py read`: reads a JSON list of primitives on stdin, loads each with obj_from_primitive
and prints, per primitive, either {"version": ..., "set": {field: value}} or {"error": class}.
"""
import json
import sys

from oslo_versionedobjects import base, fields


class NovaObject(base.VersionedObject):
    OBJ_PROJECT_NAMESPACE = 'nova'
    OBJ_SERIAL_NAMESPACE = 'nova_object'


@base.VersionedObjectRegistry.register
class Limits(NovaObject):
    VERSION = '1.0'
    fields = {
        'vcpu': fields.IntegerField(nullable=True),
        'memory_mb': fields.IntegerField(nullable=True),
    }


@base.VersionedObjectRegistry.register
class Host(NovaObject):
    VERSION = '1.2'
    fields = {
        'name': fields.StringField(),
        'limits': fields.ObjectField('Limits', nullable=True),
        'tags': fields.ListOfObjectsField('Limits'),
        'zone': fields.StringField(nullable=True),
        'weight': fields.IntegerField(),
    }
    obj_relationships = {'limits': [('1.0', '1.0')], 'tags': [('1.0', '1.0')]}

    def obj_make_compatible(self, primitive, target_version):
        super().obj_make_compatible(primitive, target_version)
        major, minor = (int(p) for p in target_version.split('.')[:2])
        if (major, minor) < (1, 2):
            primitive.pop('weight', None)
        if (major, minor) < (1, 1):
            primitive.pop('zone', None)


def host():
    return Host(name='compute-1', limits=Limits(vcpu=8, memory_mb=None),
                tags=[Limits(vcpu=None, memory_mb=1)], zone='east', weight=3)


def plain(value):
    if isinstance(value, base.VersionedObject):
        return {f: plain(getattr(value, f)) for f in value.fields if value.obj_attr_is_set(f)}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def main():
    if sys.argv[1] == 'emit':
        sparse = Host(name='compute-2', tags=[])
        print(json.dumps({
            'full': host().obj_to_primitive(),
            'at_1_0': host().obj_to_primitive(target_version='1.0'),
            'at_1_1': host().obj_to_primitive(target_version='1.1'),
            'sparse': sparse.obj_to_primitive(),
        }))
    else:
        results = []
        for primitive in json.load(sys.stdin):
            try:
                obj = Host.obj_from_primitive(primitive)
                results.append({'version': obj.VERSION, 'set': plain(obj)})
            except Exception as error:  # the class name is what the test checks
                results.append({'error': type(error).__name__})
        print(json.dumps(results))


if __name__ == '__main__':
    main()
