//! The pipeline: parse → model → validate → codegen. On any error: the errors, plus the impl block
//! with our helper attributes stripped (and no generated code, so no cascade of follow-on errors).

use proc_macro2::TokenStream;
use quote::quote;

use crate::errors::Errors;
use crate::{codegen, lock, model, parse, validate};

/// Expands `#[rpc_endpoint(attr)] item`.
pub(crate) fn rpc_endpoint(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = parse::endpoint_args(attr, &mut errors);
    let parsed = match parse::impl_block(item.clone(), &mut errors) {
        Ok(parsed) => parsed,
        Err(error) => {
            let error = syn::Error::new(
                error.span(),
                "`#[rpc_endpoint]` goes on an impl block: `impl MyManager { … }`",
            )
            .to_compile_error();
            return quote!(#error #item);
        }
    };
    let endpoint = model::lower(args, &parsed, &mut errors);
    let mut tracked = TokenStream::new();
    if let Some(endpoint) = &endpoint {
        validate::validate(endpoint, &mut errors);
        tracked = lock::check(endpoint, &mut errors);
    }
    let impl_block = &parsed.item;
    let output = match (errors.finish(), endpoint) {
        (Ok(()), Some(endpoint)) => {
            let generated = codegen::generate(&endpoint);
            quote!(#impl_block #generated #tracked)
        }
        (Err(error), _) => {
            let error = error.to_compile_error();
            quote!(#error #impl_block #tracked)
        }
        (Ok(()), None) => quote!(#impl_block),
    };
    if std::env::var_os("RPC_MACROS_DEBUG").is_some() {
        eprintln!("{output}");
    }
    output
}
