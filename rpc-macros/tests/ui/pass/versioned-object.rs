//! A versioned object under strict lints: nested objects, lists, raw identifiers, defaults.
#![deny(missing_docs, missing_debug_implementations, unused)]

use rpc_runtime::VersionedObject;

/// A part.
#[derive(Debug, Clone, PartialEq, VersionedObject)]
#[object(name = "Part", namespace = "demo", version = "1.0", serial_namespace = "versioned_object")]
pub struct Part {
    /// Its name.
    pub name: String,
}

/// A widget.
#[derive(Debug, Clone, PartialEq, VersionedObject)]
#[object(name = "Widget", namespace = "demo", version = "1.2")]
pub struct Widget {
    /// Its kind.
    pub r#type: String,
    /// Parts.
    pub parts: Vec<Part>,
    /// The main part.
    #[object(nullable)]
    pub main: Option<Part>,
    /// Added in 1.1.
    #[since("1.1")]
    #[object(default)]
    pub count: u32,
    /// Added in 1.2.
    #[since("1.2")]
    pub note: Option<String>,
}

fn main() {
    let widget = Widget {
        r#type: "w".into(),
        parts: vec![Part { name: "p".into() }],
        main: None,
        count: 2,
        note: None,
    };
    let _ = rpc_runtime::object::to_primitive(&widget);
}
