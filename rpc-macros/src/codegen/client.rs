//! The typed client `{Type}Client`: one async method per RPC method, a few lines each, ending in
//! the runtime's call or cast.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::{private, rt, version};
use crate::model::{Endpoint, Kind, Method, Output, Version};

pub(super) fn typed_client(endpoint: &Endpoint) -> TokenStream {
    let rt = rt();
    let client = format_ident!("{}Client", endpoint.name);
    let versions = versions_module(endpoint);
    let current = marker(endpoint.version.value);
    let topic = &endpoint.topic;
    let endpoint_version = version(endpoint.version.value);
    let namespace = endpoint
        .namespace
        .as_ref()
        .map(|ns| quote!(.with_namespace(#ns)));
    let doc = format!(
        "Typed client for `{}`, RPC API {} on topic `{}`.\n\n`Cap` is the newest version it may \
         send (default: the API's own); the markers are in `{}`, and \
         [`capped`](Self::capped) lowers the cap.",
        endpoint.name, endpoint.version.value, endpoint.topic, versions.name,
    );
    let methods = endpoint.methods.iter().map(|m| method(endpoint, m));
    let markers = &versions.name;
    let versions_items = &versions.items;
    quote! {
        #versions_items

        #[doc = #doc]
        pub struct #client<Cap = #markers::#current> {
            __rpc_client: #rt::Client,
            __rpc_cap: ::core::marker::PhantomData<fn() -> Cap>,
        }

        #[automatically_derived]
        impl<Cap> ::core::fmt::Debug for #client<Cap> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(::core::stringify!(#client))
                    .field("client", &self.__rpc_client)
                    .finish()
            }
        }

        #[automatically_derived]
        impl<Cap> ::core::clone::Clone for #client<Cap> {
            fn clone(&self) -> Self {
                Self {
                    __rpc_client: ::core::clone::Clone::clone(&self.__rpc_client),
                    __rpc_cap: ::core::marker::PhantomData,
                }
            }
        }

        #[automatically_derived]
        #[allow(dead_code)]
        impl #client {
            /// The topic the endpoint is served on.
            pub const TOPIC: &'static str = #topic;

            /// The newest version of the RPC API.
            pub const VERSION: #rt::Version = #endpoint_version;

            /// A client for the endpoint's topic over `transport`, at the API's own version.
            pub fn new(transport: ::std::sync::Arc<dyn #rt::Transport>) -> Self {
                Self::from_client(#rt::Client::new(transport, Self::target()))
            }

            /// The target the endpoint is served on: its topic and namespace.
            pub fn target() -> #rt::Target {
                #rt::Target::new(#topic) #namespace
            }

            /// Wraps a client already pointed at the endpoint's target.
            pub fn from_client(client: #rt::Client) -> Self {
                Self {
                    __rpc_client: client,
                    __rpc_cap: ::core::marker::PhantomData,
                }
            }
        }

        #[automatically_derived]
        #[allow(dead_code, clippy::too_many_arguments, clippy::used_underscore_binding)]
        impl<Cap: #rt::VersionMarker> #client<Cap> {
            /// The untyped client underneath.
            pub fn client(&self) -> &#rt::Client {
                &self.__rpc_client
            }

            /// A copy with overrides: one server, a timeout, a run-time cap, fanout for casts.
            /// Each method still sends the lowest version that has what it was given.
            #[must_use]
            pub fn prepare(&self, options: #rt::CallOptions) -> Self {
                Self {
                    __rpc_client: self.__rpc_client.prepare(options),
                    __rpc_cap: ::core::marker::PhantomData,
                }
            }

            /// The same client capped at version `C`: only the methods that exist at `C` compile,
            /// and a newer argument given at run time fails with `CannotSendVersion`. A lower
            /// run-time cap already set is kept.
            #[must_use]
            pub fn capped<C: #rt::VersionMarker>(&self) -> #client<C> {
                let cap = match self.__rpc_client.version_cap() {
                    ::core::option::Option::Some(cap) if cap < C::VERSION => cap,
                    _ => C::VERSION,
                };
                #client {
                    __rpc_client: self
                        .__rpc_client
                        .prepare(#rt::CallOptions::new().version_cap(cap)),
                    __rpc_cap: ::core::marker::PhantomData,
                }
            }

            #(#methods)*
        }
    }
}

/// The version markers module of an endpoint and the traits that say which methods each has.
struct Versions {
    name: Ident,
    items: TokenStream,
}

