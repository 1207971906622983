//! What the fuzz targets under `fuzz/` check, one function per target. They live here so that the
//! corpus the fuzzer built replays on the stable toolchain in every test run
//! (`tests/fuzz_replay`), without `cargo fuzz`.
//!
//! Each function takes arbitrary bytes and panics only on a real defect: a panic in the code under
//! test, or a broken property (a decoded request that does not survive re-encoding, a failure
//! without a class).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use rpc_runtime::config::ConfigLoader;
use rpc_runtime::envelope::{self, Reply};
use rpc_runtime::{ApplicationError, Context, Dispatcher, rpc_endpoint};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The envelope decoder: requests and replies, as they arrive from the broker.
///
/// A request that decodes must encode and decode again to the same method, arguments, version,
/// namespace and reply route; a reply likewise to the same result and failure class.
///
/// # Panics
///
/// On a defect.
pub fn envelope(data: &[u8]) {
    if let Ok(decoded) = envelope::decode_request(data) {
        let unique_id = decoded.unique_id.clone().unwrap_or_default();
        let again =
            envelope::encode_request(&decoded.request, decoded.reply_route.as_ref(), &unique_id);
        let second = envelope::decode_request(&again).expect("a re-encoded request decodes");
        let (a, b) = (&decoded.request, &second.request);
        assert_eq!(a.method, b.method);
        assert_eq!(a.args.as_json(), b.args.as_json());
        assert_eq!(a.version, b.version);
        assert_eq!(a.namespace, b.namespace);
        assert_eq!(decoded.reply_route, second.reply_route);
    }
    if let Ok((reply, msg_id)) = envelope::decode_reply(data) {
        let again = envelope::encode_reply(&reply, &msg_id, "0");
        let (second, second_id) =
            envelope::decode_reply(&again).expect("a re-encoded reply decodes");
        assert_eq!(msg_id, second_id);
        assert_eq!(reply.ending, second.ending);
        assert_eq!(
            reply.result.as_ref().map(|r| r.as_str().to_owned()),
            second.result.as_ref().map(|r| r.as_str().to_owned())
        );
        assert_eq!(failure_class(&reply), failure_class(&second));
    }
}

fn failure_class(reply: &Reply) -> Option<String> {
    reply.failure.as_ref().map(|f| f.class.clone())
}

/// What the dispatch target's endpoint takes: nested, optional and numeric fields.
#[derive(Debug, Serialize, Deserialize)]
pub struct Spec {
    /// A name.
    pub name: String,
    /// A count that must fit in 32 bits.
    pub vcpus: u32,
    /// A ratio.
    pub ratio: f64,
    /// Optional nested maps of lists.
    pub hints: Option<BTreeMap<String, Vec<String>>>,
}

/// The dispatch target's application error.
#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
#[error("no room for {0}")]
pub struct NoRoom(pub String);

impl ApplicationError for NoRoom {}

/// The endpoint the dispatch target calls: every kind of argument a real API has.
#[derive(Debug)]
pub struct FuzzEndpoint;

#[rpc_endpoint(topic = "fuzz", version = "1.3")]
impl FuzzEndpoint {
    /// Two integers.
    #[rpc]
    async fn add(&self, _ctx: &Context, a: i64, b: i64) -> i64 {
        a.wrapping_add(b)
    }

    /// Any JSON value.
    #[rpc]
    async fn echo(&self, _ctx: &Context, value: Value) -> Value {
        value
    }

    /// A struct, and an argument added later.
    #[rpc(since = "1.1")]
    async fn place(
        &self,
        _ctx: &Context,
        spec: Spec,
        #[since("1.2")] hosts: Option<Vec<String>>,
    ) -> Result<String, NoRoom> {
        match hosts.as_deref().and_then(<[String]>::first) {
            Some(host) => Ok(host.clone()),
            None => Err(NoRoom(spec.name)),
        }
    }

    /// A cast with a small integer.
    #[rpc(since = "1.3", cast)]
    async fn note(&self, _ctx: &Context, count: u8) {
        let _ = count;
    }
}

/// The dispatcher's argument decoding: a message body decoded and dispatched to
/// [`FuzzEndpoint`]. Every outcome is a result or a failure with a class; never a panic, in
/// decoding or in dispatch (the dispatcher turns a method's panic into a `Panic` failure, which
/// here would mean decoding arguments panicked).
///
/// # Panics
///
/// On a defect.
pub fn dispatch(data: &[u8]) {
    static DISPATCHER: OnceLock<Dispatcher> = OnceLock::new();
    let Ok(decoded) = envelope::decode_request(data) else {
        return;
    };
    let dispatcher = DISPATCHER.get_or_init(|| Dispatcher::new(vec![Arc::new(FuzzEndpoint)]));
    let outcome = futures::executor::block_on(dispatcher.dispatch(decoded.request));
    if let Err(failure) = outcome {
        assert!(
            !failure.class.is_empty(),
            "a failure without a class: {failure:?}"
        );
        assert_ne!(failure.class, "Panic", "{failure:?}");
    }
}

/// The configuration parser: any text as a configuration file. Errors are typed and say where;
/// a file that loads gives a configuration whose derived values can be read.
///
/// # Panics
///
/// On a defect.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    match ConfigLoader::new().text("fuzz.conf", text).load() {
        Ok(loaded) => {
            let config = loaded.config;
            let _ = format!("{config:?}");
            let _ = config.effective_transport_url();
            let _ = config.upgrade_level("scheduler");
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
}
