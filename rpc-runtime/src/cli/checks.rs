//! A server's description of itself, read before sending: mistyped names are refused with the
//! names that exist; and the description printed for people.

use std::io::Write;
use std::time::Duration;

use super::report::{Failure, Sent};
use crate::client::{CallOptions, Client};
use crate::context::Context;
use crate::error::RpcError;
use crate::introspection::{self, MethodDescription, ServerDescription};

/// Asks the server to describe itself; `None` when it does not (an oslo peer, an older server)
/// or does not answer within five seconds.
async fn describe(client: &Client) -> Result<Option<ServerDescription>, Failure> {
    let target = client
        .target()
        .clone()
        .with_namespace(introspection::NAMESPACE)
        .with_version(introspection::VERSION);
    let asking = Client::new(std::sync::Arc::clone(client.transport()), target)
        .prepare(CallOptions::new().timeout(client.timeout().min(Duration::from_secs(5))));
    match asking
        .call::<ServerDescription>(
            &Context::new(),
            introspection::METHOD,
            &serde_json::json!({}),
        )
        .await
    {
        Ok(description) => Ok(Some(description)),
        Err(RpcError::Transport(error)) => Err(Failure::Transport(crate::error::chain(&error))),
        Err(error) => {
            tracing::debug!(error = %crate::error::chain(&error), "the server does not describe itself");
            Ok(None)
        }
    }
}

/// Checks the method and argument names against the server's description, when it has one.
pub(super) async fn check(client: &Client, sent: &Sent) -> Result<(), Failure> {
    let Some(description) = describe(client).await? else {
        return Ok(());
    };
    check_against(&description, sent).map_err(Failure::Usage)
}

/// Why `sent` cannot work against `description`, naming the names that exist.
fn check_against(description: &ServerDescription, sent: &Sent) -> Result<(), String> {
    let namespace = sent.target.namespace.as_deref();
    let methods: Vec<&MethodDescription> = description
        .endpoints
        .iter()
        .filter(|e| e.namespace.as_deref() == namespace)
        .flat_map(|e| e.methods.iter())
        .collect();
    let in_namespace = match namespace {
        Some(namespace) => format!("namespace {namespace}"),
        None => "the default namespace".to_owned(),
    };
    let Some(method) = methods.iter().find(|m| m.name == sent.method) else {
        let names: Vec<&str> = methods.iter().map(|m| m.name.as_str()).collect();
        let hint = crate::suggest::closest(&sent.method, &names)
            .map(|name| format!("; did you mean `{name}`?"))
            .unwrap_or_default();
        return Err(format!(
            "topic {} has no method `{}` in {in_namespace} (nothing was sent); it has: {}{hint}",
            description.topic,
            sent.method,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            },
        ));
    };
    let known: Vec<&str> = method.args.iter().map(|a| a.name.as_str()).collect();
    let given: Vec<&str> = sent
        .args
        .as_object()
        .map(|args| args.keys().map(String::as_str).collect())
        .unwrap_or_default();
    for name in &given {
        if !known.contains(name) {
            let hint = crate::suggest::closest(name, &known)
                .map(|k| format!("; did you mean `{k}`?"))
                .unwrap_or_default();
            return Err(format!(
                "`{}` has no argument `{name}` (nothing was sent): {}{hint}",
                method.name,
                method.signature()
            ));
        }
    }
    let missing: Vec<&str> = method
        .args
        .iter()
        .filter(|a| !a.optional && !given.contains(&a.name.as_str()))
        .map(|a| a.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "`{}` needs {} (nothing was sent): {}",
            method.name,
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", "),
            method.signature()
        ));
    }
    Ok(())
}

/// `describe` as a person reads it.
pub(super) fn print_description(out: &mut impl Write, description: &ServerDescription) {
    let mut text = format!("topic {}", description.topic);
    if let Some(server) = &description.server {
        text.push_str(&format!(", server {server}"));
    }
    text.push('\n');
    for endpoint in &description.endpoints {
        let namespace = endpoint.namespace.as_deref().unwrap_or("(default)");
        text.push_str(&format!(
            "\n{} — namespace {namespace}, version {}",
            endpoint.name, endpoint.version
        ));
        if !endpoint.aliases.is_empty() {
            let aliases: Vec<String> = endpoint
                .aliases
                .iter()
                .map(|(name, version)| format!("{name}={version}"))
                .collect();
            text.push_str(&format!(", aliases {}", aliases.join(" ")));
        }
        text.push('\n');
        for method in &endpoint.methods {
            text.push_str(&format!(
                "  {} {}  since {}\n",
                method.kind,
                method.signature(),
                method.since
            ));
        }
    }
    let _ = write!(out, "{text}");
}
