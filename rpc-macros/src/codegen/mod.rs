//! Code generation from a validated model; it cannot fail. One file per generated artifact.

mod client;
mod dispatch;

use proc_macro2::{Literal, TokenStream};
use quote::quote;

use crate::model::{Endpoint, Version};

/// Everything generated for an endpoint.
pub(crate) fn generate(endpoint: &Endpoint) -> TokenStream {
    let dispatch = dispatch::endpoint_impl(endpoint);
    let client = client::typed_client(endpoint);
    quote!(#dispatch #client)
}

/// The runtime crate: the one place its path is written.
fn rt() -> TokenStream {
    quote!(::rpc_runtime)
}

/// The runtime's glue for generated code.
fn private() -> TokenStream {
    quote!(::rpc_runtime::__private)
}

/// `::rpc_runtime::Version::new(major, minor)`.
fn version(v: Version) -> TokenStream {
    let rt = rt();
    let major = Literal::u64_unsuffixed(v.major);
    let minor = Literal::u64_unsuffixed(v.minor);
    quote!(#rt::Version::new(#major, #minor))
}

/// `Some("text")` or `None`.
fn option_str(value: Option<&str>) -> TokenStream {
    match value {
        Some(text) => quote!(::core::option::Option::Some(#text)),
        None => quote!(::core::option::Option::None),
    }
}
