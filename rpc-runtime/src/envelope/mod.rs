//! The wire shape of oslo.messaging's RPC messages: the `oslo.version` / `oslo.message` envelope,
//! requests with `_context_*`, `_msg_id`, `_reply_q`, `_unique_id`, and replies with their failure
//! format; and notifications (`notification.rs`), in the same envelope or bare.
//!
//! This is the only module that knows those keys. Every transport, the in-memory one included,
//! sends what [`encode_request`] and [`encode_reply`] produce and reads with [`decode_request`] and
//! [`decode_reply`]. Receivers accept what oslo accepts: any valid JSON, and the legacy message
//! without an envelope.

mod notification;

pub use self::notification::{
    NotificationFormat, OutgoingNotification, Priority, RawNotification, UnknownPriority,
    decode_notification, encode_notification, encode_notification_with, oslo_timestamp,
};

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::context::{Context, ContextValue};
use crate::error::{EnvelopeError, RemoteError};
use crate::version::Version;

/// The envelope version oslo.messaging writes and this framework speaks.
pub const ENVELOPE_VERSION: &str = "2.0";
/// The message key that carries the call's deadline (Unix time in milliseconds). oslo.messaging
/// ignores keys it does not know, so Python peers are unaffected.
pub const DEADLINE_KEY: &str = "_deadline_ms";

const CONTEXT_PREFIX: &str = "_context_";

/// An RPC request as the dispatcher sees it: the method, its named arguments, the namespace and
/// version it needs, and the caller's context.
///
/// A request being sent borrows its method name and context from the caller (no copies); a request
/// read off the wire owns them (`Request<'static>`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Request<'a> {
    /// The method name.
    pub method: Cow<'a, str>,
    /// The keyword arguments, a JSON object.
    pub args: Args,
    /// The endpoint namespace; `None` is the default namespace.
    pub namespace: Option<Cow<'a, str>>,
    /// The minimum API version the server must serve; `None` is sent without a `version` key and
    /// read by servers as `1.0`, as oslo does.
    pub version: Option<Version>,
    /// The caller's context.
    pub context: Cow<'a, Context>,
    /// When the caller stops waiting for the answer.
    pub deadline: Option<SystemTime>,
    /// oslo's call monitor (`_timeout`): the caller fails the call when no heartbeat or reply
    /// comes within this, and the server heartbeats every half of it while the method runs.
    pub monitor_timeout: Option<Duration>,
}

impl<'a> Request<'a> {
    /// Builds a request with an empty argument object.
    pub fn new(method: impl Into<Cow<'a, str>>, context: Context) -> Self {
        Self::with_context(method, Cow::Owned(context))
    }

    /// Builds a request that borrows the caller's context.
    pub fn borrowing(method: impl Into<Cow<'a, str>>, context: &'a Context) -> Self {
        Self::with_context(method, Cow::Borrowed(context))
    }

    fn with_context(method: impl Into<Cow<'a, str>>, context: Cow<'a, Context>) -> Self {
        Self {
            method: method.into(),
            args: Args::empty(),
            namespace: None,
            version: None,
            context,
            deadline: None,
            monitor_timeout: None,
        }
    }

    /// Sets the arguments from any value that serializes as a JSON object.
    ///
    /// # Errors
    ///
    /// Fails when `args` does not serialize, or not as an object.
    pub fn with_args<A: Serialize + ?Sized>(mut self, args: &A) -> Result<Self, serde_json::Error> {
        self.args = Args::from_serialize(args)?;
        Ok(self)
    }
}

/// The keyword arguments of a request: the text of a JSON object, valid by construction.
#[derive(Clone, PartialEq, Eq)]
pub struct Args(Box<str>);

impl Args {
    /// The empty object `{}`.
    pub fn empty() -> Self {
        Self("{}".into())
    }

    /// Serializes a value that must come out as a JSON object.
    ///
    /// # Errors
    ///
    /// Fails when `value` does not serialize, or not as an object.
    pub fn from_serialize<A: Serialize + ?Sized>(value: &A) -> Result<Self, serde_json::Error> {
        let text = serde_json::to_string(value)?;
        if !text.starts_with('{') {
            return Err(de::Error::custom("RPC arguments must be a JSON object"));
        }
        Ok(Self(text.into_boxed_str()))
    }

    /// Wraps text the caller guarantees is a JSON object (written by this crate's own writers).
    pub(crate) fn from_trusted(text: String) -> Self {
        debug_assert!(text.starts_with('{'));
        Self(text.into_boxed_str())
    }

    /// The JSON text.
    pub fn as_json(&self) -> &str {
        &self.0
    }
}

/// JSON text: one valid JSON value (a method's result), written by serde_json or read off the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonText(String);

impl JsonText {
    /// `null`.
    pub fn null() -> Self {
        Self("null".to_owned())
    }

    /// Serializes a value.
    ///
    /// # Errors
    ///
    /// Fails when `value` does not serialize.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::to_string(value).map(Self)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for JsonText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonText({})", self.0)
    }
}

impl fmt::Debug for Args {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Args({})", self.0)
    }
}

/// What a call adds to a request so its reply can find the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRoute {
    /// The call's correlation id (`_msg_id`, 32 hex characters from this framework and oslo).
    pub msg_id: String,
    /// The caller's reply queue (`_reply_q`).
    pub reply_q: Arc<str>,
}

/// A message id as this framework makes them: a v4 UUID, written as 32 lowercase hex characters
/// (oslo's `uuid4().hex`). `Copy`, so ids are made and compared without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId(u128);

