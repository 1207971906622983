//! Syntax only: the `#[object(…)]` attribute on the struct, and `#[since("…")]` and
//! `#[object(nullable, default)]` on its fields.

use syn::spanned::Spanned as _;
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Type};

use crate::errors::Errors;

/// The struct's attribute and fields, as written.
pub(super) struct ParsedObject<'a> {
    pub(super) ident: &'a Ident,
    /// Where `#[object(…)]` is, or the struct's name when it is missing.
    pub(super) attr_span: proc_macro2::Span,
    pub(super) name: Option<LitStr>,
    pub(super) namespace: Option<LitStr>,
    pub(super) serial_namespace: Option<LitStr>,
    pub(super) version: Option<LitStr>,
    pub(super) fields: Vec<ParsedField<'a>>,
}

/// One field.
pub(super) struct ParsedField<'a> {
    pub(super) ident: &'a Ident,
    pub(super) ty: &'a Type,
    pub(super) since: Option<LitStr>,
    pub(super) nullable: bool,
    pub(super) default: bool,
}

const STRUCT_KEYS: &str = "`name`, `namespace`, `version`, `serial_namespace`";

/// Reads the derive input; `None` when it is not a struct with named fields.
pub(super) fn object<'a>(input: &'a DeriveInput, errors: &mut Errors) -> Option<ParsedObject<'a>> {
    if !input.generics.params.is_empty() {
        errors.push_spanned(
            &input.generics,
            "`VersionedObject` does not support generic structs",
        );
    }
    let named = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => named,
            _ => {
                errors.push(
                    input.ident.span(),
                    "`VersionedObject` needs a struct with named fields: the field names are the keys of `<ns>.data`",
                );
                return None;
            }
        },
        _ => {
            errors.push(
                input.ident.span(),
                "`VersionedObject` is derived for structs only",
            );
            return None;
        }
    };
    let mut parsed = ParsedObject {
        ident: &input.ident,
        attr_span: input.ident.span(),
        name: None,
        namespace: None,
        serial_namespace: None,
        version: None,
        fields: Vec::new(),
    };
    let mut seen = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("object")) {
        if seen {
            errors.push(attr.span(), "duplicate `#[object(…)]` attribute");
            continue;
        }
        seen = true;
        parsed.attr_span = attr.path().span();
        let result = attr.parse_nested_meta(|meta| {
            let slot = if meta.path.is_ident("name") {
                &mut parsed.name
            } else if meta.path.is_ident("namespace") {
                &mut parsed.namespace
            } else if meta.path.is_ident("serial_namespace") {
                &mut parsed.serial_namespace
            } else if meta.path.is_ident("version") {
                &mut parsed.version
            } else {
                return Err(meta.error(format_args!(
                    "unknown key in `#[object(…)]`; expected {STRUCT_KEYS}"
                )));
            };
            let value: LitStr = meta.value()?.parse()?;
            if slot.is_some() {
                return Err(meta.error("duplicate key"));
            }
            *slot = Some(value);
            Ok(())
        });
        if let Err(error) = result {
            errors.push_error(error);
        }
    }
    for field in &named.named {
        let Some(ident) = &field.ident else { continue };
        let mut parsed_field = ParsedField {
            ident,
            ty: &field.ty,
            since: None,
            nullable: false,
            default: false,
        };
        for attr in &field.attrs {
            if attr.path().is_ident("since") {
                match attr.parse_args::<LitStr>() {
                    Ok(lit) if parsed_field.since.is_none() => parsed_field.since = Some(lit),
                    Ok(lit) => errors.push(lit.span(), "duplicate `#[since]`"),
                    Err(_) => errors.push(
                        attr.span(),
                        "expected `#[since(\"major.minor\")]`, for example `#[since(\"1.1\")]`",
                    ),
                }
            } else if attr.path().is_ident("object") {
                let result = attr.parse_nested_meta(|meta| {
                    if meta.path.is_ident("nullable") {
                        parsed_field.nullable = true;
                        Ok(())
                    } else if meta.path.is_ident("default") {
                        parsed_field.default = true;
                        Ok(())
                    } else {
                        Err(meta.error("unknown field option; expected `nullable` or `default`"))
                    }
                });
                if let Err(error) = result {
                    errors.push_error(error);
                }
            }
        }
        parsed.fields.push(parsed_field);
    }
    Some(parsed)
}
