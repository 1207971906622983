//! The API lock: `rpc-api.lock` beside the crate records each released version of each endpoint
//! (its methods, their arguments and types). A recorded version never changes: code whose view of a
//! recorded version differs fails to build, naming the version and the change. A version the code
//! has and the lock does not is an error too, until recorded with `RPC_API_LOCK=update` (the lock
//! only ever grows that way). A crate without a lock file is not checked.

use std::fmt::Write as _;
use std::path::Path;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

use crate::errors::Errors;
use crate::model::{Endpoint, Version};

/// The lock file's name.
const LOCK_FILE: &str = "rpc-api.lock";
/// The variable that lets a build append new versions.
const UPDATE_VAR: &str = "RPC_API_LOCK";

const HEADER: &str = "\
# rpc-api.lock: the RPC APIs this crate serves, one block per released version.
# A recorded version never changes; a new one is recorded with `RPC_API_LOCK=update cargo build`.
";

/// One version of an endpoint as the lock records it: `[Name X.Y]` then one line per method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) endpoint: String,
    pub(crate) version: Version,
    /// `name(arg: Type, …)` with ` cast` for casts, sorted.
    pub(crate) methods: Vec<String>,
}

impl Block {
    fn header(&self) -> String {
        format!("[{} {}]", self.endpoint, self.version)
    }
}

/// What the code declares at `version`: methods since then, and their arguments since then.
pub(crate) fn view(endpoint: &Endpoint, version: Version) -> Block {
    let mut methods: Vec<String> = endpoint
        .methods
        .iter()
        .filter(|m| m.since.value <= version)
        .map(|m| {
            let args: Vec<String> = m
                .args
                .iter()
                .filter(|a| a.since.is_none_or(|s| s.value <= version))
                .map(|a| format!("{}: {}", a.wire_name, normalize(&a.ty.to_token_stream())))
                .collect();
            let cast = if matches!(m.kind, crate::model::Kind::Cast(_)) {
                " cast"
            } else {
                ""
            };
            format!("{}({}){cast}", m.wire_name, args.join(", "))
        })
        .collect();
    methods.sort();
    Block {
        endpoint: endpoint.name.to_string(),
        version,
        methods,
    }
}

/// A type as text without the spaces token printing adds: `Option<Vec<String>>`.
fn normalize(tokens: &TokenStream) -> String {
    let text = tokens.to_string();
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c == ' ' {
            let before = i.checked_sub(1).and_then(|j| chars.get(j)).copied();
            let after = chars.get(i + 1).copied();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            // Keep the space between two words (`dyn Trait`, `impl Trait`).
            if word(before) && word(after) {
                out.push(' ');
            }
            continue;
        }
        out.push(*c);
    }
    out
}

/// Reads the lock's blocks. Lines that are not understood are an error naming the line.
pub(crate) fn parse(text: &str) -> Result<Vec<Block>, String> {
    let mut blocks: Vec<Block> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let (endpoint, version) = header
                .split_once(' ')
                .ok_or_else(|| format!("line {}: expected `[Endpoint X.Y]`", index + 1))?;
            let version = Version::parse_str(version.trim())
                .ok_or_else(|| format!("line {}: bad version `{version}`", index + 1))?;
            blocks.push(Block {
                endpoint: endpoint.to_owned(),
                version,
                methods: Vec::new(),
            });
        } else {
            let block = blocks.last_mut().ok_or_else(|| {
                format!("line {}: a method before any `[Endpoint X.Y]`", index + 1)
            })?;
            block.methods.push(line.to_owned());
        }
    }
    for block in &mut blocks {
        block.methods.sort();
    }
    Ok(blocks)
}

/// How the code differs from a recorded version, in words; `None` when it does not.
pub(crate) fn difference(recorded: &Block, code: &Block) -> Option<String> {
    let name = |line: &str| line.split('(').next().unwrap_or(line).to_owned();
    let mut changes = Vec::new();
    for old in &recorded.methods {
        match code.methods.iter().find(|new| name(new) == name(old)) {
            None => changes.push(format!("method `{}` was removed", name(old))),
            Some(new) if new != old => changes.push(format!("`{old}` became `{new}`")),
            Some(_) => {}
        }
    }
    for new in &code.methods {
        if !recorded.methods.iter().any(|old| name(old) == name(new)) {
            changes.push(format!("method `{new}` was added"));
        }
    }
    (!changes.is_empty()).then(|| changes.join("; "))
}

/// Renders blocks as lock text.
pub(crate) fn render(blocks: &[Block]) -> String {
    let mut out = String::from(HEADER);
    for block in blocks {
        let _ = write!(out, "\n{}\n", block.header());
        for method in &block.methods {
            let _ = writeln!(out, "{method}");
        }
    }
    out
}

