//! Versioned objects in oslo.versionedobjects' primitive format, as nova sends them:
//!
//! ```json
//! {"nova_object.name": "Selection", "nova_object.namespace": "nova", "nova_object.version": "1.1",
//!  "nova_object.data": {"service_host": "compute-1", …}, "nova_object.changes": ["service_host"]}
//! ```
//!
//! Derive [`VersionedObject`] with `#[derive(VersionedObject)]` (the grammar is on the derive,
//! [`crate::VersionedObject`]); the derive also implements serde's `Serialize` (the primitive at
//! the object's own version) and `Deserialize`, so an object is an RPC argument or result like any
//! other and nests in other objects and in lists. [`Backport`] sends one at an older version;
//! [`ObjectVersions`] on a client sends the objects it names at older versions.
//!
//! Decoding follows oslo: the name and namespace must match; the version must have the same major
//! and a minor no newer than this object's (`X.Y.Z` reads as `X.Y`); unknown data keys are ignored;
//! a missing (or null) field is `None` when its type is an `Option` (or its default, with
//! `#[object(default)]`),
//! and an error otherwise. `changes` is ignored on receipt and not sent.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::version::Version;

/// A struct with a name, a namespace and a version, sent as an oslo primitive. Implemented by
/// `#[derive(VersionedObject)]`; the methods are its generated field codec.
pub trait VersionedObject: Sized {
    /// The registered class name (`Selection`).
    const NAME: &'static str;
    /// The project namespace (`nova`): `<…>.namespace` must equal it.
    const NAMESPACE: &'static str;
    /// The key prefix (`nova_object` gives `nova_object.name`, …).
    const SERIAL_NAMESPACE: &'static str;
    /// This object's version.
    const VERSION: Version;

    /// The fields set at `target` (a version this object knows: same major, not newer), each
    /// encoded; newer fields are left out (oslo's `obj_make_compatible`).
    ///
    /// # Errors
    ///
    /// A field that serde cannot encode.
    fn encode_data(&self, target: Version) -> Result<Map<String, Value>, ObjectError>;

    /// The object from its data; `version` is the primitive's (already checked compatible).
    ///
    /// # Errors
    ///
    /// A field missing or of the wrong type.
    fn decode_data(data: &Map<String, Value>, version: Version) -> Result<Self, ObjectError>;
}

