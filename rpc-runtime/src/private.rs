//! Glue for code that `#[rpc_endpoint]` generates.
//!
//! /!\ WARNING: this is *not* a stable API! /!\ It is public only so generated code can reach it,
//! and may change in any release. Each piece is small and delegates to the documented modules.

use std::borrow::Cow;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use serde;
pub use serde_json;

use crate::client::Client;
use crate::context::Context;
use crate::envelope::{Args, JsonText};
use crate::error::{ApplicationError, CallError, RemoteError, RpcError};
pub use crate::transport::BoxFuture;
use crate::version::Version;

/// A type that can cross the wire as an argument or a result.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot cross the wire as an RPC argument or result",
    label = "RPC arguments and results must implement serde's `Serialize` and `Deserialize`",
    note = "derive them: `#[derive(serde::Serialize, serde::Deserialize)]`"
)]
pub trait WireType: Serialize + DeserializeOwned {}

impl<T: Serialize + DeserializeOwned> WireType for T {}

/// Proof that `T` crosses the wire, carrying its codec. Made only where `T: WireType` holds, so a
/// type that is not serde gives one error, at the spot generated code makes the proof (the user's
/// type), instead of one per use.
pub struct Wire<T> {
    encode: fn(&T, &mut Vec<u8>) -> serde_json::Result<()>,
    to_json: fn(&T) -> serde_json::Result<JsonText>,
    decode: fn(&str) -> serde_json::Result<T>,
}

impl<T> Clone for Wire<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Wire<T> {}

impl<T> fmt::Debug for Wire<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Wire")
    }
}

impl<T: WireType> Wire<T> {
    /// The codec of `T`.
    pub fn new() -> Self {
        Self {
            encode: |value, out| serde_json::to_writer(out, value),
            to_json: |value| JsonText::from_serialize(value),
            decode: |text| serde_json::from_str(text),
        }
    }
}

impl<T: WireType> Default for Wire<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The codec of `T`; fails to compile, with our message at the user's type, when `T` is not a
/// wire type.
pub fn wire<T: WireType>() -> Wire<T> {
    Wire::new()
}

/// The conversions of `E`; fails to compile, with our message at the user's type, when `E` is not
/// an application error.
pub fn fallible<E: ApplicationError>() -> Fallible<E> {
    Fallible::new()
}

/// Proof that `E` is an application error, carrying its conversions (see [`Wire`]).
pub struct Fallible<E> {
    encode: fn(&E) -> RemoteError,
    decode: fn(RemoteError) -> Result<E, RemoteError>,
}

impl<E> Clone for Fallible<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E> Copy for Fallible<E> {}

impl<E> fmt::Debug for Fallible<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fallible")
    }
}

impl<E: ApplicationError> Fallible<E> {
    /// The conversions of `E`.
    pub fn new() -> Self {
        Self {
            encode: RemoteError::from_application,
            decode: RemoteError::into_application,
        }
    }
}

impl<E: ApplicationError> Default for Fallible<E> {
    fn default() -> Self {
        Self::new()
    }
}

/// One request being built by a generated client method: the method, the version it needs and its
/// arguments.
pub struct Call {
    method: &'static str,
    version: Version,
    args: Vec<u8>,
    error: Option<serde_json::Error>,
    objects: Option<std::sync::Arc<crate::object::ObjectVersions>>,
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("method", &self.method)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Call {
    /// Starts a call to `method`, which exists since `version`.
    pub fn new(method: &'static str, version: Version) -> Self {
        let mut args = Vec::with_capacity(128);
        args.push(b'{');
        Self {
            method,
            version,
            args,
            error: None,
            objects: None,
        }
    }

    /// Encodes versioned objects at the versions `client` was prepared with, if any.
    #[must_use]
    pub fn for_client(mut self, client: &Client) -> Self {
        self.objects = client.object_versions().cloned();
        self
    }

    /// Adds an argument.
    pub fn arg<T>(&mut self, name: &str, value: &T, wire: Wire<T>) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        if self.args.len() > 1 {
            self.args.push(b',');
        }
        let args = &mut self.args;
        let encoded = serde_json::to_writer(&mut *args, name).and_then(|()| {
            args.push(b':');
            match &self.objects {
                None => (wire.encode)(value, args),
                Some(versions) => {
                    crate::object::encoding_with(versions, || (wire.encode)(value, args))
                }
            }
        });
        if let Err(error) = encoded {
            self.error = Some(error);
        }
        self
    }

    /// Adds an argument that exists since `since`: a `Some` raises the call's version to `since`,
    /// a `None` is left out so older servers can take the call.
    pub fn arg_since<T>(
        &mut self,
        name: &str,
        value: &Option<T>,
        since: Version,
        wire: Wire<Option<T>>,
    ) -> &mut Self {
        if value.is_some() {
            if since > self.version {
                self.version = since;
            }
            self.arg(name, value, wire);
        }
        self
    }

