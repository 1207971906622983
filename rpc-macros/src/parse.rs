//! Syntax only: the attribute grammar, the annotated methods, and stripping our helper attributes.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, ImplItem, ImplItemFn, ItemImpl, LitStr, Token};

use crate::errors::Errors;

/// The keys `#[rpc_endpoint(...)]` takes.
const ENDPOINT_KEYS: &[&str] = &["topic", "version", "namespace", "aliases"];
/// The keys `#[rpc(...)]` takes.
const METHOD_KEYS: &[&str] = &["since", "cast"];
/// The keys `#[periodic_task(...)]` takes.
const PERIODIC_KEYS: &[&str] = &["spacing", "run_immediately"];
/// The method attribute.
pub(crate) const RPC_ATTR: &str = "rpc";
/// The periodic task attribute.
pub(crate) const PERIODIC_ATTR: &str = "periodic_task";
/// The argument attribute.
pub(crate) const SINCE_ATTR: &str = "since";

/// A value that may be set once; a second setting is reported at the second occurrence.
pub(crate) struct Once<T> {
    name: &'static str,
    value: Option<T>,
}

impl<T> Once<T> {
    pub(crate) fn new(name: &'static str) -> Self {
        Self { name, value: None }
    }

    pub(crate) fn set(&mut self, span: Span, value: T, errors: &mut Errors) {
        if self.value.is_some() {
            errors.push(span, format_args!("duplicate argument `{}`", self.name));
        } else {
            self.value = Some(value);
        }
    }

    pub(crate) fn into_inner(self) -> Option<T> {
        self.value
    }

    pub(crate) fn value_ref(&self) -> Option<&T> {
        self.value.as_ref()
    }
}

/// `#[rpc_endpoint(topic = "…", version = "…", namespace = "…")]`.
pub(crate) struct EndpointArgs {
    pub(crate) topic: Once<LitStr>,
    pub(crate) version: Once<LitStr>,
    pub(crate) namespace: Once<LitStr>,
    /// `aliases = "zed=4.1, 2023.1=4.2"`: release names for `[upgrade_levels]`.
    pub(crate) aliases: Once<LitStr>,
}

/// `#[rpc(since = "…", cast)]` on a method.
pub(crate) struct MethodArgs {
    pub(crate) since: Once<LitStr>,
    pub(crate) cast: Once<Span>,
}

/// One method that carries `#[rpc]`, with the attribute parsed and its arguments' `#[since]`.
pub(crate) struct RpcMethod {
    /// The method as written, our helper attributes removed.
    pub(crate) item: ImplItemFn,
    /// The span of the `#[rpc]` attribute.
    pub(crate) attr_span: Span,
    pub(crate) args: MethodArgs,
    /// `#[since("…")]` per typed parameter, in order (the receiver excluded).
    pub(crate) arg_since: Vec<Option<LitStr>>,
}

/// `#[periodic_task(spacing = SECS, run_immediately)]` on a method.
pub(crate) struct PeriodicArgs {
    pub(crate) spacing: Once<syn::LitInt>,
    pub(crate) run_immediately: Once<Span>,
}

/// One method that carries `#[periodic_task]`.
pub(crate) struct PeriodicMethod {
    /// The method as written, our helper attributes removed.
    pub(crate) item: ImplItemFn,
    pub(crate) args: PeriodicArgs,
}

/// The annotated impl block, parsed.
pub(crate) struct ParsedImpl {
    pub(crate) item: ItemImpl,
    pub(crate) methods: Vec<RpcMethod>,
    pub(crate) periodic: Vec<PeriodicMethod>,
}