/// Why an object could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// The value is not a primitive of this kind of object at all.
    #[error(
        "expected a {name} object primitive (`{prefix}.name`, `.namespace`, `.version`, `.data`): {reason}"
    )]
    NotAPrimitive {
        /// The expected object name.
        name: &'static str,
        /// The expected key prefix.
        prefix: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The primitive names another object or namespace.
    #[error("expected object {expected_namespace}.{expected}, got {namespace}.{name}")]
    WrongObject {
        /// The expected name.
        expected: &'static str,
        /// The expected namespace.
        expected_namespace: &'static str,
        /// The name found.
        name: String,
        /// The namespace found.
        namespace: String,
    },
    /// The primitive's version cannot be read by this object (another major, or a newer minor).
    #[error("{name} {found} is not compatible with the {name} {supported} known here")]
    IncompatibleVersion {
        /// The object.
        name: &'static str,
        /// The primitive's version.
        found: String,
        /// This object's version.
        supported: Version,
    },
    /// A backport to a version this object cannot produce (another major, or newer).
    #[error("{name} cannot be sent at version {target}: it is at {current}")]
    BadTarget {
        /// The object.
        name: &'static str,
        /// The version asked for.
        target: Version,
        /// This object's version.
        current: Version,
    },
    /// A field that is not optional is missing.
    #[error("{name} {version}: field `{field}` is missing")]
    MissingField {
        /// The object.
        name: &'static str,
        /// The primitive's version.
        version: Version,
        /// The field.
        field: &'static str,
    },
    /// A field did not encode or decode.
    #[error("{name}: field `{field}`: {source}")]
    Field {
        /// The object.
        name: &'static str,
        /// The field.
        field: &'static str,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

/// `obj` as a primitive at its own version.
///
/// # Errors
///
/// A field that serde cannot encode.
pub fn to_primitive<T: VersionedObject>(obj: &T) -> Result<Value, ObjectError> {
    to_primitive_at(obj, T::VERSION)
}

/// `obj` as a primitive at `target`, leaving out the fields newer than it.
///
/// # Errors
///
/// [`ObjectError::BadTarget`] for another major or a version newer than the object's.
pub fn to_primitive_at<T: VersionedObject>(obj: &T, target: Version) -> Result<Value, ObjectError> {
    if target.major() != T::VERSION.major() || target > T::VERSION {
        return Err(ObjectError::BadTarget {
            name: T::NAME,
            target,
            current: T::VERSION,
        });
    }
    let data = obj.encode_data(target)?;
    let prefix = T::SERIAL_NAMESPACE;
    let mut primitive = Map::with_capacity(4);
    primitive.insert(format!("{prefix}.name"), Value::from(T::NAME));
    primitive.insert(format!("{prefix}.namespace"), Value::from(T::NAMESPACE));
    primitive.insert(format!("{prefix}.version"), Value::from(target.to_string()));
    primitive.insert(format!("{prefix}.data"), Value::Object(data));
    Ok(Value::Object(primitive))
}

/// The object a primitive holds.
///
/// # Errors
///
/// Not a primitive, another object or namespace, an incompatible version, a bad field.
pub fn from_primitive<T: VersionedObject>(value: &Value) -> Result<T, ObjectError> {
    let prefix = T::SERIAL_NAMESPACE;
    let not = |reason: String| ObjectError::NotAPrimitive {
        name: T::NAME,
        prefix,
        reason,
    };
    let Value::Object(primitive) = value else {
        return Err(not(format!("got {}", kind(value))));
    };
    let text = |key: &str| -> Result<&str, ObjectError> {
        let full = format!("{prefix}.{key}");
        match primitive.get(&full) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(not(format!("`{full}` is {}", kind(other)))),
            None => Err(not(format!("`{full}` is missing"))),
        }
    };
    let (name, namespace) = (text("name")?, text("namespace")?);
    if name != T::NAME || namespace != T::NAMESPACE {
        return Err(ObjectError::WrongObject {
            expected: T::NAME,
            expected_namespace: T::NAMESPACE,
            name: name.to_owned(),
            namespace: namespace.to_owned(),
        });
    }
    let found = text("version")?;
    let version = major_minor(found)
        .filter(|v| v.major() == T::VERSION.major() && *v <= T::VERSION)
        .ok_or_else(|| ObjectError::IncompatibleVersion {
            name: T::NAME,
            found: found.to_owned(),
            supported: T::VERSION,
        })?;
    let data_key = format!("{prefix}.data");
    match primitive.get(&data_key) {
        Some(Value::Object(data)) => T::decode_data(data, version),
        Some(other) => Err(not(format!("`{data_key}` is {}", kind(other)))),
        None => Err(not(format!("`{data_key}` is missing"))),
    }
}

/// `X.Y` of `X.Y` or `X.Y.Z` (oslo strips the patch level).
fn major_minor(text: &str) -> Option<Version> {
    let mut parts = text.splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    match parts.next() {
        Some(patch) if patch.parse::<u32>().is_err() => None,
        _ => Some(Version::new(major, minor)),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The versions to send objects at, by object name (oslo's version manifest): set on a client
/// with [`CallOptions::object_versions`](crate::CallOptions::object_versions), so a client capped
/// for old servers sends objects they can read.
///
/// ```
/// use rpc_runtime::object::ObjectVersions;
/// use rpc_runtime::{CallOptions, Version};
///
/// // What a Kilo-era scheduler knows.
/// let kilo = ObjectVersions::new().with("RequestSpec", Version::new(1, 5));
/// let options = CallOptions::new().version_cap(Version::new(4, 2)).object_versions(kilo);
/// # drop(options);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectVersions(BTreeMap<String, Version>);

impl ObjectVersions {
    /// None named: every object at its own version.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends objects named `name` at `version`.
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, version: Version) -> Self {
        self.0.insert(name.into(), version);
        self
    }

    /// The version for objects named `name`, if set.
    pub fn get(&self, name: &str) -> Option<Version> {
        self.0.get(name).copied()
    }
}

thread_local! {
    /// The manifest of the client whose arguments are being encoded on this thread.
    static SENDING: RefCell<Option<Arc<ObjectVersions>>> = const { RefCell::new(None) };
}

/// Runs `encode` (synchronous serialization) with `versions` in force for the objects it writes.
pub(crate) fn encoding_with<R>(versions: &Arc<ObjectVersions>, encode: impl FnOnce() -> R) -> R {
    let previous = SENDING.with(|s| s.replace(Some(Arc::clone(versions))));
    let result = encode();
    SENDING.with(|s| *s.borrow_mut() = previous);
    result
}

/// The version to send `T` at now: the sending client's manifest's, else `T`'s own.
pub fn send_version<T: VersionedObject>() -> Version {
    SENDING
        .with(|s| s.borrow().as_ref().and_then(|m| m.get(T::NAME)))
        .unwrap_or(T::VERSION)
}

/// An object sent at an older version: `Backport::new(&spec, Version::new(1, 10))` serializes as
/// the 1.10 primitive (newer fields left out), for a peer that knows only that version.
pub struct Backport<'a, T> {
    object: &'a T,
    version: Version,
}

impl<'a, T: VersionedObject> Backport<'a, T> {
    /// `object` to be sent at `version`.
    pub fn new(object: &'a T, version: Version) -> Self {
        Self { object, version }
    }
}

impl<T: VersionedObject> Serialize for Backport<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        to_primitive_at(self.object, self.version)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<T> fmt::Debug for Backport<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backport")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Helpers for the derive's generated code.
#[doc(hidden)]
pub mod codec {
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::{Map, Value};

    use super::ObjectError;
    use crate::version::Version;

    /// Encodes one field into `data`; a `None` (null) is left out unless `keep_null`.
    pub fn put<T: Serialize>(
        data: &mut Map<String, Value>,
        object: &'static str,
        field: &'static str,
        value: &T,
        keep_null: bool,
    ) -> Result<(), ObjectError> {
        let value = serde_json::to_value(value).map_err(|source| ObjectError::Field {
            name: object,
            field,
            source,
        })?;
        if keep_null || !value.is_null() {
            data.insert(field.to_owned(), value);
        }
        Ok(())
    }

    /// Decodes one field; `missing` gives its value when absent or null (`None` when it must be
    /// there).
    pub fn take<T: DeserializeOwned>(
        data: &Map<String, Value>,
        object: &'static str,
        version: Version,
        field: &'static str,
        missing: Option<fn() -> T>,
    ) -> Result<T, ObjectError> {
        match (data.get(field), missing) {
            // A nullable field set to None, where the type has a value for that.
            (Some(Value::Null), Some(make)) | (None, Some(make)) => Ok(make()),
            (Some(value), _) => T::deserialize(value).map_err(|source| ObjectError::Field {
                name: object,
                field,
                source,
            }),
            (None, None) => Err(ObjectError::MissingField {
                name: object,
                version,
                field,
            }),
        }
    }
}
