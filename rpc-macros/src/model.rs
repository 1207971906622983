//! The owned model of an endpoint: semantic values with the spans errors point at, lowered from
//! the parsed syntax. Codegen reads only this.

use std::fmt;

use proc_macro2::{Ident, Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::spanned::Spanned as _;
use syn::{FnArg, GenericArgument, LitStr, Pat, PathArguments, ReturnType, Type, TypeParamBound};

use crate::errors::Errors;
use crate::parse::{EndpointArgs, ParsedImpl, PeriodicMethod, RpcMethod};

/// An API version `major.minor` as the macro reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version {
    pub(crate) major: u64,
    pub(crate) minor: u64,
}

impl Version {
    /// `major.minor`, digits only.
    pub(crate) fn parse_str(text: &str) -> Option<Self> {
        let (major, minor) = text.split_once('.')?;
        let number = |part: &str| -> Option<u64> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        Some(Self {
            major: number(major)?,
            minor: number(minor)?,
        })
    }

    pub(crate) fn parse(lit: &LitStr) -> syn::Result<Self> {
        let text = lit.value();
        Self::parse_str(&text).ok_or_else(|| {
            syn::Error::new(
                lit.span(),
                format!("invalid version `{text}`: expected `major.minor`, for example \"4.2\""),
            )
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// A value and where it was written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spanned<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// An endpoint: the impl block's type and its RPC methods.
pub(crate) struct Endpoint {
    pub(crate) self_ty: Type,
    /// The type's name, used to name generated items.
    pub(crate) name: Ident,
    pub(crate) topic: String,
    pub(crate) namespace: Option<String>,
    pub(crate) version: Spanned<Version>,
    /// The impl block's generics, when it has any.
    pub(crate) generics: Option<TokenStream>,
    /// The trait's path, when this is a trait impl.
    pub(crate) trait_impl: Option<TokenStream>,
    pub(crate) methods: Vec<Method>,
    pub(crate) periodic_tasks: Vec<PeriodicTask>,
    /// Release names and the versions they stand for, where written.
    pub(crate) aliases: Vec<(String, Spanned<Version>)>,
}

/// A method run every `spacing` seconds while the service runs.
pub(crate) struct PeriodicTask {
    pub(crate) ident: Ident,
    /// The task's name (the identifier without `r#`).
    pub(crate) name: String,
    pub(crate) spacing_secs: Spanned<u64>,
    pub(crate) run_immediately: bool,
    pub(crate) asyncness: Asyncness,
    pub(crate) receiver: Receiver,
    /// `None` when the first parameter is `&Context`; else what stands where it should be.
    pub(crate) missing_context: Option<TokenStream>,
    /// Parameters after the context (a periodic task takes none).
    pub(crate) extra_args: Vec<TokenStream>,
    pub(crate) generics: Option<TokenStream>,
    pub(crate) output: Output,
}

/// oslo.service's default spacing, for a task that gives none.
const DEFAULT_SPACING_SECS: u64 = 60;

/// Whether a method answers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Call,
    Cast(Span),
}

/// How a method produces its future.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Asyncness {
    AsyncFn,
    ReturnsFuture,
    /// Neither: the span of the signature.
    Neither(Span),
}

/// The receiver of a method.
#[derive(Debug, Clone)]
pub(crate) enum Receiver {
    RefSelf,
    Other(TokenStream),
    Missing(TokenStream),
}

/// What a method returns.
pub(crate) enum Output {
    Unit,
    Plain(Box<Type>),
    Fallible { ok: Box<Type>, err: Box<Type> },
}

/// One RPC method.
pub(crate) struct Method {
    pub(crate) ident: Ident,
    /// The name on the wire (the identifier without `r#`).
    pub(crate) wire_name: String,
    pub(crate) since: Spanned<Version>,
    pub(crate) kind: Kind,
    pub(crate) asyncness: Asyncness,
    pub(crate) receiver: Receiver,
    /// `None` when the first parameter is `&Context`; else what stands where it should be.
    pub(crate) missing_context: Option<TokenStream>,
    pub(crate) generics: Option<TokenStream>,
    pub(crate) args: Vec<Arg>,
    pub(crate) output: Output,
}

/// One named argument (the context excluded).
pub(crate) struct Arg {
    pub(crate) ident: Ident,
    pub(crate) wire_name: String,
    pub(crate) ty: Type,
    pub(crate) since: Option<Spanned<Version>>,
    /// The pattern, when it is not a plain identifier.
    pub(crate) bad_pattern: Option<TokenStream>,
}

impl Output {
    /// Whether the method returns nothing.
    pub(crate) fn is_unit(&self) -> bool {
        matches!(self, Self::Unit)
    }
}

/// Lowers the parsed attribute and impl block. Returns `None` when too little is known to go on;
/// every problem is in `errors`.
pub(crate) fn lower(
    args: EndpointArgs,
    parsed: &ParsedImpl,
    errors: &mut Errors,
) -> Option<Endpoint> {
    let attr_span = Span::call_site();
    let topic = args.topic.into_inner();
    if topic.is_none() {
        errors.push(attr_span, "missing `topic = \"…\"` in `#[rpc_endpoint]`");
    }
    let version = match args.version.into_inner() {
        None => {
            errors.push(
                attr_span,
                "missing `version = \"major.minor\"` in `#[rpc_endpoint]`",
            );
            None
        }
        Some(lit) => match Version::parse(&lit) {
            Ok(value) => Some(Spanned {
                value,
                span: lit.span(),
            }),
            Err(e) => {
                errors.push_error(e);
                None
            }
        },
    };
    let topic = topic?;
    if topic.value().is_empty() {
        errors.push(topic.span(), "the topic must not be empty");
    }
    let version = version?;
    let item = &parsed.item;
    let name = match type_ident(&item.self_ty) {
        Some(name) => name,
        None => {
            errors.push_spanned(
                &item.self_ty,
                "`#[rpc_endpoint]` needs an impl block for a named type (`impl MyManager { … }`)",
            );
            return None;
        }
    };
    let methods = parsed
        .methods
        .iter()
        .filter_map(|m| lower_method(m, version.value, errors))
        .collect();
    let periodic_tasks = parsed
        .periodic
        .iter()
        .filter_map(|m| lower_periodic(m, errors))
        .collect();
    Some(Endpoint {
        self_ty: (*item.self_ty).clone(),
        name,
        topic: topic.value(),
        namespace: args.namespace.into_inner().map(|n| n.value()),
        version,
        generics: (!item.generics.params.is_empty()).then(|| item.generics.to_token_stream()),
        trait_impl: item
            .trait_
            .as_ref()
            .map(|(_, path, _)| path.to_token_stream()),
        methods,
        periodic_tasks,
        aliases: args
            .aliases
            .into_inner()
            .map(|lit| lower_aliases(&lit, errors))
            .unwrap_or_default(),
    })
}

/// `"zed=4.1, 2023.1=4.2"` → `[("zed", 4.1), ("2023.1", 4.2)]`; errors point at the literal.
fn lower_aliases(lit: &LitStr, errors: &mut Errors) -> Vec<(String, Spanned<Version>)> {
    let text = lit.value();
    let mut aliases = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let parsed = entry.split_once('=').and_then(|(name, version)| {
            let name = name.trim();
            let valid_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
            let version = Version::parse_str(version.trim())?;
            valid_name.then(|| (name.to_ascii_lowercase(), version))
        });
        match parsed {
            Some((name, value)) => aliases.push((
                name,
                Spanned {
                    value,
                    span: lit.span(),
                },
            )),
            None => errors.push(
                lit.span(),
                format_args!(
                    "invalid alias `{entry}`: expected `release=major.minor`, for example `aliases = \"zed=4.1, 2023.1=4.2\"`"
                ),
            ),
        }
    }
    aliases
}

fn lower_periodic(method: &PeriodicMethod, errors: &mut Errors) -> Option<PeriodicTask> {
    let sig = &method.item.sig;
    let spacing_secs = match method.args.spacing.value_ref() {
        Some(lit) => match lit.base10_parse::<u64>() {
            Ok(value) => Spanned {
                value,
                span: lit.span(),
            },
            Err(_) => {
                errors.push(
                    lit.span(),
                    "`spacing` is a whole number of seconds: `spacing = 60`",
                );
                return None;
            }
        },
        None => Spanned {
            value: DEFAULT_SPACING_SECS,
            span: sig.ident.span(),
        },
    };
    let mut typed = sig.inputs.iter().filter_map(|input| match input {
        FnArg::Typed(t) => Some(t),
        FnArg::Receiver(_) => None,
    });
    let missing_context = match typed.next() {
        Some(first) if is_context_ref(&first.ty) => None,
        Some(first) => Some(first.to_token_stream()),
        None => Some(sig.ident.to_token_stream()),
    };
    let extra_args = if missing_context.is_none() {
        typed.map(ToTokens::to_token_stream).collect()
    } else {
        Vec::new()
    };
    let (asyncness, output) = lower_output(sig);
    Some(PeriodicTask {
        ident: sig.ident.clone(),
        name: sig.ident.unraw().to_string(),
        spacing_secs,
        run_immediately: method.args.run_immediately.value_ref().is_some(),
        asyncness,
        receiver: lower_receiver(sig),
        missing_context,
        extra_args,
        generics: (!sig.generics.params.is_empty() || sig.generics.where_clause.is_some())
            .then(|| sig.generics.to_token_stream()),
        output,
    })
}

fn lower_receiver(sig: &syn::Signature) -> Receiver {
    match sig.inputs.iter().next() {
        Some(FnArg::Receiver(r))
            if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() =>
        {
            Receiver::RefSelf
        }
        Some(FnArg::Receiver(r)) => Receiver::Other(r.to_token_stream()),
        Some(FnArg::Typed(t)) => Receiver::Missing(t.to_token_stream()),
        None => Receiver::Missing(sig.ident.to_token_stream()),
    }
}

fn type_ident(ty: &Type) -> Option<Ident> {
    match ty {
        Type::Path(path) if path.qself.is_none() => {
            path.path.segments.last().map(|s| s.ident.clone())
        }
        _ => None,
    }
}

fn lower_method(
    method: &RpcMethod,
    endpoint_version: Version,
    errors: &mut Errors,
) -> Option<Method> {
    let sig = &method.item.sig;
    let since = match method.args.since.value_ref() {
        Some(lit) => match Version::parse(lit) {
            Ok(value) => Spanned {
                value,
                span: lit.span(),
            },
            Err(e) => {
                errors.push_error(e);
                return None;
            }
        },
        // No `since`: the method has been there since the major version began.
        None => Spanned {
            value: Version {
                major: endpoint_version.major,
                minor: 0,
            },
            span: method.attr_span,
        },
    };
    let receiver = lower_receiver(sig);
    let mut typed: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let mut since_attrs: Vec<Option<&LitStr>> =
        method.arg_since.iter().map(Option::as_ref).collect();
    let missing_context = match typed.first() {
        Some(first) if is_context_ref(&first.ty) => {
            typed.remove(0);
            if let Some(Some(lit)) = since_attrs.first() {
                errors.push(lit.span(), "the context argument cannot carry `#[since]`");
            }
            since_attrs.remove(0);
            None
        }
        Some(first) => Some(first.to_token_stream()),
        None => Some(sig.ident.to_token_stream()),
    };
    let args = typed
        .into_iter()
        .zip(since_attrs)
        .map(|(pat_type, since)| lower_arg(pat_type, since, errors))
        .collect();
    let (asyncness, output) = lower_output(sig);
    Some(Method {
        ident: sig.ident.clone(),
        wire_name: sig.ident.unraw().to_string(),
        since,
        kind: match method.args.cast.value_ref() {
            Some(span) => Kind::Cast(*span),
            None => Kind::Call,
        },
        asyncness,
        receiver,
        missing_context,
        generics: (!sig.generics.params.is_empty() || sig.generics.where_clause.is_some())
            .then(|| sig.generics.to_token_stream()),
        args,
        output,
    })
}

fn lower_arg(pat_type: &syn::PatType, since: Option<&LitStr>, errors: &mut Errors) -> Arg {
    let (ident, bad_pattern) = match &*pat_type.pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => (p.ident.clone(), None),
        other => (
            Ident::new("__rpc_invalid_pattern", other.span()),
            Some(other.to_token_stream()),
        ),
    };
    let since = since.and_then(|lit| match Version::parse(lit) {
        Ok(value) => Some(Spanned {
            value,
            span: lit.span(),
        }),
        Err(e) => {
            errors.push_error(e);
            None
        }
    });
    Arg {
        wire_name: ident.unraw().to_string(),
        ident,
        ty: (*pat_type.ty).clone(),
        since,
        bad_pattern,
    }
}