impl MessageId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().as_u128())
    }

    /// Reads an id written as 32 hex characters; `None` for anything else (a peer's own scheme).
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 32 {
            return None;
        }
        text.bytes()
            .try_fold(0_u128, |value, b| {
                let digit = match b {
                    b'0'..=b'9' => b - b'0',
                    b'a'..=b'f' => b - b'a' + 10,
                    b'A'..=b'F' => b - b'A' + 10,
                    _ => return None,
                };
                Some(value << 4 | u128::from(digit))
            })
            .map(Self)
    }

    /// The id folded to 64 bits, for hashing and duplicate detection.
    pub(crate) fn fold(self) -> u64 {
        // Both halves are random for a v4 UUID; keep the truncation explicit.
        #[allow(clippy::cast_possible_truncation)]
        let (high, low) = ((self.0 >> 64) as u64, self.0 as u64);
        high ^ low
    }

    /// Writes the id into `buf` and returns it as text.
    pub fn encode(self, buf: &mut [u8; 32]) -> &str {
        uuid::Uuid::from_u128(self.0).simple().encode_lower(buf)
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0; 32];
        f.write_str(self.encode(&mut buf))
    }
}

/// A request read off the wire, with what the transport needs to route and dedupe it.
#[derive(Debug)]
#[non_exhaustive]
pub struct DecodedRequest {
    /// The request.
    pub request: Request<'static>,
    /// Present for a call; absent for a cast.
    pub reply_route: Option<ReplyRoute>,
    /// The message's `_unique_id`, for duplicate detection.
    pub unique_id: Option<String>,
}

/// A request that could not be decoded, with the reply route when it could still be read.
#[derive(Debug)]
#[non_exhaustive]
pub struct RequestDecodeError {
    /// What is wrong.
    pub error: EnvelopeError,
    /// Where to send an error reply, when the message said.
    pub reply_route: Option<ReplyRoute>,
}

/// A reply, a heartbeat, or one part of a multi-part reply.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Reply {
    /// The method's result (`null` for a method with no result, and for heartbeats).
    pub result: Option<JsonText>,
    /// The method's failure.
    pub failure: Option<RemoteError>,
    /// `true` on the last message for a call; `false` on call-monitor heartbeats.
    pub ending: bool,
}

impl Reply {
    /// The final reply carrying a result.
    pub fn result(result: JsonText) -> Self {
        Self {
            result: Some(result),
            failure: None,
            ending: true,
        }
    }

    /// The final reply carrying a failure.
    pub fn failure(failure: RemoteError) -> Self {
        Self {
            result: None,
            failure: Some(failure),
            ending: true,
        }
    }

    /// A call-monitor heartbeat: "still working".
    pub fn heartbeat() -> Self {
        Self {
            result: None,
            failure: None,
            ending: false,
        }
    }
}

/// A fresh `_unique_id` / `_msg_id`: a v4 UUID as 32 lowercase hex characters.
pub fn new_message_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Encodes a request in oslo's 2.0 envelope. `reply_route` is set for calls, which also carry
/// the call-monitor timeout (`_timeout`, `null` when absent).
pub fn encode_request(
    request: &Request<'_>,
    reply_route: Option<&ReplyRoute>,
    unique_id: &str,
) -> Vec<u8> {
    let route = reply_route.map(|route| (route.msg_id.as_str(), &*route.reply_q));
    encode_request_to(request, route, unique_id)
}

/// [`encode_request`] with the reply route as `(msg_id, reply_q)`, borrowed.
pub(crate) fn encode_request_to(
    request: &Request<'_>,
    reply_route: Option<(&str, &str)>,
    unique_id: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(640 + request.args.as_json().len() * 5 / 4);
    write_envelope(&mut out, |w| {
        w.open("method");
        w.string(&request.method)?;
        w.key("args");
        w.raw_json(request.args.as_json());
        if let Some(namespace) = &request.namespace {
            w.key("namespace");
            w.string(namespace)?;
        }
        if let Some(version) = &request.version {
            w.key("version");
            // Digits and dots: nothing to escape.
            w.formatted(format_args!("\\\"{version}\\\""));
        }
        if let Some((msg_id, reply_q)) = reply_route {
            w.key("_msg_id");
            w.string(msg_id)?;
            w.key("_reply_q");
            w.string(reply_q)?;
            w.key("_timeout");
            match request.monitor_timeout {
                // oslo sends whole seconds.
                Some(t) if t.subsec_nanos() == 0 => w.formatted(format_args!("{}", t.as_secs())),
                Some(t) => w.json(&t.as_secs_f64())?,
                None => w.literal("null"),
            }
        }
        w.key("_unique_id");
        w.string(unique_id)?;
        if let Some(deadline) = request.deadline {
            w.key(DEADLINE_KEY);
            w.formatted(format_args!("{}", unix_millis(deadline)));
        }
        request.context.for_each_entry(|key, value| {
            w.context_key(key)?;
            w.context_value(&value)
        })?;
        w.close();
        Ok(())
    });
    out
}

/// Encodes a reply (or heartbeat) in oslo's 2.0 envelope.
pub fn encode_reply(reply: &Reply, msg_id: &str, unique_id: &str) -> Vec<u8> {
    let result_len = reply.result.as_ref().map_or(0, |r| r.as_str().len());
    let mut out = Vec::with_capacity(160 + result_len * 5 / 4);
    write_envelope(&mut out, |w| {
        w.open("result");
        match &reply.result {
            Some(result) => w.raw_json(result.as_str()),
            None => w.literal("null"),
        }
        w.key("failure");
        match &reply.failure {
            // oslo sends the failure as a JSON string holding a JSON object.
            Some(failure) => {
                let text = serde_json::to_string(&FailureWire::from(failure))?;
                w.string(&text)?;
            }
            None => w.literal("null"),
        }
        w.key("ending");
        w.literal(if reply.ending { "true" } else { "false" });
        w.key("_msg_id");
        w.string(msg_id)?;
        w.key("_unique_id");
        w.string(unique_id)?;
        w.close();
        Ok(())
    });
    out
}

/// Decodes a request: the 2.0 envelope or a legacy bare message.
///
/// # Errors
///
/// Fails with the reason, and the reply route when one could be read, so the caller can be told.
pub fn decode_request(body: &[u8]) -> Result<DecodedRequest, RequestDecodeError> {
    let inner = open_envelope(body).map_err(|error| RequestDecodeError {
        error,
        reply_route: salvage_from_any_envelope(body),
    })?;
    let inner_bytes = inner.as_deref().unwrap_or(body);
    match serde_json::from_slice::<RequestWire>(inner_bytes) {
        Ok(wire) => wire
            .finish()
            .map_err(|(error, reply_route)| RequestDecodeError { error, reply_route }),
        Err(source) => Err(RequestDecodeError {
            error: EnvelopeError::Json(source),
            reply_route: salvage_reply_route(inner_bytes),
        }),
    }
}

