//! The `#[rpc_endpoint]` attribute of `rpc-runtime`.
//!
//! Use it as `rpc_runtime::rpc_endpoint`, where the grammar, the generated items and the compile
//! errors are documented. This crate is parse → model → validate → codegen: `parse` reads syntax,
//! `model` lowers it to owned values with spans, `validate` applies every rule and reports every
//! mistake at once, `lock` holds released versions to `rpc-api.lock`, and `codegen` (which cannot
//! fail) writes the dispatch table and typed client.

mod codegen;
mod errors;
mod expand;
mod lock;
mod model;
mod notification;
mod object;
mod parse;
mod validate;

use proc_macro::TokenStream;

/// Generates a versioned dispatch table and a typed client for a manager's impl block.
///
/// Documented at `rpc_runtime::rpc_endpoint`.
#[proc_macro_attribute]
pub fn rpc_endpoint(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::rpc_endpoint(attr.into(), item.into()).into()
}

/// Makes an impl block a notification listener's endpoint: its methods named for priorities
/// (`info`, `error`, …) receive the notifications, filtered by the attribute's expressions.
///
/// Documented at `rpc_runtime::notification_endpoint`.
#[proc_macro_attribute]
pub fn notification_endpoint(attr: TokenStream, item: TokenStream) -> TokenStream {
    notification::expand(attr.into(), item.into()).into()
}

/// Derives `rpc_runtime::object::VersionedObject` (oslo.versionedobjects' primitive format) and
/// serde's `Serialize` / `Deserialize` through it.
///
/// Documented at `rpc_runtime::VersionedObject`.
#[proc_macro_derive(VersionedObject, attributes(object, since))]
pub fn derive_versioned_object(item: TokenStream) -> TokenStream {
    object::derive(item.into()).into()
}