/// Checks `endpoint` against the crate's lock (appending new versions when asked) and returns the
/// tokens that make cargo rebuild when the lock changes.
pub(crate) fn check(endpoint: &Endpoint, errors: &mut Errors) -> TokenStream {
    // `option_env!` makes cargo rebuild the crate when the variable changes.
    let env = quote!(
        const _: ::core::option::Option<&str> = ::core::option_env!(#UPDATE_VAR);
    );
    let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") else {
        return env;
    };
    let path = Path::new(&dir).join(LOCK_FILE);
    let update = std::env::var(UPDATE_VAR).is_ok_and(|v| v == "update");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(_) if update => String::from(HEADER),
        Err(_) => return env,
    };
    let span = endpoint.version.span;
    let mut blocks = match parse(&text) {
        Ok(blocks) => blocks,
        Err(reason) => {
            errors.push(span, format_args!("{}: {reason}", path.display()));
            return track(&path);
        }
    };
    let current = endpoint.version.value;
    let mut missing = Vec::new();
    for minor in 0..=current.minor {
        let version = Version {
            major: current.major,
            minor,
        };
        let code = view(endpoint, version);
        match blocks
            .iter()
            .find(|b| b.endpoint == code.endpoint && b.version == version)
        {
            Some(recorded) => {
                if let Some(change) = difference(recorded, &code) {
                    errors.push(
                        span,
                        format_args!(
                            "{LOCK_FILE} records {} {version}, and the code changed it: {change}. A released version never changes: raise `version` and mark what is new with `since`",
                            code.endpoint
                        ),
                    );
                }
            }
            None => missing.push(code),
        }
    }
    if missing.is_empty() {
        return track(&path);
    }
    if update {
        // Another binary of the crate may have written since we read: merge into the newest.
        if let Some(newest) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| parse(&t).ok())
        {
            blocks = newest;
        }
        for block in missing {
            if !blocks
                .iter()
                .any(|b| b.endpoint == block.endpoint && b.version == block.version)
            {
                blocks.push(block);
            }
        }
        if let Err(error) = std::fs::write(&path, render(&blocks)) {
            errors.push(
                span,
                format_args!("cannot write {}: {error}", path.display()),
            );
        }
    } else {
        let versions: Vec<String> = missing.iter().map(|b| b.version.to_string()).collect();
        errors.push(
            span,
            format_args!(
                "{LOCK_FILE} does not record {} {}: record new versions with `{UPDATE_VAR}=update cargo build` and commit the lock",
                endpoint.name,
                versions.join(", ")
            ),
        );
    }
    track(&path)
}

/// `include_bytes!` of the lock and `option_env!` of the variable, so cargo rebuilds the crate
/// when either changes.
fn track(path: &Path) -> TokenStream {
    let path = path.display().to_string();
    quote! {
        const _: &[u8] = ::core::include_bytes!(#path);
        const _: ::core::option::Option<&str> = ::core::option_env!(#UPDATE_VAR);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{model, parse as parse_syntax};

    fn endpoint(item: TokenStream) -> Endpoint {
        let mut errors = Errors::default();
        let args = parse_syntax::endpoint_args(quote!(topic = "t", version = "4.2"), &mut errors);
        let parsed = parse_syntax::impl_block(item, &mut errors).expect("impl block");
        model::lower(args, &parsed, &mut errors).expect("model")
    }

    fn scheduler() -> Endpoint {
        endpoint(quote! { impl Scheduler {
            #[rpc(since = "4.0")]
            async fn select(&self, ctx: &Context, count: u32, #[since("4.2")] uuids: Option<Vec<String>>) -> u32 { 0 }
            #[rpc(since = "4.1", cast)]
            async fn update(&self, ctx: &Context, host: String) {}
        } })
    }

    #[test]
    fn each_version_records_what_it_had() {
        let api = scheduler();
        let v = |minor| view(&api, Version { major: 4, minor });
        assert_eq!(v(0).methods, vec!["select(count: u32)"]);
        assert_eq!(
            v(1).methods,
            vec!["select(count: u32)", "update(host: String) cast"]
        );
        assert_eq!(
            v(2).methods,
            vec![
                "select(count: u32, uuids: Option<Vec<String>>)",
                "update(host: String) cast"
            ]
        );
    }

    #[test]
    fn the_lock_round_trips() {
        let api = scheduler();
        let blocks: Vec<Block> = (0..=2)
            .map(|minor| view(&api, Version { major: 4, minor }))
            .collect();
        let text = render(&blocks);
        assert!(
            text.contains("[Scheduler 4.1]\nselect(count: u32)\nupdate(host: String) cast\n"),
            "{text}"
        );
        assert_eq!(parse(&text).expect("parses"), blocks);
        assert!(parse("select(x: u8)\n").is_err());
        assert!(parse("[Scheduler four]\n").is_err());
    }

    #[test]
    fn changes_to_a_recorded_version_are_named() {
        let recorded = view(&scheduler(), Version { major: 4, minor: 1 });
        let retyped = endpoint(quote! { impl Scheduler {
            #[rpc(since = "4.0")]
            async fn select(&self, ctx: &Context, count: u64) -> u32 { 0 }
        } });
        let code = view(&retyped, Version { major: 4, minor: 1 });
        assert_eq!(
            difference(&recorded, &code).expect("a difference"),
            "`select(count: u32)` became `select(count: u64)`; method `update` was removed"
        );
        assert_eq!(difference(&recorded, &recorded), None);
    }

    #[test]
    fn types_lose_token_spacing_but_keep_words_apart() {
        assert_eq!(
            normalize(&quote!(Option<Vec<String>>)),
            "Option<Vec<String>>"
        );
        assert_eq!(
            normalize(&quote!(Box<dyn Error + Send>)),
            "Box<dyn Error+Send>"
        );
        assert_eq!(
            normalize(&quote!(std::collections::HashMap<String, u8>)),
            "std::collections::HashMap<String,u8>"
        );
    }
}