/// Decodes a reply; returns it with its `_msg_id`.
///
/// # Errors
///
/// Fails when the body is not a reply oslo would accept.
pub fn decode_reply(body: &[u8]) -> Result<(Reply, String), EnvelopeError> {
    decode_reply_then(body, |reply, msg_id| (reply, msg_id.to_owned()))
}

/// Decodes a reply and hands it, with its `_msg_id` borrowed, to `then`.
pub(crate) fn decode_reply_then<T>(
    body: &[u8],
    then: impl FnOnce(Reply, &str) -> T,
) -> Result<T, EnvelopeError> {
    let inner = open_envelope(body)?;
    let wire: ReplyWire<'_> =
        serde_json::from_slice(inner.as_deref().unwrap_or(body)).map_err(EnvelopeError::Json)?;
    let msg_id = wire
        .msg_id
        .ok_or(EnvelopeError::MissingKey { key: "_msg_id" })?;
    let failure = match wire.failure {
        None => None,
        Some(raw) => Some(decode_failure(raw.get())?),
    };
    let reply = Reply {
        result: wire
            .result
            .map(|raw| JsonText(String::from(Box::<str>::from(raw)))),
        failure,
        // oslo's client waits for `ending`; a reply without it is not final.
        ending: wire.ending.unwrap_or(false),
    };
    Ok(then(reply, &msg_id))
}

fn decode_failure(raw: &str) -> Result<RemoteError, EnvelopeError> {
    let wrong = || EnvelopeError::WrongType {
        key: "failure",
        expected: "a serialized exception",
    };
    let object_text: Cow<'_, str> = if raw.starts_with('"') {
        Cow::Owned(serde_json::from_str::<String>(raw).map_err(|_| wrong())?)
    } else {
        Cow::Borrowed(raw)
    };
    let wire: FailureWire<'_> = serde_json::from_str(&object_text).map_err(|_| wrong())?;
    Ok(wire.into_remote())
}

/// Reads the outer envelope. `Ok(None)` means the body is a legacy bare message.
fn open_envelope(body: &[u8]) -> Result<Option<Vec<u8>>, EnvelopeError> {
    if let Some(inner) = open_envelope_fast(body) {
        return Ok(Some(inner));
    }
    #[derive(Deserialize)]
    struct Outer<'a> {
        #[serde(rename = "oslo.version", borrow)]
        version: Option<Cow<'a, str>>,
        #[serde(rename = "oslo.message", borrow)]
        message: Option<&'a RawValue>,
    }
    let outer: Outer<'_> = serde_json::from_slice(body).map_err(EnvelopeError::Json)?;
    match (outer.version, outer.message) {
        (Some(version), Some(message)) => {
            let major_is_2 = version.parse::<Version>().is_ok_and(|v| v.major() == 2);
            if !major_is_2 {
                return Err(EnvelopeError::UnsupportedEnvelope {
                    version: version.into_owned(),
                });
            }
            match unescape_json_string(message.get()) {
                Some(inner) => Ok(Some(inner)),
                None => serde_json::from_str::<String>(message.get())
                    .map(|text| Some(text.into_bytes()))
                    .map_err(|_| EnvelopeError::WrongType {
                        key: "oslo.message",
                        expected: "a string holding a JSON object",
                    }),
            }
        }
        (None, None) => Ok(None),
        (Some(_), None) => Err(EnvelopeError::MissingKey {
            key: "oslo.message",
        }),
        (None, Some(_)) => Err(EnvelopeError::MissingKey {
            key: "oslo.version",
        }),
    }
}

/// The two forms of the envelope's head that senders write: oslo's (Python `json.dumps`) and ours.
const ENVELOPE_HEADS: [&[u8]; 2] = [
    b"{\"oslo.version\": \"2.0\", \"oslo.message\": \"",
    b"{\"oslo.version\":\"2.0\",\"oslo.message\":\"",
];

/// Reads the envelope in one pass when it has one of the usual exact shapes; `None` sends the
/// caller to the general parser, which accepts any valid JSON.
fn open_envelope_fast(body: &[u8]) -> Option<Vec<u8>> {
    let rest = ENVELOPE_HEADS
        .iter()
        .find_map(|head| body.strip_prefix(*head))?;
    let content = rest.strip_suffix(b"\"}")?;
    unescape_content(content)
}

/// Unescapes a JSON string literal (quotes included) into a string allocated once at its final
/// size. `None` when `raw` is not a well-formed string literal; the caller falls back to serde_json.
fn unescape_json_string(raw: &str) -> Option<Vec<u8>> {
    let content = raw.as_bytes().strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    unescape_content(content)
}

/// Unescapes the content of a JSON string. `None` on an unescaped quote or a bad escape. The
/// bytes are not checked for UTF-8 here: the JSON parser that reads them next checks every string.
fn unescape_content(content: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(content.len());
    let mut rest = content;
    // Copy runs of plain bytes whole (found with SIMD by memchr); decode the escapes between
    // them. Control characters are not refused here: harmless, and the inner parser sees them.
    while let Some(i) = memchr::memchr2(b'\\', b'"', rest) {
        let (run, tail) = rest.split_at(i);
        extend_short(&mut out, run);
        if tail[0] != b'\\' {
            return None; // an unescaped quote: not one JSON string
        }
        let escape = *tail.get(1)?;
        rest = tail.get(2..)?;
        let simple = match escape {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let (ch, used) = unicode_escape(rest)?;
                let mut buf = [0; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                rest = rest.get(used..)?;
                continue;
            }
            _ => return None,
        };
        out.push(simple);
    }
    out.extend_from_slice(rest);
    Some(out)
}

