//! `#[derive(VersionedObject)]`: the same pipeline as `#[rpc_endpoint]`, for a struct. `parse`
//! reads the attributes, `model` lowers them to versions and fields with spans, `validate` checks
//! every rule at once, `codegen` writes the oslo primitive codec and the serde impls.

mod codegen;
mod model;
mod parse;
mod validate;

use proc_macro2::TokenStream;

use crate::errors::Errors;

/// Expands `#[derive(VersionedObject)]` on `item`.
pub(crate) fn derive(item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let input: syn::DeriveInput = match syn::parse2(item) {
        Ok(input) => input,
        Err(error) => return error.to_compile_error(),
    };
    let parsed = parse::object(&input, &mut errors);
    let object = parsed.and_then(|parsed| model::lower(parsed, &mut errors));
    if let Some(object) = &object {
        validate::validate(object, &mut errors);
    }
    match (errors.finish(), object) {
        (Ok(()), Some(object)) => codegen::generate(&object),
        (Err(error), _) => error.to_compile_error(),
        (Ok(()), None) => TokenStream::new(),
    }
}
