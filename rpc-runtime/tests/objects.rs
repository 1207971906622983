//! Versioned objects: the primitive format, backports, what decoding accepts and refuses, and
//! objects as RPC arguments and results over `memory://`.

use std::sync::Arc;

use rpc_runtime::object::{self, Backport, ObjectError, ObjectVersions};
use rpc_runtime::{
    CallOptions, Context, RpcServer, ServerConfig, Version, VersionedObject, rpc_endpoint,
};
use serde_json::{Value, json};

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
    zone: Option<String>,
    #[since("1.2")]
    #[object(default)]
    weight: u32,
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

#[test]
fn an_object_is_its_primitive_with_nested_objects_and_lists() {
    let primitive = serde_json::to_value(host()).unwrap();
    assert_eq!(
        primitive,
        json!({
            "nova_object.name": "Host",
            "nova_object.namespace": "nova",
            "nova_object.version": "1.2",
            "nova_object.data": {
                "name": "compute-1",
                "limits": {
                    "nova_object.name": "Limits", "nova_object.namespace": "nova",
                    "nova_object.version": "1.0",
                    "nova_object.data": {"vcpu": 8, "memory_mb": null}
                },
                "tags": [{
                    "nova_object.name": "Limits", "nova_object.namespace": "nova",
                    "nova_object.version": "1.0",
                    "nova_object.data": {"vcpu": null, "memory_mb": 1}
                }],
                "zone": "east",
                "weight": 3
            }
        })
    );
    let back: Host = serde_json::from_value(primitive).unwrap();
    assert_eq!(back, host());
}

#[test]
fn an_unset_optional_field_is_left_out_and_reads_back_as_none() {
    let mut unset = host();
    unset.limits = None;
    unset.zone = None;
    let primitive = object::to_primitive(&unset).unwrap();
    let data = primitive["nova_object.data"].as_object().unwrap();
    assert!(
        !data.contains_key("limits") && !data.contains_key("zone"),
        "{data:?}"
    );
    assert_eq!(object::from_primitive::<Host>(&primitive).unwrap(), unset);
}

#[test]
fn a_backport_leaves_out_newer_fields_and_an_old_primitive_reads_with_defaults() {
    let at_1_0 = serde_json::to_value(Backport::new(&host(), Version::new(1, 0))).unwrap();
    assert_eq!(at_1_0["nova_object.version"], "1.0");
    let data = at_1_0["nova_object.data"].as_object().unwrap();
    let mut keys: Vec<&str> = data.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["limits", "name", "tags"]);
    let read: Host = object::from_primitive(&at_1_0).unwrap();
    assert_eq!((read.zone, read.weight), (None, 0));

    let at_1_1 = object::to_primitive_at(&host(), Version::new(1, 1)).unwrap();
    assert_eq!(at_1_1["nova_object.data"]["zone"], "east");
    assert!(at_1_1["nova_object.data"].get("weight").is_none());

    for bad in [Version::new(1, 3), Version::new(2, 0), Version::new(0, 9)] {
        assert!(
            matches!(
                object::to_primitive_at(&host(), bad),
                Err(ObjectError::BadTarget { .. })
            ),
            "{bad}"
        );
    }
}

fn primitive(version: &str, data: Value) -> Value {
    json!({
        "nova_object.name": "Host", "nova_object.namespace": "nova",
        "nova_object.version": version, "nova_object.data": data,
        "nova_object.changes": ["name", "unknown"]
    })
}

#[test]
fn decoding_ignores_unknown_keys_and_changes_and_accepts_a_patch_level() {
    let read: Host = object::from_primitive(&primitive(
        "1.1.5",
        json!({"name": "h", "tags": [], "flavor_of_the_day": 1}),
    ))
    .unwrap();
    assert_eq!(read.name, "h");
    assert_eq!((read.limits, read.zone, read.weight), (None, None, 0));
}

