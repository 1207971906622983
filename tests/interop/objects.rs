//! The `VersionedObject` derive against real oslo.versionedobjects (`py/objects.py`): oslo's
//! primitives read here, ours read by oslo, backports equal to oslo's `obj_make_compatible`.

// Helpers outside `#[test]` fns report by panicking.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use rpc_runtime::object::{self, Backport};
use rpc_runtime::{Version, VersionedObject};
use serde_json::{Value, json};

use super::{python_with_objects, script};

#[derive(Debug, Clone, PartialEq, VersionedObject)]
#[object(name = "Limits", namespace = "nova", version = "1.0")]
struct Limits {
    #[object(nullable)]
    vcpu: Option<u64>,
    #[object(nullable)]
    memory_mb: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, VersionedObject)]
#[object(name = "Host", namespace = "nova", version = "1.2")]
struct Host {
    name: String,
    limits: Option<Limits>,
    tags: Vec<Limits>,
    #[since("1.1")]
    #[object(nullable)]
    zone: Option<String>,
    #[since("1.2")]
    #[object(default)]
    weight: u64,
}

fn host() -> Host {
    Host {
        name: "compute-1".into(),
        limits: Some(Limits {
            vcpu: Some(8),
            memory_mb: None,
        }),
        tags: vec![Limits {
            vcpu: None,
            memory_mb: Some(1),
        }],
        zone: Some("east".into()),
        weight: 3,
    }
}

/// A primitive without `changes` (a sender may omit them; oslo's order varies).
fn without_changes(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.ends_with(".changes"))
                .map(|(k, v)| (k.clone(), without_changes(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_changes).collect()),
        other => other.clone(),
    }
}

fn oslo(args: &[&str], stdin: Option<&Value>) -> Option<Value> {
    let python = python_with_objects()?;
    let mut child = Command::new(python)
        .arg(script("objects.py"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).unwrap())
}

#[test]
fn oslo_primitives_equal_ours_and_read_back() {
    let Some(emitted) = oslo(&["emit"], None) else {
        return;
    };
    assert_eq!(
        without_changes(&emitted["full"]),
        object::to_primitive(&host()).unwrap()
    );
    for (key, version) in [
        ("at_1_0", Version::new(1, 0)),
        ("at_1_1", Version::new(1, 1)),
    ] {
        let ours = serde_json::to_value(Backport::new(&host(), version)).unwrap();
        assert_eq!(without_changes(&emitted[key]), ours, "{key}");
    }
    let full: Host = object::from_primitive(&emitted["full"]).unwrap();
    assert_eq!(full, host());
    let old: Host = object::from_primitive(&emitted["at_1_0"]).unwrap();
    assert_eq!((old.zone, old.weight), (None, 0));
    let sparse: Host = object::from_primitive(&emitted["sparse"]).unwrap();
    assert_eq!(
        (sparse.name.as_str(), sparse.limits, sparse.zone),
        ("compute-2", None, None)
    );
}

#[test]
fn oslo_reads_ours_including_backports_and_refuses_what_it_should() {
    let mut newer = object::to_primitive(&host()).unwrap();
    newer["nova_object.version"] = json!("1.3");
    let mut other_major = object::to_primitive(&host()).unwrap();
    other_major["nova_object.version"] = json!("2.0");
    let mut unset = host();
    unset.limits = None;
    let ours = json!([
        object::to_primitive(&host()).unwrap(),
        object::to_primitive_at(&host(), Version::new(1, 0)).unwrap(),
        object::to_primitive(&unset).unwrap(),
        newer,
        other_major,
    ]);
    let Some(read) = oslo(&["read"], Some(&ours)) else {
        return;
    };
    assert_eq!(
        read[0],
        json!({"version": "1.2", "set": {
            "name": "compute-1", "limits": {"vcpu": 8, "memory_mb": null},
            "tags": [{"vcpu": null, "memory_mb": 1}], "zone": "east", "weight": 3
        }})
    );
    assert_eq!(
        read[1]["set"],
        json!({"name": "compute-1", "limits": {"vcpu": 8, "memory_mb": null},
               "tags": [{"vcpu": null, "memory_mb": 1}]})
    );
    assert!(read[2]["set"].get("limits").is_none(), "{}", read[2]);
    assert_eq!(read[3]["error"], "IncompatibleObjectVersion");
    assert_eq!(read[4]["error"], "IncompatibleObjectVersion");
    assert_eq!(Host::VERSION, Version::new(1, 2));
}
