//! The rules a versioned object must follow, each reported at the token it is about:
//!
//! - `name` and `namespace` are not empty;
//! - a field's `#[since]` has the object's major and is not newer than the object;
//! - a field added after `major.0` is an `Option` or has `#[object(default)]` (older senders leave
//!   it out);
//! - `#[object(nullable)]` is for `Option` fields.

use super::model::Object;
use crate::errors::Errors;

pub(super) fn validate(object: &Object, errors: &mut Errors) {
    for (what, value) in [("name", &object.name), ("namespace", &object.namespace)] {
        if value.value.trim().is_empty() {
            errors.push(
                value.span,
                format_args!("the object's {what} must not be empty"),
            );
        }
    }
    let current = object.version.value;
    for field in &object.fields {
        if let Some(since) = field.since {
            if since.value.major != current.major {
                errors.push(
                    since.span,
                    format_args!(
                        "`#[since(\"{}\")]` is another major than the object's {current}: a new major is a new object",
                        since.value
                    ),
                );
            } else if since.value > current {
                errors.push(
                    since.span,
                    format_args!(
                        "`#[since(\"{}\")]` is newer than the object's version {current}",
                        since.value
                    ),
                );
            } else if since.value.minor > 0 && !field.is_option && !field.default {
                errors.push(
                    field.span,
                    format_args!(
                        "`{}` was added in {}: make it `Option<_>` or add `#[object(default)]`, since senders older than {} leave it out",
                        field.key, since.value, since.value
                    ),
                );
            }
        }
        if field.nullable && !field.is_option {
            errors.push(
                field.span,
                format_args!(
                    "`#[object(nullable)]` sends `None` as null: `{}` must be an `Option<_>`",
                    field.key
                ),
            );
        }
    }
}
