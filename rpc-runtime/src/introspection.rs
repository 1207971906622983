//! A server describes itself: the hidden namespace `rpc_introspection`, version 1.0, method
//! `describe`, answers with every endpoint the server dispatches to (its topic, namespace,
//! version, release aliases, and its methods with `since`, kind and arguments), read from the
//! descriptors `#[rpc_endpoint]` generates. No oslo peer has it: a Python server answers
//! `UnsupportedVersion`, which `rpcctl` takes as "not offered".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::endpoint::{Endpoint, EndpointDescriptor, FixedAnswer, MethodDescriptor, MethodKind};
use crate::envelope::JsonText;
use crate::target::Target;
use crate::version::Version;

/// The namespace of the `describe` method.
pub const NAMESPACE: &str = "rpc_introspection";
/// The method that describes a server.
pub const METHOD: &str = "describe";
/// The version of the introspection namespace.
pub const VERSION: Version = Version::new(1, 0);

/// What `describe` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ServerDescription {
    /// The topic the server consumes.
    pub topic: String,
    /// The server's name on the topic (its host), when it has one.
    pub server: Option<String>,
    /// Its endpoints, in dispatch order.
    pub endpoints: Vec<EndpointDescription>,
}

/// One endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EndpointDescription {
    /// The type that implements it (`SchedulerManager`).
    pub name: String,
    /// The topic it declares, if any.
    pub topic: Option<String>,
    /// Its namespace (`None`: the default namespace).
    pub namespace: Option<String>,
    /// The newest version it serves.
    pub version: String,
    /// Release names and the versions they stand for (`zed` → `4.5`).
    pub aliases: BTreeMap<String, String>,
    /// Its methods.
    pub methods: Vec<MethodDescription>,
}

/// One method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MethodDescription {
    /// The wire name.
    pub name: String,
    /// The version that added it.
    pub since: String,
    /// `call` or `cast`.
    pub kind: String,
    /// Its named arguments.
    pub args: Vec<ArgDescription>,
}

/// One argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ArgDescription {
    /// The wire name.
    pub name: String,
    /// The Rust type as written.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The version that added it, when newer than the method's.
    pub since: Option<String>,
    /// Whether a caller may leave it out (an `Option`, or added after the method).
    pub optional: bool,
}

impl EndpointDescription {
    fn of(descriptor: &EndpointDescriptor) -> Self {
        Self {
            name: descriptor.name.to_owned(),
            topic: descriptor.topic.map(str::to_owned),
            namespace: descriptor.namespace.map(str::to_owned),
            version: descriptor.version.to_string(),
            aliases: descriptor
                .aliases
                .iter()
                .map(|(name, version)| ((*name).to_owned(), version.to_string()))
                .collect(),
            methods: descriptor
                .methods
                .iter()
                .map(MethodDescription::of)
                .collect(),
        }
    }
}

impl MethodDescription {
    fn of(method: &MethodDescriptor) -> Self {
        Self {
            name: method.name.to_owned(),
            since: method.since.to_string(),
            kind: match method.kind {
                MethodKind::Call => "call",
                MethodKind::Cast => "cast",
            }
            .to_owned(),
            args: method
                .args
                .iter()
                .map(|arg| ArgDescription {
                    name: arg.name.to_owned(),
                    type_name: tidy_type(arg.type_name),
                    since: arg.since.map(|v| v.to_string()),
                    optional: arg.since.is_some()
                        || tidy_type(arg.type_name).starts_with("Option<"),
                })
                .collect(),
        }
    }

    /// `name(arg: Type, …)`, as a person reads a signature.
    pub fn signature(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| format!("{}: {}", a.name, a.type_name))
            .collect();
        format!("{}({})", self.name, args.join(", "))
    }
}

/// A type as the macro wrote its tokens (`Option < serde_json :: Value >`), as a person writes
/// it (`Option<serde_json::Value>`): a space stays only between two words, and after a comma.
fn tidy_type(tokens: &str) -> String {
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '\'';
    let mut tidy = String::with_capacity(tokens.len());
    for word in tokens.split_whitespace() {
        let joins = matches!(
            (tidy.chars().last(), word.chars().next()),
            (Some(before), Some(after)) if is_word(before) && is_word(after)
        );
        if joins || tidy.ends_with(',') {
            tidy.push(' ');
        }
        tidy.push_str(word);
    }
    tidy
}

static DESCRIPTOR: EndpointDescriptor = EndpointDescriptor::new(
    "Introspection",
    None,
    Some(NAMESPACE),
    VERSION,
    &[MethodDescriptor::new(
        METHOD,
        VERSION,
        MethodKind::Call,
        &[],
    )],
);

/// The `describe` endpoint of a server serving `endpoints` on `target`: the description is made
/// once, when the server starts.
pub(crate) fn describe_endpoint(target: &Target, endpoints: &[Arc<dyn Endpoint>]) -> FixedAnswer {
    let description = ServerDescription {
        topic: target.topic.to_string(),
        server: target.server.as_deref().map(str::to_owned),
        endpoints: endpoints
            .iter()
            .map(|e| EndpointDescription::of(e.descriptor()))
            .collect(),
    };
    // Strings and maps of strings always serialize.
    let description = JsonText::from_serialize(&description).unwrap_or_else(|_| JsonText::null());
    FixedAnswer::new(&DESCRIPTOR, description)
}

#[cfg(test)]
mod tests {
    use super::tidy_type;

    #[test]
    fn types_read_as_written() {
        assert_eq!(tidy_type("serde_json :: Value"), "serde_json::Value");
        assert_eq!(
            tidy_type("Option < Vec < String > >"),
            "Option<Vec<String>>"
        );
        assert_eq!(tidy_type("& 'a mut T"), "&'a mut T");
        assert_eq!(
            tidy_type("BTreeMap < String , (u8 , i64) >"),
            "BTreeMap<String, (u8, i64)>"
        );
        assert_eq!(tidy_type("i64"), "i64");
    }
}
