//! The endpoint as values with spans: its filter, and each method with what validation and code
//! generation need to know.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ItemImpl, LitStr, Type};

use super::parse::Args;

/// oslo's priorities: the names a listener method may have.
pub(super) const PRIORITIES: &[&str] = &[
    "audit", "debug", "info", "warn", "error", "critical", "sample",
];

/// The endpoint.
pub(super) struct Endpoint<'a> {
    pub(super) item: &'a ItemImpl,
    pub(super) self_ty: &'a Type,
    pub(super) event_type: Option<LitStr>,
    pub(super) publisher_id: Option<LitStr>,
    pub(super) context: Vec<(String, Span, LitStr)>,
    pub(super) payload: Vec<(String, Span, LitStr)>,
    pub(super) methods: Vec<Method<'a>>,
}

/// A method of the impl block that is (or looks meant to be) a listener method.
pub(super) struct Method<'a> {
    pub(super) ident: &'a syn::Ident,
    /// Its priority, when its name is one.
    pub(super) priority: Option<&'static str>,
    pub(super) asyncness: bool,
    pub(super) sig_span: Span,
    /// `&self`: `Ok`; anything else: the span to point at.
    pub(super) receiver: Result<(), Span>,
    /// The parameters after the receiver.
    pub(super) params: Vec<&'a Type>,
    /// Whether its (first) parameter's type is a `Vec`: a batch method.
    pub(super) batch: bool,
    /// Whether its first parameter looks like a notification (`Notification<…>`,
    /// `RawNotification`, or a `Vec` of them), which makes a method with another name a mistake.
    pub(super) takes_notification: bool,
}

/// Lowers the parsed attribute and the impl block.
pub(super) fn lower<'a>(args: Args, item: &'a ItemImpl) -> Endpoint<'a> {
    let methods = item
        .items
        .iter()
        .filter_map(|i| match i {
            ImplItem::Fn(f) => Some(f),
            _ => None,
        })
        .map(|f| {
            let name = f.sig.ident.to_string();
            let receiver = match f.sig.inputs.first() {
                Some(FnArg::Receiver(r)) if r.reference.is_some() && r.mutability.is_none() => {
                    Ok(())
                }
                Some(other) => Err(other.span()),
                None => Err(f.sig.ident.span()),
            };
            let params: Vec<&Type> = f
                .sig
                .inputs
                .iter()
                .filter_map(|a| match a {
                    FnArg::Typed(t) => Some(&*t.ty),
                    FnArg::Receiver(_) => None,
                })
                .collect();
            let last = params.first().and_then(|t| last_segment(t));
            let batch = last.as_deref() == Some("Vec");
            let inner = if batch {
                params
                    .first()
                    .and_then(|t| first_generic(t))
                    .and_then(last_segment)
            } else {
                last.clone()
            };
            let takes_notification =
                matches!(inner.as_deref(), Some("Notification" | "RawNotification"));
            Method {
                ident: &f.sig.ident,
                priority: PRIORITIES.iter().copied().find(|p| *p == name),
                asyncness: f.sig.asyncness.is_some(),
                sig_span: f.sig.span(),
                receiver,
                params,
                batch,
                takes_notification,
            }
        })
        .collect();
    Endpoint {
        item,
        self_ty: &item.self_ty,
        event_type: args.event_type.into_inner(),
        publisher_id: args.publisher_id.into_inner(),
        context: args.context,
        payload: args.payload,
        methods,
    }
}

/// The last path segment's name of a type (`Vec`, `Notification`).
fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

/// The first generic argument of a path type (`T` of `Vec<T>`).
fn first_generic(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let syn::PathArguments::AngleBracketed(args) = &p.path.segments.last()?.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

impl Method<'_> {
    /// Whether this is a listener method: named for a priority.
    pub(super) fn is_listener(&self) -> bool {
        self.priority.is_some()
    }
}
