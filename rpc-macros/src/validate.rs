//! Every rule that needs the model, one function each, all listed in [`validate`].

use std::collections::HashMap;

use syn::{GenericArgument, PathArguments, Type};

use crate::errors::Errors;
use crate::model::{Arg, Asyncness, Endpoint, Kind, Method, Output, PeriodicTask, Receiver};

/// Names the generated client already uses for its own functions.
const RESERVED_CLIENT_NAMES: &[&str] = &["new", "from_client", "client", "prepare", "target"];

/// Applies every rule, recording every violation.
pub(crate) fn validate(endpoint: &Endpoint, errors: &mut Errors) {
    endpoint_is_inherent_impl(endpoint, errors);
    endpoint_not_generic(endpoint, errors);
    unique_method_names(endpoint, errors);
    for method in &endpoint.methods {
        method_is_async_or_returns_future(method, errors);
        method_not_generic(method, errors);
        receiver_is_ref_self(method, errors);
        context_arg_present(method, errors);
        method_name_not_reserved(endpoint, method, errors);
        since_within_endpoint_version(endpoint, method, errors);
        cast_returns_unit(method, errors);
        for arg in &method.args {
            arg_is_identifier(arg, errors);
            since_arg_is_option(arg, errors);
            arg_since_newer_than_method(method, arg, errors);
        }
    }
    aliases_within_endpoint_version(endpoint, errors);
    unique_periodic_task_names(endpoint, errors);
    for task in &endpoint.periodic_tasks {
        periodic_task_signature(task, errors);
        periodic_task_spacing_positive(task, errors);
        periodic_task_returns_unit_or_result(task, errors);
    }
}

fn aliases_within_endpoint_version(endpoint: &Endpoint, errors: &mut Errors) {
    let current = endpoint.version.value;
    let mut seen: HashMap<&str, ()> = HashMap::new();
    for (name, version) in &endpoint.aliases {
        if seen.insert(name, ()).is_some() {
            errors.push(version.span, format_args!("duplicate alias `{name}`"));
        } else if version.value.major != current.major || version.value > current {
            errors.push(
                version.span,
                format_args!(
                    "alias `{name}` = {} is not a version of this API ({}.0 to {current})",
                    version.value, current.major
                ),
            );
        }
    }
}

fn unique_periodic_task_names(endpoint: &Endpoint, errors: &mut Errors) {
    let mut seen: HashMap<&str, ()> = HashMap::new();
    for task in &endpoint.periodic_tasks {
        if seen.insert(&task.name, ()).is_some() {
            errors.push(
                task.ident.span(),
                format_args!("duplicate periodic task `{}`", task.name),
            );
        }
    }
}

fn periodic_task_signature(task: &PeriodicTask, errors: &mut Errors) {
    const SHAPE: &str = "`async fn name(&self, ctx: &Context)`";
    if let Asyncness::Neither(span) = task.asyncness {
        errors.push(
            span,
            format_args!("periodic task `{}` must be an {SHAPE}", task.name),
        );
    } else if let Some(tokens) = &task.generics {
        errors.push_spanned(tokens, "periodic tasks cannot be generic");
    } else if !matches!(task.receiver, Receiver::RefSelf) {
        let tokens = match &task.receiver {
            Receiver::Other(t) | Receiver::Missing(t) => t,
            Receiver::RefSelf => return,
        };
        errors.push_spanned(
            tokens,
            format_args!("periodic tasks take `&self` and the context: {SHAPE}"),
        );
    } else if let Some(tokens) = &task.missing_context {
        errors.push_spanned(
            tokens,
            format_args!(
                "periodic task `{}` must take the context after `&self`: {SHAPE}",
                task.name
            ),
        );
    } else if let Some(first) = task.extra_args.first() {
        errors.push_spanned(
            first,
            format_args!(
                "periodic task `{}` takes no arguments besides the context: {SHAPE}",
                task.name
            ),
        );
    }
}

fn periodic_task_spacing_positive(task: &PeriodicTask, errors: &mut Errors) {
    if task.spacing_secs.value == 0 {
        errors.push(
            task.spacing_secs.span,
            "`spacing` must be at least 1 second (leave it out for the default, 60)",
        );
    }
}

