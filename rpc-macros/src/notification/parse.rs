//! Syntax only: `#[notification_endpoint(event_type = "…", publisher_id = "…",
//! context(key = "…"), payload(key = "…"))]`.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Ident, LitStr};

use crate::errors::Errors;
use crate::parse::{Once, skip_value, unknown_key};

/// The keys the attribute takes.
pub(super) const KEYS: &[&str] = &["event_type", "publisher_id", "context", "payload"];

/// The attribute's arguments, as written.
pub(super) struct Args {
    pub(super) event_type: Once<LitStr>,
    pub(super) publisher_id: Once<LitStr>,
    /// `context(key = "regex", …)`: (key, its span, the expression).
    pub(super) context: Vec<(String, Span, LitStr)>,
    pub(super) payload: Vec<(String, Span, LitStr)>,
}

/// Parses the arguments, recording every mistake.
pub(super) fn args(attr: TokenStream, errors: &mut Errors) -> Args {
    let mut args = Args {
        event_type: Once::new("event_type"),
        publisher_id: Once::new("publisher_id"),
        context: Vec::new(),
        payload: Vec::new(),
    };
    let parser = syn::meta::parser(|meta| {
        let key = meta.path.get_ident().map(ToString::to_string);
        let span = meta.path.span();
        match key.as_deref() {
            Some("event_type") | Some("publisher_id") => {
                let value: LitStr = meta.value()?.parse()?;
                let slot = if key.as_deref() == Some("event_type") {
                    &mut args.event_type
                } else {
                    &mut args.publisher_id
                };
                slot.set(span, value, errors);
            }
            Some(which @ ("context" | "payload")) => {
                let list = if which == "context" {
                    &mut args.context
                } else {
                    &mut args.payload
                };
                if !meta.input.peek(syn::token::Paren) {
                    errors.push(
                        span,
                        format_args!(
                            "`{which}` takes a list of keys and expressions: `{which}(key = \"regex\")`"
                        ),
                    );
                    skip_value(&meta)?;
                    return Ok(());
                }
                meta.parse_nested_meta(|inner| {
                    let key: &Ident = inner.path.get_ident().ok_or_else(|| {
                        inner.error(format!("`{which}(…)` takes `key = \"regex\"` pairs"))
                    })?;
                    let value: LitStr = inner.value()?.parse()?;
                    list.push((key.to_string(), key.span(), value));
                    Ok(())
                })?;
            }
            _ => {
                errors.push(span, unknown_key("notification_endpoint", &meta.path, KEYS));
                skip_value(&meta)?;
            }
        }
        Ok(())
    });
    if let Err(error) = parser.parse2(attr) {
        errors.push_error(error);
    }
    args
}