    /// The version this call will be sent at.
    pub fn version(&self) -> &Version {
        &self.version
    }

    fn finish(mut self) -> Result<(&'static str, Version, Args), RpcError> {
        if let Some(source) = self.error {
            return Err(RpcError::Encode {
                method: self.method.to_owned(),
                source,
            });
        }
        self.args.push(b'}');
        // serde_json writes UTF-8 only; the check cannot fail.
        let text = String::from_utf8(self.args).map_err(|e| RpcError::Encode {
            method: self.method.to_owned(),
            source: serde::ser::Error::custom(e),
        })?;
        Ok((self.method, self.version, Args::from_trusted(text)))
    }
}

/// Sends a call whose method returns `R` (no typed error).
pub async fn call<R>(
    client: &Client,
    ctx: &Context,
    call: Call,
    result: Wire<R>,
) -> Result<R, RpcError> {
    let (method, version, args) = call.finish()?;
    let raw = client.call_args(ctx, method, Some(version), args).await?;
    decode_result(method, &raw, result)
}

/// Sends a call whose method returns `Result<R, E>`.
pub async fn call_fallible<R, E>(
    client: &Client,
    ctx: &Context,
    call: Call,
    result: Wire<R>,
    error: Fallible<E>,
) -> Result<R, CallError<E>> {
    let (method, version, args) = call.finish()?;
    match client.call_args(ctx, method, Some(version), args).await {
        Ok(raw) => Ok(decode_result(method, &raw, result)?),
        Err(RpcError::Remote(failure)) => match (error.decode)(*failure) {
            Ok(typed) => Err(CallError::Application(typed)),
            Err(failure) => Err(CallError::Rpc(RpcError::Remote(Box::new(failure)))),
        },
        Err(other) => Err(CallError::Rpc(other)),
    }
}

fn decode_result<R>(method: &str, raw: &JsonText, wire: Wire<R>) -> Result<R, RpcError> {
    (wire.decode)(raw.as_str()).map_err(|source| RpcError::Decode {
        method: method.to_owned(),
        source,
    })
}

/// Sends a cast.
pub async fn cast(client: &Client, ctx: &Context, call: Call) -> Result<(), RpcError> {
    let (method, version, args) = call.finish()?;
    client.cast_args(ctx, method, Some(version), args).await
}

/// Reads named arguments on the server side.
pub struct ArgsReader<'a> {
    method: &'a str,
    entries: Entries<'a>,
}

/// Named arguments as read: each name with its raw value, taken (`None`) once read.
type Entries<'a> = Vec<(Cow<'a, str>, Option<&'a RawValue>)>;

impl fmt::Debug for ArgsReader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArgsReader")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl<'a> ArgsReader<'a> {
    /// Parses the argument object of a call to `method`.
    ///
    /// # Errors
    ///
    /// An invalid-arguments failure when `args` is not an object.
    pub fn new(method: &'a str, args: &'a Args) -> Result<Self, RemoteError> {
        #[derive(Deserialize)]
        struct Parsed<'a>(#[serde(borrow, deserialize_with = "borrowed_entries")] Entries<'a>);
        fn borrowed_entries<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Entries<'de>, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Entries<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object of named arguments")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Self::Value, A::Error> {
                    let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(4));
                    while let Some(key) = map.next_key::<crate::envelope::Key<'de>>()? {
                        let value: &'de RawValue = map.next_value()?;
                        entries.push((key.0, Some(value)));
                    }
                    Ok(entries)
                }
            }
            d.deserialize_map(V)
        }
        let Parsed(entries) = serde_json::from_str(args.as_json())
            .map_err(|e| RemoteError::invalid_arguments(method, e))?;
        Ok(Self { method, entries })
    }

    /// Takes the argument `name`. A missing argument reads as JSON `null`, so an `Option` is `None`
    /// and anything else is an error that names it.
    ///
    /// # Errors
    ///
    /// An invalid-arguments failure naming the argument and what is wrong.
    pub fn take<T>(&mut self, name: &str, wire: Wire<T>) -> Result<T, RemoteError> {
        let raw = self
            .entries
            .iter_mut()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.take());
        match raw {
            Some(raw) => (wire.decode)(raw.get()).map_err(|e| {
                RemoteError::invalid_arguments(self.method, format!("argument `{name}`: {e}"))
            }),
            None => (wire.decode)("null").map_err(|_| {
                RemoteError::invalid_arguments(self.method, format!("missing argument `{name}`"))
            }),
        }
    }

    /// Checks that no argument was left unread: a name the method does not have is an error, as
    /// Python's `TypeError` for an unexpected keyword argument.
    ///
    /// # Errors
    ///
    /// An invalid-arguments failure naming the unexpected arguments.
    pub fn finish(self) -> Result<(), RemoteError> {
        let unexpected: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, value)| value.is_some())
            .map(|(key, _)| format!("`{key}`"))
            .collect();
        if unexpected.is_empty() {
            Ok(())
        } else {
            Err(RemoteError::invalid_arguments(
                self.method,
                format!("unexpected argument {}", unexpected.join(", ")),
            ))
        }
    }
}