fn periodic_task_returns_unit_or_result(task: &PeriodicTask, errors: &mut Errors) {
    let ok_is_unit = match &task.output {
        Output::Unit => true,
        Output::Fallible { ok, .. } => matches!(&**ok, Type::Tuple(t) if t.elems.is_empty()),
        Output::Plain(_) => false,
    };
    if !ok_is_unit {
        errors.push(
            task.ident.span(),
            format_args!(
                "periodic task `{}` returns `()` or `Result<(), E>`: nobody receives a value",
                task.name
            ),
        );
    }
}

fn endpoint_is_inherent_impl(endpoint: &Endpoint, errors: &mut Errors) {
    if let Some(tokens) = &endpoint.trait_impl {
        errors.push_spanned(
            tokens,
            "`#[rpc_endpoint]` goes on an inherent impl block (`impl MyManager { … }`), not a trait impl",
        );
    }
}

fn endpoint_not_generic(endpoint: &Endpoint, errors: &mut Errors) {
    if let Some(tokens) = &endpoint.generics {
        errors.push_spanned(
            tokens,
            "`#[rpc_endpoint]` does not support generic impl blocks",
        );
    }
}

fn unique_method_names(endpoint: &Endpoint, errors: &mut Errors) {
    let mut seen: HashMap<&str, ()> = HashMap::new();
    for method in &endpoint.methods {
        if seen.insert(&method.wire_name, ()).is_some() {
            errors.push(
                method.ident.span(),
                format_args!(
                    "duplicate RPC method `{}`: method names are unique within an endpoint",
                    method.wire_name
                ),
            );
        }
    }
}

fn method_is_async_or_returns_future(method: &Method, errors: &mut Errors) {
    if let Asyncness::Neither(span) = method.asyncness {
        errors.push(
            span,
            format_args!(
                "RPC method `{}` must be an `async fn` or return `impl Future<Output = …>`",
                method.wire_name
            ),
        );
    }
}

fn method_not_generic(method: &Method, errors: &mut Errors) {
    if let Some(tokens) = &method.generics {
        errors.push_spanned(
            tokens,
            "RPC methods cannot be generic: the wire types must be known",
        );
    }
}

fn receiver_is_ref_self(method: &Method, errors: &mut Errors) {
    match &method.receiver {
        Receiver::RefSelf => {}
        Receiver::Other(tokens) => errors.push_spanned(
            tokens,
            "RPC methods take `&self`: the server calls them concurrently on a shared manager",
        ),
        Receiver::Missing(tokens) => errors.push_spanned(
            tokens,
            "RPC methods take `&self` first, then `ctx: &Context`",
        ),
    }
}

fn context_arg_present(method: &Method, errors: &mut Errors) {
    if !matches!(method.receiver, Receiver::RefSelf) {
        return; // one error per signature is enough
    }
    if let Some(tokens) = &method.missing_context {
        errors.push_spanned(
            tokens,
            format_args!(
                "RPC method `{}` must take the request context next: `ctx: &Context`",
                method.wire_name
            ),
        );
    }
}

fn method_name_not_reserved(endpoint: &Endpoint, method: &Method, errors: &mut Errors) {
    if RESERVED_CLIENT_NAMES.contains(&method.wire_name.as_str()) {
        errors.push(
            method.ident.span(),
            format_args!(
                "method name conflicts with generated fn `{}Client::{}`",
                endpoint.name, method.wire_name
            ),
        );
    }
}

fn since_within_endpoint_version(endpoint: &Endpoint, method: &Method, errors: &mut Errors) {
    let endpoint_version = endpoint.version.value;
    let versions =
        std::iter::once(&method.since).chain(method.args.iter().filter_map(|a| a.since.as_ref()));
    for since in versions {
        if since.value.major != endpoint_version.major {
            errors.push(
                since.span,
                format_args!(
                    "`since = \"{}\"` is of another major version than the endpoint's {endpoint_version}; an old major is served by a compatibility shim",
                    since.value
                ),
            );
        } else if since.value > endpoint_version {
            errors.push(
                since.span,
                format_args!(
                    "`since = \"{}\"` is newer than the endpoint's version {endpoint_version}; raise `version` in `#[rpc_endpoint]`",
                    since.value
                ),
            );
        }
    }
}

fn cast_returns_unit(method: &Method, errors: &mut Errors) {
    if let Kind::Cast(span) = method.kind
        && !method.output.is_unit()
    {
        errors.push(
            span,
            format_args!(
                "cast method `{}` cannot return a value: casts get no reply",
                method.wire_name
            ),
        );
    }
}