#[test]
fn decoding_refuses_what_it_cannot_read_with_a_clear_error() {
    let cases: Vec<(Value, &str)> = vec![
        (
            primitive("2.0", json!({"name": "h", "tags": []})),
            "Host 2.0 is not compatible with the Host 1.2",
        ),
        (
            primitive("1.3", json!({"name": "h", "tags": []})),
            "Host 1.3 is not compatible",
        ),
        (
            primitive("one", json!({"name": "h", "tags": []})),
            "Host one is not compatible",
        ),
        (
            primitive("1.0", json!({"tags": []})),
            "Host 1.0: field `name` is missing",
        ),
        (
            primitive("1.0", json!({"name": 7, "tags": []})),
            "Host: field `name`: invalid type",
        ),
        (json!([1, 2]), "expected a Host object primitive"),
        (
            json!({"nova_object.name": "Host"}),
            "`nova_object.namespace` is missing",
        ),
        (
            json!({"nova_object.name": "Flavor", "nova_object.namespace": "nova",
                   "nova_object.version": "1.0", "nova_object.data": {}}),
            "expected object nova.Host, got nova.Flavor",
        ),
        (
            json!({"nova_object.name": "Host", "nova_object.namespace": "cinder",
                   "nova_object.version": "1.0", "nova_object.data": {}}),
            "expected object nova.Host, got cinder.Host",
        ),
        (
            json!({"nova_object.name": "Host", "nova_object.namespace": "nova",
                   "nova_object.version": "1.0", "nova_object.data": []}),
            "`nova_object.data` is a list",
        ),
    ];
    for (value, expected) in cases {
        let error = object::from_primitive::<Host>(&value)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(expected),
            "{error:?} should contain {expected:?}"
        );
        // Through serde too (as an RPC argument would be decoded).
        let error = serde_json::from_value::<Host>(value)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(expected),
            "{error:?} should contain {expected:?}"
        );
    }
}

struct Registry;

#[rpc_endpoint(topic = "hosts", version = "1.0")]
impl Registry {
    #[rpc]
    async fn rename(&self, _ctx: &Context, host: Host, name: String) -> Host {
        Host { name, ..host }
    }
}

#[tokio::test]
async fn objects_are_rpc_arguments_and_results() {
    let transport = rpc_runtime::connect("memory://objects-rpc").await.unwrap();
    let server = RpcServer::start(
        Arc::clone(&transport),
        RegistryClient::target().with_server("s"),
        vec![Arc::new(Registry)],
        ServerConfig::default(),
    )
    .await
    .unwrap();
    let renamed = RegistryClient::new(Arc::clone(&transport))
        .rename(&Context::new(), host(), "compute-9".into())
        .await
        .unwrap();
    assert_eq!(
        renamed,
        Host {
            name: "compute-9".into(),
            ..host()
        }
    );

    // A client prepared for old servers sends Host 1.0: the server reads it without the newer
    // fields (and answers at its own version).
    let old = RegistryClient::new(Arc::clone(&transport)).prepare(
        CallOptions::new().object_versions(ObjectVersions::new().with("Host", Version::new(1, 0))),
    );
    let renamed = old
        .rename(&Context::new(), host(), "compute-1".into())
        .await
        .unwrap();
    assert_eq!((renamed.zone, renamed.weight), (None, 0));
    assert_eq!(renamed.limits, host().limits);
    // A version the object cannot be sent at fails before anything is sent.
    let wrong = RegistryClient::new(Arc::clone(&transport)).prepare(
        CallOptions::new().object_versions(ObjectVersions::new().with("Host", Version::new(2, 0))),
    );
    let error = wrong
        .rename(&Context::new(), host(), "x".into())
        .await
        .unwrap_err();
    let why = std::error::Error::source(&error).map(ToString::to_string);
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("Host cannot be sent at version 2.0")),
        "{error}: {why:?}"
    );
    assert_eq!(<Host as VersionedObject>::VERSION, Version::new(1, 2));
    server.stop().await;
}