/// Decodes the `XXXX` after `\\u` (and a following low surrogate); returns the character and how
/// many bytes it used.
fn unicode_escape(rest: &[u8]) -> Option<(char, usize)> {
    let hex = |b: &[u8]| -> Option<u32> {
        let text = std::str::from_utf8(b.get(..4)?).ok()?;
        u32::from_str_radix(text, 16).ok()
    };
    let first = hex(rest)?;
    if (0xD800..0xDC00).contains(&first) {
        let tail = rest.get(4..)?.strip_prefix(b"\\u")?;
        let second = hex(tail)?;
        if !(0xDC00..0xE000).contains(&second) {
            return None;
        }
        let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
        return Some((char::from_u32(code)?, 10));
    }
    Some((char::from_u32(first)?, 4))
}

/// Reads only `_msg_id` and `_reply_q` from a message that is not decoded (refused, too large),
/// so the caller can be told instead of timing out. Skips everything else without building it.
pub fn peek_reply_route(body: &[u8]) -> Option<ReplyRoute> {
    let inner = open_envelope(body).ok()?;
    salvage_reply_route(inner.as_deref().unwrap_or(body))
}

/// Reads the reply route from an envelope this framework does not accept (another
/// `oslo.version`, say) when its `oslo.message` is still a string of JSON.
fn salvage_from_any_envelope(body: &[u8]) -> Option<ReplyRoute> {
    #[derive(Deserialize)]
    struct AnyEnvelope {
        #[serde(rename = "oslo.message")]
        message: String,
    }
    let outer: AnyEnvelope = serde_json::from_slice(body).ok()?;
    salvage_reply_route(outer.message.as_bytes())
}

/// Reads `_msg_id` and `_reply_q` from a message that failed to decode, so the caller can be told
/// instead of timing out.
fn salvage_reply_route(inner: &[u8]) -> Option<ReplyRoute> {
    #[derive(Deserialize)]
    struct RouteOnly {
        #[serde(rename = "_msg_id")]
        msg_id: Option<String>,
        #[serde(rename = "_reply_q")]
        reply_q: Option<String>,
    }
    let route: RouteOnly = serde_json::from_slice(inner).ok()?;
    route_from(route.msg_id.as_deref(), route.reply_q.as_deref())
}

fn route_from(msg_id: Option<&str>, reply_q: Option<&str>) -> Option<ReplyRoute> {
    Some(ReplyRoute {
        msg_id: msg_id?.to_owned(),
        reply_q: reply_q?.into(),
    })
}

/// Milliseconds since the Unix epoch (0 before it).
fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The request's inner message, read in one pass. Unknown keys are skipped.
#[derive(Default)]
struct RequestWire {
    method: Option<String>,
    args: Option<Box<RawValue>>,
    namespace: Option<String>,
    version: Option<Version>,
    msg_id: Option<String>,
    reply_q: Option<String>,
    timeout: Option<f64>,
    unique_id: Option<String>,
    deadline_ms: Option<u64>,
    context: Context,
    wrong_type: Option<(&'static str, &'static str)>,
}

type WireFailure = (EnvelopeError, Option<ReplyRoute>);

impl RequestWire {
    fn finish(self) -> Result<DecodedRequest, WireFailure> {
        let reply_route = match (self.msg_id, self.reply_q) {
            (Some(msg_id), Some(reply_q)) => Some(ReplyRoute {
                msg_id,
                reply_q: reply_q.into(),
            }),
            _ => None,
        };
        let fail = |error| Err((error, reply_route.clone()));
        if let Some((key, expected)) = self.wrong_type {
            return fail(EnvelopeError::WrongType { key, expected });
        }
        let Some(method) = self.method else {
            return fail(EnvelopeError::MissingKey { key: "method" });
        };
        let args = match self.args {
            Some(args) if args.get().starts_with('{') => Args(Box::<str>::from(args)),
            Some(_) => {
                return fail(EnvelopeError::WrongType {
                    key: "args",
                    expected: "an object",
                });
            }
            None => Args::empty(),
        };
        let version = self.version;
        let deadline = self
            .deadline_ms
            .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
        Ok(DecodedRequest {
            request: Request {
                method: Cow::Owned(method),
                args,
                namespace: self.namespace.map(Cow::Owned),
                version,
                context: Cow::Owned(self.context),
                deadline,
                monitor_timeout: self
                    .timeout
                    .filter(|t| t.is_finite() && *t > 0.0)
                    .map(|t| Duration::from_secs_f64(t.min(1e9))),
            },
            reply_route,
            unique_id: self.unique_id,
        })
    }
}

impl<'de> Deserialize<'de> for RequestWire {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(RequestVisitor)
    }
}

struct RequestVisitor;

