//! The typed client `{Type}Client`: one async method per RPC method, a few lines each, ending in
//! the runtime's call or cast.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::{private, rt, version};
use crate::model::{Endpoint, Kind, Method, Output};

pub(super) fn typed_client(endpoint: &Endpoint) -> TokenStream {
    let rt = rt();
    let client = format_ident!("{}Client", endpoint.name);
    let topic = &endpoint.topic;
    let endpoint_version = version(endpoint.version.value);
    let namespace = endpoint
        .namespace
        .as_ref()
        .map(|ns| quote!(.with_namespace(#ns)));
    let doc = format!(
        "Typed client for `{}`, RPC API {} on topic `{}`.",
        endpoint.name, endpoint.version.value, endpoint.topic
    );
    let methods = endpoint.methods.iter().map(method);
    quote! {
        #[doc = #doc]
        #[derive(::core::fmt::Debug, ::core::clone::Clone)]
        pub struct #client {
            __rpc_client: #rt::Client,
        }

        #[automatically_derived]
        #[allow(dead_code, clippy::too_many_arguments, clippy::used_underscore_binding)]
        impl #client {
            /// The topic the endpoint is served on.
            pub const TOPIC: &'static str = #topic;

            /// The newest version of the RPC API.
            pub const VERSION: #rt::Version = #endpoint_version;

            /// A client for the endpoint's topic over `transport`.
            pub fn new(transport: ::std::sync::Arc<dyn #rt::Transport>) -> Self {
                Self::from_client(#rt::Client::new(transport, Self::target()))
            }

            /// The target the endpoint is served on: its topic and namespace.
            pub fn target() -> #rt::Target {
                #rt::Target::new(#topic) #namespace
            }

            /// Wraps a client already pointed at the endpoint's target.
            pub fn from_client(client: #rt::Client) -> Self {
                Self { __rpc_client: client }
            }

            /// The untyped client underneath.
            pub fn client(&self) -> &#rt::Client {
                &self.__rpc_client
            }

            /// A copy with overrides: one server, a timeout, fanout for casts. Each method still
            /// sends the lowest version that has what it was given.
            #[must_use]
            pub fn prepare(&self, options: #rt::CallOptions) -> Self {
                Self::from_client(self.__rpc_client.prepare(options))
            }

            #(#methods)*
        }
    }
}

fn method(method: &Method) -> TokenStream {
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
        pub async fn #ident(&self, #ctx: &#rt::Context, #(#params),*) -> #ret {
            let mut __rpc_call = #p::Call::new(#wire_name, #since);
            #(#pushes)*
            #send
        }
    }
}
