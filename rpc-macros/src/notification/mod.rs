//! `#[notification_endpoint]`: the same pipeline as `#[rpc_endpoint]`, for a notification
//! listener's endpoint. `parse` reads the attribute and the impl block, `model` lowers them to the
//! filter and the priority methods with spans, `validate` checks every rule at once (regular
//! expressions included), `codegen` writes the `NotificationEndpoint` impl.

mod codegen;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::Errors;

/// Expands `#[notification_endpoint(attr)] item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = parse::args(attr, &mut errors);
    let item_impl: syn::ItemImpl = match syn::parse2(item.clone()) {
        Ok(item_impl) => item_impl,
        Err(error) => {
            let error = syn::Error::new(
                error.span(),
                "`#[notification_endpoint]` goes on an impl block: `impl MyListener { … }`",
            )
            .to_compile_error();
            return quote!(#error #item);
        }
    };
    let endpoint = model::lower(args, &item_impl);
    validate::validate(&endpoint, &mut errors);
    match errors.finish() {
        Ok(()) => {
            let generated = codegen::generate(&endpoint);
            quote!(#item_impl #generated)
        }
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#error #item_impl)
        }
    }
}