/// Parses the attribute's arguments, recording every mistake.
pub(crate) fn endpoint_args(attr: TokenStream, errors: &mut Errors) -> EndpointArgs {
    let mut args = EndpointArgs {
        topic: Once::new("topic"),
        version: Once::new("version"),
        namespace: Once::new("namespace"),
        aliases: Once::new("aliases"),
    };
    let parser = syn::meta::parser(|meta| {
        let key = meta.path.get_ident().map(ToString::to_string);
        let span = meta.path.span();
        let slot = match key.as_deref() {
            Some("topic") => &mut args.topic,
            Some("version") => &mut args.version,
            Some("namespace") => &mut args.namespace,
            Some("aliases") => &mut args.aliases,
            _ => {
                errors.push(span, unknown_key("rpc_endpoint", &meta.path, ENDPOINT_KEYS));
                skip_value(&meta)?;
                return Ok(());
            }
        };
        let value: LitStr = meta.value()?.parse()?;
        slot.set(span, value, errors);
        Ok(())
    });
    if let Err(error) = parser.parse2(attr) {
        errors.push_error(error);
    }
    args
}

/// Parses the impl block: finds the `#[rpc]` methods and strips our attributes.
pub(crate) fn impl_block(item: TokenStream, errors: &mut Errors) -> syn::Result<ParsedImpl> {
    let mut item: ItemImpl = syn::parse2(item)?;
    let mut methods = Vec::new();
    let mut periodic = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(function) = impl_item else {
            continue;
        };
        let rpc_attrs = take_attrs(&mut function.attrs, RPC_ATTR);
        let periodic_attrs = take_attrs(&mut function.attrs, PERIODIC_ATTR);
        let arg_since = strip_arg_since(function, errors);
        if let Some(first) = periodic_attrs.first() {
            for extra in periodic_attrs.iter().skip(1) {
                errors.push_spanned(extra, "duplicate `#[periodic_task]` attribute");
            }
            if !rpc_attrs.is_empty() {
                errors.push_spanned(
                    first,
                    "a method is an RPC method or a periodic task, not both: call a shared helper from two methods",
                );
            }
            periodic.push(PeriodicMethod {
                args: periodic_args(first, errors),
                item: function.clone(),
            });
            continue;
        }
        let Some(first) = rpc_attrs.first() else {
            for since in arg_since.iter().flatten() {
                errors.push(
                    since.span(),
                    "`#[since]` is only meaningful on arguments of an `#[rpc]` method",
                );
            }
            continue;
        };
        for extra in rpc_attrs.iter().skip(1) {
            errors.push_spanned(extra, "duplicate `#[rpc]` attribute");
        }
        methods.push(RpcMethod {
            attr_span: first.span(),
            args: method_args(first, errors),
            arg_since,
            item: function.clone(),
        });
    }
    Ok(ParsedImpl {
        item,
        methods,
        periodic,
    })
}

fn periodic_args(attr: &Attribute, errors: &mut Errors) -> PeriodicArgs {
    let mut args = PeriodicArgs {
        spacing: Once::new("spacing"),
        run_immediately: Once::new("run_immediately"),
    };
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return args;
    }
    let result = attr.parse_nested_meta(|meta| {
        let span = meta.path.span();
        if meta.path.is_ident("spacing") {
            let value: syn::LitInt = meta.value()?.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "`spacing` is a whole number of seconds: `spacing = 60`",
                )
            })?;
            args.spacing.set(span, value, errors);
        } else if meta.path.is_ident("run_immediately") {
            if meta.input.peek(Token![=]) {
                return Err(meta.error(
                    "`run_immediately` takes no value: write `#[periodic_task(run_immediately)]`",
                ));
            }
            args.run_immediately.set(span, span, errors);
        } else {
            errors.push(
                span,
                unknown_key("periodic_task", &meta.path, PERIODIC_KEYS),
            );
            skip_value(&meta)?;
        }
        Ok(())
    });
    if let Err(error) = result {
        errors.push_error(error);
    }
    args
}