/// Whether a type is `&Context` (any path ending in `Context`, not `mut`).
fn is_context_ref(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) if r.mutability.is_none() => {
            matches!(&*r.elem, Type::Path(p) if p.qself.is_none()
                && p.path.segments.last().is_some_and(|s| s.ident == "Context" && s.arguments.is_empty()))
        }
        _ => false,
    }
}

fn lower_output(sig: &syn::Signature) -> (Asyncness, Output) {
    let declared = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => Some(&**ty),
    };
    if sig.asyncness.is_some() {
        return (Asyncness::AsyncFn, classify(declared));
    }
    match declared.and_then(future_output) {
        Some(inner) => (Asyncness::ReturnsFuture, classify(inner)),
        None => (Asyncness::Neither(sig.fn_token.span), classify(declared)),
    }
}

/// The `X` of `impl Future<Output = X>`; `Some(None)` for a future with no `Output` binding.
fn future_output(ty: &Type) -> Option<Option<&Type>> {
    let Type::ImplTrait(impl_trait) = ty else {
        return None;
    };
    impl_trait.bounds.iter().find_map(|bound| {
        let TypeParamBound::Trait(t) = bound else {
            return None;
        };
        let last = t.path.segments.last()?;
        if last.ident != "Future" {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            return Some(None);
        };
        Some(args.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(&assoc.ty),
            _ => None,
        }))
    })
}

fn classify(ty: Option<&Type>) -> Output {
    let Some(ty) = ty else {
        return Output::Unit;
    };
    if let Type::Tuple(t) = ty
        && t.elems.is_empty()
    {
        return Output::Unit;
    }
    if let Some([ok, err]) = result_arguments(ty).as_deref() {
        return Output::Fallible {
            ok: Box::new((*ok).clone()),
            err: Box::new((*err).clone()),
        };
    }
    Output::Plain(Box::new(ty.clone()))
}

/// The type arguments of `Result<…>` (by its last path segment).
fn result_arguments(ty: &Type) -> Option<Vec<&Type>> {
    let Type::Path(p) = ty else {
        return None;
    };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    Some(
        args.args
            .iter()
            .filter_map(|a| match a {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect(),
    )
}

impl Arg {
    /// The type as written, for the API table.
    pub(crate) fn type_text(&self) -> String {
        self.ty.to_token_stream().to_string()
    }
}
