//! The owned model of a versioned object: versions parsed, defaults filled, spans kept.

use proc_macro2::{Ident, Span};
use syn::Type;

use super::parse::ParsedObject;
use crate::errors::Errors;
use crate::model::{Spanned, Version};
use crate::validate::is_option;

/// A versioned object.
pub(super) struct Object {
    pub(super) ident: Ident,
    pub(super) name: Spanned<String>,
    pub(super) namespace: Spanned<String>,
    pub(super) serial_namespace: String,
    pub(super) version: Spanned<Version>,
    pub(super) fields: Vec<Field>,
}

/// One field.
pub(super) struct Field {
    pub(super) ident: Ident,
    /// The key in `<ns>.data`: the field's name without `r#`.
    pub(super) key: String,
    pub(super) ty: Type,
    /// The version that added it; `None`: `major.0`.
    pub(super) since: Option<Spanned<Version>>,
    /// `None` is sent as `null` (set to None) rather than left out (unset).
    pub(super) nullable: bool,
    /// Missing on receipt: `Default::default()`.
    pub(super) default: bool,
    pub(super) is_option: bool,
    pub(super) span: Span,
}

/// Lowers the parsed attributes; `None` when a required key is missing or unreadable.
pub(super) fn lower(parsed: ParsedObject<'_>, errors: &mut Errors) -> Option<Object> {
    let required = |value: Option<syn::LitStr>, key: &str, errors: &mut Errors| {
        if value.is_none() {
            errors.push(
                parsed.attr_span,
                format_args!(
                    "missing `{key} = \"…\"`: write `#[object(name = \"Selection\", namespace = \"nova\", version = \"1.1\")]` on the struct"
                ),
            );
        }
        value
    };
    let name = required(parsed.name, "name", errors);
    let namespace = required(parsed.namespace, "namespace", errors);
    let version = required(parsed.version, "version", errors);
    let version = version.and_then(|lit| spanned_version(&lit, errors));
    let mut fields = Vec::with_capacity(parsed.fields.len());
    for field in parsed.fields {
        let since = field.since.and_then(|lit| spanned_version(&lit, errors));
        fields.push(Field {
            key: syn::ext::IdentExt::unraw(field.ident).to_string(),
            ident: field.ident.clone(),
            ty: field.ty.clone(),
            since,
            nullable: field.nullable,
            default: field.default,
            is_option: is_option(field.ty),
            span: field.ident.span(),
        });
    }
    let (name, namespace, version) = (name?, namespace?, version?);
    let serial_namespace = parsed.serial_namespace.map_or_else(
        || format!("{}_object", namespace.value()),
        |lit| lit.value(),
    );
    Some(Object {
        ident: parsed.ident.clone(),
        name: Spanned {
            value: name.value(),
            span: name.span(),
        },
        namespace: Spanned {
            value: namespace.value(),
            span: namespace.span(),
        },
        serial_namespace,
        version,
        fields,
    })
}

/// The version a literal holds, with its span; reports an unreadable one.
fn spanned_version(lit: &syn::LitStr, errors: &mut Errors) -> Option<Spanned<Version>> {
    match Version::parse(lit) {
        Ok(value) => Some(Spanned {
            value,
            span: lit.span(),
        }),
        Err(error) => {
            errors.push_error(error);
            None
        }
    }
}