/// A scalar read without building a `serde_json::Value`: strings stay borrowed from the input
/// when they have no escapes. Arrays and objects are skipped and reported as `Other`.
enum Scalar<'de> {
    Null,
    Bool,
    Str(Cow<'de, str>),
    Int(u64),
    Float(f64),
    Other,
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'de>, D::Error> {
                Scalar::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Bool)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(u64::try_from(v).map_or(Scalar::Other, Scalar::Int))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Float(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl<'de> Scalar<'de> {
    /// A string (`Some`), `null` (`None`), or `Err` for another type.
    fn into_string(self) -> Result<Option<Cow<'de, str>>, ()> {
        match self {
            Scalar::Str(s) => Ok(Some(s)),
            Scalar::Null => Ok(None),
            _ => Err(()),
        }
    }
}

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = RequestWire;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an oslo.messaging request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RequestWire, A::Error> {
        let mut wire = RequestWire::default();
        let mut wrong = |key: &'static str, expected: &'static str| {
            wire.wrong_type.get_or_insert((key, expected));
        };
        // Reads a string-or-null field, noting a value of another type.
        macro_rules! string_field {
            ($key:literal, $expected:literal) => {
                match map.next_value::<Scalar<'de>>()?.into_string() {
                    Ok(value) => value.map(Cow::into_owned),
                    Err(()) => {
                        wrong($key, $expected);
                        None
                    }
                }
            };
        }
        let mut method = None;
        let mut args = None;
        let mut namespace = None;
        let mut version = None;
        let mut msg_id = None;
        let mut reply_q = None;
        let mut timeout = None;
        let mut unique_id = None;
        let mut deadline_ms = None;
        let mut context = Context::default();
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "method" => method = string_field!("method", "a string"),
                "args" => {
                    let raw: Box<RawValue> = map.next_value()?;
                    args = if raw.get() == "null" { None } else { Some(raw) };
                }
                "namespace" => namespace = string_field!("namespace", "a string or null"),
                "version" => {
                    const EXPECTED: &str = "a version string `major.minor`";
                    match map.next_value::<Scalar<'de>>()?.into_string() {
                        Ok(None) => {}
                        Ok(Some(text)) => match text.parse::<Version>() {
                            Ok(v) => version = Some(v),
                            Err(_) => wrong("version", EXPECTED),
                        },
                        Err(()) => wrong("version", EXPECTED),
                    }
                }
                "_msg_id" => msg_id = string_field!("_msg_id", "a string"),
                "_reply_q" => reply_q = string_field!("_reply_q", "a string"),
                "_unique_id" => unique_id = string_field!("_unique_id", "a string"),
                "_timeout" => match map.next_value::<Scalar<'de>>()? {
                    Scalar::Null => {}
                    #[allow(clippy::cast_precision_loss)]
                    Scalar::Int(n) => timeout = Some(n as f64),
                    Scalar::Float(f) => timeout = Some(f),
                    _ => wrong("_timeout", "a number or null"),
                },
                DEADLINE_KEY => match map.next_value::<Scalar<'de>>()? {
                    Scalar::Null => {}
                    Scalar::Int(ms) => deadline_ms = Some(ms),
                    _ => wrong("_deadline_ms", "milliseconds since 1970"),
                },
                other => match other.strip_prefix(CONTEXT_PREFIX) {
                    Some(context_key) => {
                        let value: Value = map.next_value()?;
                        context.absorb(context_key, value);
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                },
            }
        }
        Ok(RequestWire {
            method,
            args,
            namespace,
            version,
            msg_id,
            reply_q,
            timeout,
            unique_id,
            deadline_ms,
            context,
            wrong_type: wire.wrong_type,
        })
    }
}

/// A map key, borrowed from the input when it has no escapes.
pub(crate) struct Key<'de>(pub(crate) Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[derive(Deserialize)]
struct ReplyWire<'a> {
    result: Option<Box<RawValue>>,
    #[serde(borrow)]
    failure: Option<&'a RawValue>,
    ending: Option<bool>,
    #[serde(rename = "_msg_id", borrow)]
    msg_id: Option<Cow<'a, str>>,
}

/// oslo's serialized exception (`serialize_remote_exception`).
#[derive(Serialize, Deserialize)]
struct FailureWire<'a> {
    class: Cow<'a, str>,
    module: Cow<'a, str>,
    message: Cow<'a, str>,
    #[serde(default)]
    tb: Cow<'a, [String]>,
    #[serde(default)]
    args: Cow<'a, [Value]>,
    #[serde(default)]
    kwargs: Cow<'a, Map<String, Value>>,
    #[serde(flatten)]
    extra: Cow<'a, Map<String, Value>>,
}

impl<'a> From<&'a RemoteError> for FailureWire<'a> {
    fn from(e: &'a RemoteError) -> Self {
        Self {
            class: Cow::Borrowed(&e.class),
            module: Cow::Borrowed(&e.module),
            message: Cow::Borrowed(&e.message),
            tb: Cow::Borrowed(&e.traceback),
            args: Cow::Borrowed(&e.args),
            kwargs: Cow::Borrowed(&e.kwargs),
            extra: Cow::Borrowed(&e.extra),
        }
    }
}

impl FailureWire<'_> {
    fn into_remote(self) -> RemoteError {
        let mut error = RemoteError::new(self.class, self.module, self.message);
        error.traceback = self.tb.into_owned();
        error.args = self.args.into_owned();
        error.kwargs = self.kwargs.into_owned();
        error.extra = self.extra.into_owned();
        error
    }
}