/// Encodes a method's plain result.
///
/// # Errors
///
/// A failure when the value does not serialize.
pub fn encode_ok<T>(value: &T, wire: Wire<T>) -> Result<JsonText, RemoteError> {
    (wire.to_json)(value).map_err(|e| {
        RemoteError::new(
            "EncodeError",
            crate::error::RUNTIME_MODULE,
            format!("could not encode the result: {e}"),
        )
    })
}

/// Encodes a method's `Result<T, E>`: the value, or the typed error as an oslo failure.
///
/// # Errors
///
/// The typed error as a failure, or a failure when the value does not serialize.
pub fn encode_result<T, E>(
    result: Result<T, E>,
    wire: Wire<T>,
    error: Fallible<E>,
) -> Result<JsonText, RemoteError> {
    match result {
        Ok(value) => encode_ok(&value, wire),
        Err(e) => Err((error.encode)(&e)),
    }
}

/// The failure for a method that the endpoint does not have (never reached through the
/// dispatcher, which checks the descriptor first).
pub fn no_such_method(method: &str) -> RemoteError {
    RemoteError::no_such_method(method)
}

/// Implemented by the version markers that have a method: `Cap: Has<select_since_4_2>` is what a
/// capped client's method requires. Lives here (not in generated code) so its diagnostic works
/// in `#![no_implicit_prelude]` crates too.
#[diagnostic::on_unimplemented(
    message = "`{M}`: this method needs a newer RPC API than the client's cap, {Self}",
    label = "not in the API at the client's cap",
    note = "raise the cap with `.capped::<…_versions::V…>()` to the version in the method's name, or call it from a client that may send that version"
)]
pub trait Has<M> {}

/// A periodic task's error, kept for the log line (its `Display`).
pub fn periodic_failed<E: std::fmt::Display>(error: &E) -> crate::endpoint::PeriodicTaskError {
    crate::endpoint::PeriodicTaskError::Failed(error.to_string())
}

/// The filter `#[notification_endpoint(…)]` describes. The macro checked every expression; one
/// that still fails to compile (a construct the runtime's engine lacks) makes a filter that lets
/// nothing through, and says so, rather than one that lets everything through.
pub fn notification_filter(
    event_type: Option<&str>,
    publisher_id: Option<&str>,
    context: &[(&str, &str)],
    payload: &[(&str, &str)],
) -> crate::notify::NotificationFilter {
    use crate::notify::NotificationFilter;
    let build = || -> Result<NotificationFilter, regex::Error> {
        let mut filter = NotificationFilter::new();
        if let Some(pattern) = event_type {
            filter = filter.event_type(pattern)?;
        }
        if let Some(pattern) = publisher_id {
            filter = filter.publisher_id(pattern)?;
        }
        for (key, pattern) in context {
            filter = filter.context(key, pattern)?;
        }
        for (key, pattern) in payload {
            filter = filter.payload(key, pattern)?;
        }
        Ok(filter)
    };
    build().unwrap_or_else(|error| {
        tracing::error!(%error, "a notification filter does not compile; it lets nothing through");
        NotificationFilter::nothing()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn call_writes_arguments_and_raises_version_only_for_some() {
        let mut call = Call::new("select", Version::new(4, 0));
        call.arg("spec", &json!({"vcpus": 1}), Wire::new())
            .arg_since::<Vec<u32>>("uuids", &None, Version::new(4, 2), Wire::new());
        assert_eq!(call.version(), &Version::new(4, 0));
        call.arg_since(
            "hint",
            &Some("x".to_owned()),
            Version::new(4, 1),
            Wire::new(),
        );
        let (_, version, args) = call.finish().unwrap();
        assert_eq!(version, Version::new(4, 1));
        assert_eq!(args.as_json(), r#"{"spec":{"vcpus":1},"hint":"x"}"#);
    }

    #[test]
    fn reader_takes_named_arguments_and_reports_problems() {
        let args = Args::from_serialize(&json!({"a": 1, "b": "x", "c\"q": 2})).unwrap();
        let mut reader = ArgsReader::new("m", &args).unwrap();
        assert_eq!(reader.take::<i64>("a", Wire::new()).unwrap(), 1);
        assert_eq!(
            reader.take::<Option<i64>>("missing", Wire::new()).unwrap(),
            None
        );
        let err = reader.take::<i64>("also_missing", Wire::new()).unwrap_err();
        assert_eq!(
            err.message,
            "invalid arguments for method `m`: missing argument `also_missing`"
        );
        let err = reader.take::<i64>("b", Wire::new()).unwrap_err();
        assert!(
            err.message.contains("argument `b`: invalid type"),
            "{}",
            err.message
        );
        let err = reader.finish().unwrap_err();
        assert!(
            err.message.contains("unexpected argument `c\"q`"),
            "{}",
            err.message
        );
    }
}