fn versions_module(endpoint: &Endpoint) -> Versions {
    let rt = rt();
    let name = format_ident!("{}_versions", snake_case(&endpoint.name.to_string()));
    let current = endpoint.version.value;
    let all: Vec<Version> = (0..=current.minor)
        .map(|minor| Version {
            major: current.major,
            minor,
        })
        .collect();
    let markers = all.iter().map(|v| {
        let ident = marker(*v);
        let value = version(*v);
        let doc = format!("RPC API {v} of `{}`.", endpoint.name);
        quote! {
            #[doc = #doc]
            #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy)]
            pub struct #ident;

            impl #rt::VersionMarker for #ident {
                const VERSION: #rt::Version = #value;
            }
        }
    });
    let p = private();
    let has = endpoint.methods.iter().map(|method| {
        let method_marker = has_marker(method);
        let since = method.since.value;
        let doc = format!(
            "The method `{}`, in the API since {since}: the versions that have it implement `Has` of it.",
            method.wire_name
        );
        let impls = all.iter().filter(|v| **v >= since).map(|v| {
            let ident = marker(*v);
            quote!(impl #p::Has<#method_marker> for #ident {})
        });
        quote! {
            #[doc = #doc]
            #[derive(::core::fmt::Debug)]
            pub struct #method_marker;
            #(#impls)*
        }
    });
    let doc = format!(
        "Version markers of `{}`'s RPC API, one per version, for `{}Client<Cap>`.",
        endpoint.name, endpoint.name
    );
    let items = quote! {
        #[doc = #doc]
        #[allow(non_camel_case_types)]
        pub mod #name {
            #(#markers)*
            #(#has)*
        }
    };
    Versions { name, items }
}

/// `V4_2`.
fn marker(v: Version) -> Ident {
    format_ident!("V{}_{}", v.major, v.minor)
}

/// `select_destinations_since_4_2`: the method as a type, for `Has`.
fn has_marker(method: &Method) -> Ident {
    let since = method.since.value;
    format_ident!("{}_since_{}_{}", method.wire_name, since.major, since.minor)
}

/// `SchedulerManager` → `scheduler_manager`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn method(endpoint: &Endpoint, method: &Method) -> TokenStream {
    let versions = format_ident!("{}_versions", snake_case(&endpoint.name.to_string()));
    let has = has_marker(method);
    let rt = rt();
    let p = private();
    let ident = &method.ident;
    let wire_name = &method.wire_name;
    let since = version(method.since.value);
    let ctx: Ident = if method.args.iter().any(|a| a.wire_name == "ctx") {
        format_ident!("__rpc_ctx")
    } else {
        format_ident!("ctx")
    };
    let params = method.args.iter().map(|arg| {
        let name = &arg.ident;
        let ty = &arg.ty;
        quote!(#name: #ty)
    });
    let pushes = method.args.iter().map(|arg| {
        let name = &arg.ident;
        let key = &arg.wire_name;
        let ty = &arg.ty;
        let wire = quote_spanned!(ty.span()=> #p::wire::<#ty>());
        match &arg.since {
            None => quote!(__rpc_call.arg(#key, &#name, #wire);),
            Some(s) => {
                let arg_since = version(s.value);
                quote!(__rpc_call.arg_since(#key, &#name, #arg_since, #wire);)
            }
        }
    });
    let (ret, send) = match (&method.kind, &method.output) {
        (Kind::Cast(_), _) => (
            quote!(::core::result::Result<(), #rt::RpcError>),
            quote!(#p::cast(&self.__rpc_client, #ctx, __rpc_call).await),
        ),
        (Kind::Call, Output::Unit) => (
            quote!(::core::result::Result<(), #rt::RpcError>),
            quote!(#p::call(&self.__rpc_client, #ctx, __rpc_call, #p::wire::<()>()).await),
        ),
        (Kind::Call, Output::Plain(ty)) => {
            let wire = quote_spanned!(ty.span()=> #p::wire::<#ty>());
            (
                quote!(::core::result::Result<#ty, #rt::RpcError>),
                quote!(#p::call(&self.__rpc_client, #ctx, __rpc_call, #wire).await),
            )
        }
        (Kind::Call, Output::Fallible { ok, err }) => {
            let wire = quote_spanned!(ok.span()=> #p::wire::<#ok>());
            let fallible = quote_spanned!(err.span()=> #p::fallible::<#err>());
            (
                quote!(::core::result::Result<#ok, #rt::CallError<#err>>),
                quote!(#p::call_fallible(&self.__rpc_client, #ctx, __rpc_call, #wire, #fallible).await),
            )
        }
    };
    let what = match method.kind {
        Kind::Call => "Calls",
        Kind::Cast(_) => "Casts",
    };
    let doc = format!(
        "{what} `{wire_name}` (RPC API {} and later).",
        method.since.value
    );
    quote! {
        #[doc = #doc]
        pub async fn #ident(&self, #ctx: &#rt::Context, #(#params),*) -> #ret
        where
            Cap: #p::Has<#versions::#has>,
        {
            let mut __rpc_call = #p::Call::new(#wire_name, #since).for_client(&self.__rpc_client);
            #(#pushes)*
            #send
        }
    }
}