fn method_args(attr: &Attribute, errors: &mut Errors) -> MethodArgs {
    let mut args = MethodArgs {
        since: Once::new("since"),
        cast: Once::new("cast"),
    };
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return args;
    }
    let result = attr.parse_nested_meta(|meta| {
        let span = meta.path.span();
        if meta.path.is_ident("since") {
            let value: LitStr = meta.value()?.parse()?;
            args.since.set(span, value, errors);
        } else if meta.path.is_ident("cast") {
            if meta.input.peek(Token![=]) {
                return Err(meta.error("`cast` takes no value: write `#[rpc(cast)]`"));
            }
            args.cast.set(span, span, errors);
        } else {
            errors.push(span, unknown_key("rpc", &meta.path, METHOD_KEYS));
            skip_value(&meta)?;
        }
        Ok(())
    });
    if let Err(error) = result {
        errors.push_error(error);
    }
    args
}

/// Removes `#[since("…")]` from each typed parameter and returns the literals.
fn strip_arg_since(function: &mut ImplItemFn, errors: &mut Errors) -> Vec<Option<LitStr>> {
    let mut found = Vec::new();
    for input in &mut function.sig.inputs {
        let FnArg::Typed(pat_type) = input else {
            continue;
        };
        let attrs = take_attrs(&mut pat_type.attrs, SINCE_ATTR);
        let mut since = None;
        for (i, attr) in attrs.iter().enumerate() {
            if i > 0 {
                errors.push_spanned(attr, "duplicate `#[since]` attribute");
                continue;
            }
            match attr.parse_args::<LitStr>() {
                Ok(lit) => since = Some(lit),
                Err(_) => errors.push_spanned(
                    attr,
                    "expected `#[since(\"major.minor\")]`, for example `#[since(\"4.2\")]`",
                ),
            }
        }
        found.push(since);
    }
    found
}

/// Removes and returns every attribute named `name`.
fn take_attrs(attrs: &mut Vec<Attribute>, name: &str) -> Vec<Attribute> {
    let (taken, kept) = std::mem::take(attrs)
        .into_iter()
        .partition(|attr| attr.path().is_ident(name));
    *attrs = kept;
    taken
}

/// Consumes `= value` after an unknown key so parsing can go on.
pub(crate) fn skip_value(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    }
    Ok(())
}

pub(crate) fn unknown_key(attribute: &str, path: &syn::Path, known: &[&str]) -> String {
    let name = quote::quote!(#path).to_string().replace(' ', "");
    let list = known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("unknown `{attribute}` argument `{name}`; expected one of {list}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn messages(errors: Errors) -> Vec<String> {
        match errors.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn endpoint_args_unknown_and_duplicate_keys() {
        let mut errors = Errors::default();
        let args = endpoint_args(
            quote!(topic = "a", version = "1.0", topik = "b", topic = "c"),
            &mut errors,
        );
        assert_eq!(args.topic.into_inner().unwrap().value(), "a");
        assert_eq!(
            messages(errors),
            vec![
                "unknown `rpc_endpoint` argument `topik`; expected one of `topic`, `version`, `namespace`, `aliases`",
                "duplicate argument `topic`",
            ]
        );
    }

    #[test]
    fn helper_attributes_are_stripped() {
        let mut errors = Errors::default();
        let parsed = impl_block(
            quote! {
                impl M {
                    #[rpc(since = "1.1", cast)]
                    async fn m(&self, ctx: &Context, #[since("1.2")] x: Option<u8>) {}
                    fn helper(&self) {}
                }
            },
            &mut errors,
        )
        .unwrap();
        assert!(messages(errors).is_empty());
        assert_eq!(parsed.methods.len(), 1);
        assert_eq!(parsed.methods[0].arg_since.len(), 2);
        assert_eq!(
            parsed.methods[0].arg_since[1].as_ref().unwrap().value(),
            "1.2"
        );
        let item = &parsed.item;
        let out = quote!(#item).to_string();
        assert!(!out.contains("rpc"), "{out}");
        assert!(!out.contains("since"), "{out}");
    }
}