fn arg_is_identifier(arg: &Arg, errors: &mut Errors) {
    if let Some(tokens) = &arg.bad_pattern {
        errors.push_spanned(
            tokens,
            "RPC arguments must be plain identifiers: the name is the keyword on the wire",
        );
    }
}

fn since_arg_is_option(arg: &Arg, errors: &mut Errors) {
    if let Some(since) = &arg.since
        && !is_option(&arg.ty)
    {
        errors.push_spanned(
            &arg.ty,
            format_args!(
                "`#[since]` arguments must be `Option<T>`: callers older than {} do not send `{}`",
                since.value, arg.wire_name
            ),
        );
    }
}

fn arg_since_newer_than_method(method: &Method, arg: &Arg, errors: &mut Errors) {
    if let Some(since) = &arg.since
        && since.value <= method.since.value
    {
        errors.push(
            since.span,
            format_args!(
                "`#[since(\"{}\")]` must be newer than the method's `since = \"{}\"`; an argument as old as its method needs no `#[since]`",
                since.value, method.since.value
            ),
        );
    }
}

/// Whether a type is `Option<T>` (by its last path segment).
pub(crate) fn is_option(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| {
        s.ident == "Option"
            && matches!(&s.arguments, PathArguments::AngleBracketed(a)
                if a.args.len() == 1 && matches!(a.args.first(), Some(GenericArgument::Type(_))))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model, parse};
    use proc_macro2::TokenStream;
    use quote::quote;

    fn check(attr: TokenStream, item: TokenStream) -> Vec<String> {
        let mut errors = Errors::default();
        let args = parse::endpoint_args(attr, &mut errors);
        let parsed = parse::impl_block(item, &mut errors).unwrap();
        if let Some(endpoint) = model::lower(args, &parsed, &mut errors) {
            validate(&endpoint, &mut errors);
        }
        match errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    fn one(item: TokenStream) -> String {
        let errors = check(quote!(topic = "t", version = "4.2"), item);
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn valid_endpoint_has_no_errors() {
        let errors = check(
            quote!(topic = "t", version = "4.2", namespace = "n"),
            quote! { impl M {
                #[rpc(since = "4.0")]
                async fn a(&self, ctx: &Context, x: u8, #[since("4.2")] y: Option<u8>) -> Result<u8, E> { todo!() }
                #[rpc(since = "4.1", cast)]
                async fn b(&self, ctx: &rpc_runtime::Context) {}
                #[rpc]
                fn c(&self, ctx: &Context) -> impl Future<Output = String> + Send { async { String::new() } }
            } },
        );
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn since_newer_than_endpoint() {
        assert_eq!(
            one(quote! { impl M { #[rpc(since = "4.3")] async fn a(&self, ctx: &Context) {} } }),
            "`since = \"4.3\"` is newer than the endpoint's version 4.2; raise `version` in `#[rpc_endpoint]`"
        );
    }

    #[test]
    fn since_of_other_major() {
        assert!(
            one(quote! { impl M { #[rpc(since = "3.9")] async fn a(&self, ctx: &Context) {} } })
                .starts_with("`since = \"3.9\"` is of another major version")
        );
    }

    #[test]
    fn duplicate_method() {
        assert_eq!(
            one(quote! { impl M {
                #[rpc] async fn a(&self, ctx: &Context) {}
                #[rpc] async fn r#a(&self, ctx: &Context) {}
            } }),
            "duplicate RPC method `a`: method names are unique within an endpoint"
        );
    }

    #[test]
    fn since_argument_must_be_option() {
        assert_eq!(
            one(
                quote! { impl M { #[rpc] async fn a(&self, ctx: &Context, #[since("4.1")] x: u8) {} } }
            ),
            "`#[since]` arguments must be `Option<T>`: callers older than 4.1 do not send `x`"
        );
    }

    #[test]
    fn missing_context() {
        assert_eq!(
            one(quote! { impl M { #[rpc] async fn a(&self, x: u8) {} } }),
            "RPC method `a` must take the request context next: `ctx: &Context`"
        );
    }

    #[test]
    fn not_async() {
        assert_eq!(
            one(quote! { impl M { #[rpc] fn a(&self, ctx: &Context) -> u8 { 1 } } }),
            "RPC method `a` must be an `async fn` or return `impl Future<Output = …>`"
        );
    }

    #[test]
    fn cast_with_result() {
        assert_eq!(
            one(quote! { impl M { #[rpc(cast)] async fn a(&self, ctx: &Context) -> u8 { 1 } } }),
            "cast method `a` cannot return a value: casts get no reply"
        );
    }

    #[test]
    fn receiver_rules() {
        assert!(
            one(quote! { impl M { #[rpc] async fn a(&mut self, ctx: &Context) {} } })
                .starts_with("RPC methods take `&self`")
        );
        assert!(
            one(quote! { impl M { #[rpc] async fn a(ctx: &Context) {} } })
                .starts_with("RPC methods take `&self` first")
        );
    }

    #[test]
    fn reserved_names_and_patterns() {
        assert_eq!(
            one(quote! { impl M { #[rpc] async fn new(&self, ctx: &Context) {} } }),
            "method name conflicts with generated fn `MClient::new`"
        );
        assert!(
            one(quote! { impl M { #[rpc] async fn a(&self, ctx: &Context, (x, y): (u8, u8)) {} } })
                .starts_with("RPC arguments must be plain identifiers")
        );
    }

    #[test]
    fn argument_since_not_newer_than_method() {
        assert!(one(quote! { impl M { #[rpc(since = "4.1")] async fn a(&self, ctx: &Context, #[since("4.1")] x: Option<u8>) {} } })
            .starts_with("`#[since(\"4.1\")]` must be newer than the method's"));
    }

    #[test]
    fn endpoint_attribute_rules() {
        let errors = check(quote!(version = "4.x"), quote! { impl M {} });
        assert_eq!(
            errors,
            vec![
                "missing `topic = \"…\"` in `#[rpc_endpoint]`",
                "invalid version `4.x`: expected `major.minor`, for example \"4.2\"",
            ]
        );
        let errors = check(
            quote!(topic = "t", version = "1.0"),
            quote! { impl<T> M<T> {} },
        );
        assert_eq!(
            errors,
            vec!["`#[rpc_endpoint]` does not support generic impl blocks"]
        );
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let errors = check(
            quote!(topic = "t", version = "4.2"),
            quote! { impl M {
                #[rpc(since = "4.3")] async fn a(&self, ctx: &Context) {}
                #[rpc] fn b(&self, ctx: &Context) {}
            } },
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn periodic_task_rules() {
        assert_eq!(
            one(
                quote! { impl M { #[periodic_task(spacing = 0)] async fn t(&self, ctx: &Context) {} } }
            ),
            "`spacing` must be at least 1 second (leave it out for the default, 60)"
        );
        assert_eq!(
            one(
                quote! { impl M { #[periodic_task] async fn t(&self, ctx: &Context) -> u8 { 1 } } }
            ),
            "periodic task `t` returns `()` or `Result<(), E>`: nobody receives a value"
        );
        assert_eq!(
            one(quote! { impl M { #[periodic_task] async fn t(&mut self, ctx: &Context) {} } }),
            "periodic tasks take `&self` and the context: `async fn name(&self, ctx: &Context)`"
        );
        assert_eq!(
            one(quote! { impl M {
                #[periodic_task] async fn t(&self, ctx: &Context) {}
                #[periodic_task] async fn r#t(&self, ctx: &Context) {}
            } }),
            "duplicate periodic task `t`"
        );
        let ok = check(
            quote!(topic = "t", version = "1.0"),
            quote! { impl M {
                #[periodic_task(spacing = 5, run_immediately)]
                async fn a(&self, ctx: &Context) -> Result<(), E> { Ok(()) }
            } },
        );
        assert!(ok.is_empty(), "{ok:?}");
    }

    #[test]
    fn aliases_must_be_versions_of_this_api() {
        let errors = check(
            quote!(
                topic = "t",
                version = "4.2",
                aliases = "zed=4.1, 2023.1=4.2, Zed=4.0, x=4.3, y=3.1, bad"
            ),
            quote! { impl M { #[rpc] async fn a(&self, ctx: &Context) {} } },
        );
        assert_eq!(
            errors,
            vec![
                "invalid alias `bad`: expected `release=major.minor`, for example `aliases = \"zed=4.1, 2023.1=4.2\"`",
                "duplicate alias `zed`",
                "alias `x` = 4.3 is not a version of this API (4.0 to 4.2)",
                "alias `y` = 3.1 is not a version of this API (4.0 to 4.2)",
            ]
        );
    }
}
