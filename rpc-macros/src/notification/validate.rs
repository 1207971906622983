//! Every rule of `#[notification_endpoint]`, each mistake reported at its span.

use super::model::{Endpoint, PRIORITIES};
use crate::errors::Errors;

/// Checks the endpoint, recording every mistake.
pub(super) fn validate(endpoint: &Endpoint<'_>, errors: &mut Errors) {
    if !endpoint.item.generics.params.is_empty() {
        errors.push_spanned(
            &endpoint.item.generics,
            "`#[notification_endpoint]` does not support generic impl blocks",
        );
    }
    if let Some((_, trait_path, _)) = &endpoint.item.trait_ {
        errors.push_spanned(
            trait_path,
            "`#[notification_endpoint]` goes on an inherent impl block, not a trait impl",
        );
    }
    let patterns = endpoint
        .event_type
        .iter()
        .chain(&endpoint.publisher_id)
        .chain(endpoint.context.iter().map(|(_, _, p)| p))
        .chain(endpoint.payload.iter().map(|(_, _, p)| p));
    for pattern in patterns {
        if let Err(reason) = check_regex(&pattern.value()) {
            errors.push(
                pattern.span(),
                format_args!("not a valid regular expression: {reason}"),
            );
        }
    }
    for (which, rules) in [
        ("context", &endpoint.context),
        ("payload", &endpoint.payload),
    ] {
        for (index, (key, span, _)) in rules.iter().enumerate() {
            if rules[..index].iter().any(|(k, _, _)| k == key) {
                errors.push(*span, format_args!("duplicate key `{key}` in `{which}(…)`"));
            }
        }
    }
    let mut listeners = 0;
    let first_kind = endpoint
        .methods
        .iter()
        .find(|m| m.is_listener())
        .map(|m| m.batch);
    for method in &endpoint.methods {
        if !method.is_listener() {
            if method.takes_notification {
                let name = method.ident.to_string();
                let hint = closest(&name, PRIORITIES)
                    .map(|p| format!("; did you mean `{p}`?"))
                    .unwrap_or_default();
                errors.push(
                    method.ident.span(),
                    format_args!(
                        "`{name}` takes a notification but is not named for a priority: listener \
                         methods are named `audit`, `debug`, `info`, `warn`, `error`, `critical` \
                         or `sample`{hint}"
                    ),
                );
            }
            continue;
        }
        listeners += 1;
        let name = method.ident;
        if !method.asyncness {
            errors.push(
                method.sig_span,
                format_args!("listener method `{name}` must be `async fn`"),
            );
        }
        if let Err(span) = method.receiver {
            errors.push(
                span,
                format_args!("listener method `{name}` takes `&self`: endpoints are shared"),
            );
        }
        if method.params.len() != 1 {
            errors.push(
                method.sig_span,
                format_args!(
                    "listener method `{name}` takes one notification after `&self`: \
                     `n: Notification<P>`, or `batch: Vec<Notification<P>>` for a batch listener"
                ),
            );
        }
        if Some(method.batch) != first_kind {
            errors.push(
                method.ident.span(),
                format_args!(
                    "listener method `{name}` takes {} while another takes {}: an endpoint's \
                     methods all take one notification, or all take a batch (`Vec<…>`)",
                    kind(method.batch),
                    kind(!method.batch),
                ),
            );
        }
    }
    if listeners == 0 {
        errors.push_spanned(
            endpoint.self_ty,
            "`#[notification_endpoint]` needs at least one method named for a priority \
             (`async fn info(&self, n: Notification<P>)`)",
        );
    }
}

fn kind(batch: bool) -> &'static str {
    if batch { "a batch" } else { "one notification" }
}

/// Checks a regular expression as the runtime will compile it; the reason when it is not one.
fn check_regex(pattern: &str) -> Result<(), String> {
    match regex_syntax::Parser::new().parse(pattern) {
        Ok(_) => Ok(()),
        Err(regex_syntax::Error::Parse(e)) => Err(e.kind().to_string()),
        Err(regex_syntax::Error::Translate(e)) => Err(e.kind().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The known name closest to `name`, when it is close (edit distance up to 2, or a prefix).
fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (distance(name, k), *k))
        .filter(|(d, k)| *d <= 2 || name.starts_with(k) || k.starts_with(name))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_close_to_a_priority_are_suggested() {
        assert_eq!(closest("warning", PRIORITIES), Some("warn"));
        assert_eq!(closest("infos", PRIORITIES), Some("info"));
        assert_eq!(closest("handle", PRIORITIES), None);
    }

    #[test]
    fn regexes_are_checked() {
        assert!(check_regex(r"compute\..*").is_ok());
        assert!(check_regex("(").is_err());
    }
}