/// Writes the outer envelope around the inner message that `inner` writes.
///
/// The inner message is written straight into the outer JSON string, already escaped: keys and
/// literals need no escaping work at all, plain strings (ids, names) only their quotes, and JSON
/// values (arguments, results) one escaping pass.
fn write_envelope(
    out: &mut Vec<u8>,
    inner: impl FnOnce(&mut InnerWriter<'_>) -> Result<(), serde_json::Error>,
) {
    out.extend_from_slice(b"{\"oslo.version\":\"2.0\",\"oslo.message\":\"");
    write_inner(
        InnerWriter {
            out: &mut *out,
            escaped: true,
        },
        inner,
    );
    out.extend_from_slice(b"\"}");
}

/// Writes a message bare, as the JSON text itself (oslo's 1.0 messages, the `messaging`
/// notification driver), with the same writer as [`write_envelope`].
fn write_bare(
    out: &mut Vec<u8>,
    inner: impl FnOnce(&mut InnerWriter<'_>) -> Result<(), serde_json::Error>,
) {
    write_inner(
        InnerWriter {
            out,
            escaped: false,
        },
        inner,
    );
}

fn write_inner(
    mut writer: InnerWriter<'_>,
    inner: impl FnOnce(&mut InnerWriter<'_>) -> Result<(), serde_json::Error>,
) {
    // Writing into a Vec cannot fail, and every value written is serializable by construction
    // (strings, numbers, raw JSON, JSON values).
    if let Err(error) = inner(&mut writer) {
        tracing::error!(%error, "could not encode a message; this is a bug");
    }
}

/// Writes the inner message, escaped for the outer string as it goes (or bare, when not
/// `escaped`).
struct InnerWriter<'a> {
    out: &'a mut Vec<u8>,
    escaped: bool,
}

/// `\"`: a quote of the inner JSON, as it stands inside the outer string.
const QUOTE: &[u8] = b"\\\"";

impl InnerWriter<'_> {
    /// A quote of the inner JSON.
    fn quote(&self) -> &'static [u8] {
        if self.escaped { QUOTE } else { b"\"" }
    }

    /// `{"name":` for the first key (a Rust literal: plain ASCII).
    fn open(&mut self, name: &str) {
        self.out.push(b'{');
        self.name(name);
    }

    /// `,"name":` (a Rust literal: plain ASCII).
    fn key(&mut self, name: &str) {
        self.out.push(b',');
        self.name(name);
    }

    fn name(&mut self, name: &str) {
        debug_assert!(is_plain(name));
        let quote = self.quote();
        self.out.extend_from_slice(quote);
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(quote);
        self.out.push(b':');
    }

    /// `,"_context_<key>":`, escaping the key when it needs it.
    fn context_key(&mut self, key: &str) -> Result<(), serde_json::Error> {
        self.out.push(b',');
        if is_plain(key) {
            let quote = self.quote();
            self.out.extend_from_slice(quote);
            self.out.extend_from_slice(CONTEXT_PREFIX.as_bytes());
            self.out.extend_from_slice(key.as_bytes());
            self.out.extend_from_slice(quote);
        } else {
            self.string(&format!("{CONTEXT_PREFIX}{key}"))?;
        }
        self.out.push(b':');
        Ok(())
    }

    /// A context entry's value.
    fn context_value(&mut self, value: &ContextValue<'_>) -> Result<(), serde_json::Error> {
        match value {
            ContextValue::Str(s) => self.string(s),
            ContextValue::Bool(b) => {
                self.literal(if *b { "true" } else { "false" });
                Ok(())
            }
            other => self.json(other),
        }
    }

    /// `}`.
    fn close(&mut self) {
        self.out.push(b'}');
    }

    /// A JSON literal with nothing to escape (`null`, `true`, `false`).
    fn literal(&mut self, text: &str) {
        debug_assert!(is_plain(text));
        self.out.extend_from_slice(text.as_bytes());
    }

    /// A JSON string value.
    fn string(&mut self, s: &str) -> Result<(), serde_json::Error> {
        if is_plain(s) {
            let quote = self.quote();
            self.out.extend_from_slice(quote);
            self.out.extend_from_slice(s.as_bytes());
            self.out.extend_from_slice(quote);
            Ok(())
        } else {
            self.json(s)
        }
    }

    /// JSON text (arguments, a result), escaped into the outer string.
    fn raw_json(&mut self, text: &str) {
        if self.escaped {
            escape_into(self.out, text);
        } else {
            self.out.extend_from_slice(text.as_bytes());
        }
    }

    /// Text that needs no escaping (numbers, a version), formatted in place.
    fn formatted(&mut self, text: fmt::Arguments<'_>) {
        // Writing to a `Vec` cannot fail.
        let _ = std::io::Write::write_fmt(self.out, text);
    }

    /// Any serializable value.
    fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), serde_json::Error> {
        if !self.escaped {
            return serde_json::to_writer(&mut *self.out, value);
        }
        let text = serde_json::to_string(value)?;
        escape_into(self.out, &text);
        Ok(())
    }
}

/// Whether a string needs no escaping in JSON: no quote, backslash or control character.
fn is_plain(s: &str) -> bool {
    !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// Appends `run`; runs between escapes are mostly a few bytes, where a loop beats a `memcpy`
/// call (measured with callgrind: two thirds of the copies were under 16 bytes).
#[inline]
fn extend_short(out: &mut Vec<u8>, run: &[u8]) {
    if run.len() < 16 {
        for &b in run {
            out.push(b);
        }
    } else {
        out.extend_from_slice(run);
    }
}

/// Writes a string's content escaped, without its quotes: serde_json's own escaping (a lookup
/// table, runs copied whole), aimed into the outer string.
struct Unquoted;

impl serde_json::ser::Formatter for Unquoted {
    fn begin_string<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        Ok(())
    }

    fn end_string<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        Ok(())
    }
}

/// Appends `text` escaped as JSON string content. Multi-byte UTF-8 passes through unchanged.
///
/// serde_json does the escaping: a hand-written loop here lost to it by 1.3x on a nova
/// `select_destinations` answer (docs/performance.md, "JSON escaping").
fn escape_into(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + text.len() / 4 + 8);
    let mut serializer = serde_json::Serializer::with_formatter(out, Unquoted);
    // Writing into a `Vec` cannot fail, and a `str` always serializes.
    let _ = serde::Serializer::serialize_str(&mut serializer, text);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::PathBuf;

    /// A message oslo.messaging put on the wire, kept in `tests/fixtures/oslo-wire/` (see its
    /// README for how they were captured).
    fn sample(name: &str) -> Vec<u8> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/oslo-wire")
            .join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
    }

    fn parse(bytes: &[u8]) -> Value {
        let outer: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(outer["oslo.version"], "2.0");
        serde_json::from_str(outer["oslo.message"].as_str().unwrap()).unwrap()
    }

    fn request() -> Request<'static> {
        let mut ctx = Context::new()
            .with_user("u1")
            .with_project("p1")
            .with_roles(["member"]);
        ctx.request_id = "req-0001".into();
        let mut req = Request::new("ping", ctx)
            .with_args(&json!({"arg": "hé \"quoted\" \\ \n"}))
            .unwrap();
        req.version = Some(Version::new(4, 0));
        req.namespace = Some(Cow::Borrowed("baseapi"));
        req
    }

    #[test]
    fn request_round_trips_through_the_envelope() {
        let route = ReplyRoute {
            msg_id: "01815e7f7cf949108ca1a822d249fbce".into(),
            reply_q: "reply_97631911ec724ea39b926faa45748932".into(),
        };
        let mut req = request();
        req.deadline = Some(UNIX_EPOCH + Duration::from_millis(1_764_000_000_123));
        req.monitor_timeout = Some(Duration::from_secs(4));
        let bytes = encode_request(&req, Some(&route), "282f645e36a5448a96771009f033f1ac");
        let decoded = decode_request(&bytes).unwrap();
        assert_eq!(decoded.request.method, "ping");
        assert_eq!(
            serde_json::from_str::<Value>(decoded.request.args.as_json()).unwrap(),
            json!({"arg": "hé \"quoted\" \\ \n"})
        );
        assert_eq!(decoded.request.version, Some(Version::new(4, 0)));
        assert_eq!(decoded.request.namespace.as_deref(), Some("baseapi"));
        assert_eq!(decoded.request.context, req.context);
        assert_eq!(decoded.request.deadline, req.deadline);
        assert_eq!(decoded.reply_route, Some(route));
        assert_eq!(
            decoded.unique_id.as_deref(),
            Some("282f645e36a5448a96771009f033f1ac")
        );
        assert_eq!(
            decoded.request.monitor_timeout,
            Some(Duration::from_secs(4))
        );
    }

    #[test]
    fn request_has_oslo_keys_and_values() {
        let route = ReplyRoute {
            msg_id: "m".into(),
            reply_q: "reply_q".into(),
        };
        let inner = parse(&encode_request(&request(), Some(&route), "u"));
        assert_eq!(inner["method"], "ping");
        assert_eq!(inner["version"], "4.0");
        assert_eq!(inner["namespace"], "baseapi");
        assert_eq!(inner["_msg_id"], "m");
        assert_eq!(inner["_reply_q"], "reply_q");
        assert_eq!(inner["_timeout"], Value::Null);
        assert_eq!(inner["_unique_id"], "u");
        assert_eq!(inner["_context_user_id"], "u1");
        assert_eq!(inner["_context_project_id"], "p1");
        assert_eq!(inner["_context_request_id"], "req-0001");
        assert_eq!(inner["_context_roles"], json!(["member"]));
        assert_eq!(inner["_context_is_admin"], false);
    }

    #[test]
    fn cast_has_no_call_keys() {
        let inner = parse(&encode_request(&request(), None, "u"));
        let object = inner.as_object().unwrap();
        for key in ["_msg_id", "_reply_q", "_timeout", DEADLINE_KEY] {
            assert!(!object.contains_key(key), "{key} in a cast");
        }
    }

    #[test]
    fn decodes_captured_oslo_requests() {
        let body = sample("01_call_ping__1_request.body.json");
        let decoded = decode_request(&body).unwrap();
        assert_eq!(decoded.request.method, "ping");
        assert_eq!(decoded.request.args.as_json(), r#"{"arg": "hello"}"#);
        assert_eq!(decoded.request.version, Some(Version::new(4, 0)));
        assert_eq!(decoded.request.context.user_id.as_deref(), Some("u1"));
        assert_eq!(decoded.request.context.request_id, "req-0001");
        assert_eq!(
            &*decoded.reply_route.unwrap().reply_q,
            "reply_97631911ec724ea39b926faa45748932"
        );
        let cast = decode_request(&sample("03_cast_topic__1_request.body.json")).unwrap();
        assert!(cast.reply_route.is_none());
        assert_eq!(cast.request.method, "note_cast");
        let ctx_obj =
            decode_request(&sample("21_call_request_context_obj__1_request.body.json")).unwrap();
        assert_eq!(ctx_obj.request.context.user_id.as_deref(), Some("u2"));
        assert!(ctx_obj.request.context.is_admin);
        assert_eq!(ctx_obj.request.context.extra["is_admin_project"], true);
    }

    #[test]
    fn decodes_captured_oslo_replies() {
        let body = sample("01_call_ping__2_reply.body.json");
        let (reply, msg_id) = decode_reply(&body).unwrap();
        assert_eq!(msg_id, "01815e7f7cf949108ca1a822d249fbce");
        assert!(reply.ending);
        assert!(reply.failure.is_none());
        let result: Value = serde_json::from_str(reply.result.unwrap().as_str()).unwrap();
        assert_eq!(result, json!({"pong": "hello", "ctxt_user": "u1"}));

        let (reply, _) = decode_reply(&sample(
            "17_call_raises_custom_not_allowed__2_reply.body.json",
        ))
        .unwrap();
        let failure = reply.failure.unwrap();
        assert_eq!(failure.class, "NoValidHost");
        assert_eq!(failure.module, "anchor_exc");
        assert_eq!(failure.message, "No valid host was found. not enough RAM");
        assert_eq!(failure.kwargs["reason"], "not enough RAM");
        assert!(failure.traceback[0].starts_with("Traceback"));

        let (heartbeat, _) =
            decode_reply(&sample("25_call_monitor_heartbeat__2_heartbeat.body.json")).unwrap();
        assert!(!heartbeat.ending);
        assert!(heartbeat.result.is_none() && heartbeat.failure.is_none());
    }

    #[test]
    fn a_captured_oslo_unsupported_version_names_the_version_asked() {
        // oslo's dispatcher names the version only in its sentence; args hold it, kwargs nothing.
        let (reply, _) = decode_reply(&sample(
            "08_call_version_4_3_unsupported__2_reply.body.json",
        ))
        .unwrap();
        let failure = reply.failure.unwrap();
        assert!(failure.kwargs.is_empty());
        match failure.into_rpc_error("ping") {
            crate::error::RpcError::UnsupportedVersion {
                requested, message, ..
            } => {
                assert_eq!(requested, Some(Version::new(4, 3)));
                assert_eq!(
                    message,
                    "Endpoint does not support RPC version 4.3. Attempted method: ping"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn reply_round_trips_and_matches_oslo_shape() {
        let raw = JsonText::from_serialize(&json!({"a": [1, "x\"y"]})).unwrap();
        let bytes = encode_reply(&Reply::result(raw), "mid", "uid");
        let inner = parse(&bytes);
        assert_eq!(
            inner,
            json!({"result": {"a": [1, "x\"y"]}, "failure": null, "ending": true,
                   "_msg_id": "mid", "_unique_id": "uid"})
        );
        let (reply, msg_id) = decode_reply(&bytes).unwrap();
        assert_eq!(msg_id, "mid");
        assert!(reply.ending);

        let mut failure = RemoteError::new("NoValidHost", "nova.exception", "no host");
        failure.kwargs.insert("reason".into(), json!("RAM"));
        let bytes = encode_reply(&Reply::failure(failure.clone()), "mid", "uid");
        let inner = parse(&bytes);
        // The failure is a JSON string holding the serialized exception, as oslo sends it.
        let failure_obj: Value = serde_json::from_str(inner["failure"].as_str().unwrap()).unwrap();
        assert_eq!(
            failure_obj,
            json!({"class": "NoValidHost", "module": "nova.exception", "message": "no host",
                   "tb": [], "args": ["no host"], "kwargs": {"reason": "RAM"}})
        );
        assert_eq!(decode_reply(&bytes).unwrap().0.failure.unwrap(), failure);
    }

    #[test]
    fn fast_and_general_envelope_readers_agree() {
        let inner = r#"{"method": "m", "args": {"s": "q\"uote \\ é \u2603"}}"#;
        let python =
            serde_json::to_vec(&json!({"oslo.version": "2.0", "oslo.message": inner})).unwrap();
        let spaced = format!(
            "{{\"oslo.version\": \"2.0\", \"oslo.message\": {}}}",
            serde_json::to_string(inner).unwrap()
        );
        let reordered = format!(
            "{{ \"oslo.message\" : {} , \"oslo.version\" : \"2.0\" }}",
            serde_json::to_string(inner).unwrap()
        );
        for body in [python, spaced.into_bytes(), reordered.into_bytes()] {
            assert_eq!(
                open_envelope(&body).unwrap().as_deref(),
                Some(inner.as_bytes())
            );
        }
        // A head that matches but a body that is not one string falls back and is refused.
        let broken = br#"{"oslo.version":"2.0","oslo.message":"x"y"}"#;
        assert!(open_envelope_fast(broken).is_none());
        assert!(open_envelope(broken).is_err());
    }

    #[test]
    fn legacy_bare_message_is_accepted() {
        let body = br#"{"method": "echo", "args": {"v": 1}, "_unique_id": "x"}"#;
        let decoded = decode_request(body).unwrap();
        assert_eq!(decoded.request.method, "echo");
        assert_eq!(decoded.request.version, None);
    }

    #[test]
    fn bad_requests_say_why_and_keep_the_route() {
        let cases: [(&[u8], &str, bool); 7] = [
            (b"not json", "not valid JSON", false),
            (br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#, "unsupported envelope version `3.0`", false),
            (br#"{"oslo.version": "2.0"}"#, "no `oslo.message`", false),
            (br#"{"oslo.version": "2.0", "oslo.message": "{\"_msg_id\": \"m\", \"_reply_q\": \"q\"}"}"#, "no `method`", true),
            (br#"{"method": "m", "args": [1], "_msg_id": "m", "_reply_q": "q"}"#, "`args` must be an object", true),
            (br#"{"method": 5, "_msg_id": "m", "_reply_q": "q"}"#, "`method` must be a string", true),
            (br#"{"method": "m", "version": "four", "_msg_id": "m", "_reply_q": "q"}"#, "`version` must be", true),
        ];
        for (body, message, routed) in cases {
            let err = decode_request(body).unwrap_err();
            assert!(
                err.error.to_string().contains(message),
                "{}: {}",
                String::from_utf8_lossy(body),
                err.error
            );
            assert_eq!(
                err.reply_route.is_some(),
                routed,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn reply_without_ending_is_not_final_and_without_msg_id_is_refused() {
        let (reply, _) =
            decode_reply(br#"{"result": 1, "failure": null, "_msg_id": "m"}"#).unwrap();
        assert!(!reply.ending);
        assert!(decode_reply(br#"{"result": 1, "failure": null, "ending": true}"#).is_err());
    }

    #[test]
    fn unescape_matches_serde_json() {
        for text in [
            "plain",
            "q\"uote",
            "back\\slash",
            "nl\n\t\r\u{8}\u{c}",
            "é ☃ 😀",
            "\u{1}\u{1f}",
            "/",
        ] {
            let encoded = serde_json::to_string(text).unwrap();
            assert_eq!(
                unescape_json_string(&encoded).as_deref(),
                Some(text.as_bytes()),
                "{encoded}"
            );
        }
        // Escapes serde_json never writes but other encoders (Python's ensure_ascii) do.
        assert_eq!(
            unescape_json_string(r#""h\u00e9llo \u2603 \ud83d\ude00 \/""#).as_deref(),
            Some("héllo ☃ 😀 /".as_bytes())
        );
        for bad in [
            r#""\x""#,
            r#""\u12""#,
            r#""\ud83d""#,
            "no quotes",
            r#""\ud83d\u0041""#,
            r#""a"b""#,
        ] {
            assert_eq!(unescape_json_string(bad), None, "{bad}");
        }
    }

    #[test]
    fn message_ids_are_oslo_hex_and_round_trip() {
        let id = MessageId::new();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(MessageId::parse(&text), Some(id));
        assert_ne!(MessageId::new(), id);
        for other in [
            "",
            "xyz",
            "01815e7f-7cf9-4910-8ca1-a822d249fbce",
            "g1815e7f7cf949108ca1a822d249fbce",
        ] {
            assert_eq!(MessageId::parse(other), None, "{other}");
        }
    }

    #[test]
    fn escaping_covers_what_json_text_holds() {
        let mut out = Vec::new();
        escape_into(&mut out, "{\"a\":\t\"b\\\\c\"\r\n}");
        assert_eq!(out, b"{\\\"a\\\":\\t\\\"b\\\\\\\\c\\\"\\r\\n}");
        let text = format!("\"{}\"", String::from_utf8(out).unwrap());
        let back: String = serde_json::from_str(&text).unwrap();
        assert_eq!(back, "{\"a\":\t\"b\\\\c\"\r\n}");
    }
}
