//! The request context: who asks, on whose behalf, and under which request id.

use serde_json::{Map, Value};

/// Which soft-deleted rows a request may see (nova's `read_deleted`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReadDeleted {
    /// Only rows that are not deleted (the default).
    #[default]
    No,
    /// Deleted rows too.
    Yes,
    /// Only deleted rows.
    Only,
}

impl ReadDeleted {
    /// The wire spelling: `no`, `yes` or `only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::No => "no",
            Self::Yes => "yes",
            Self::Only => "only",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "no" => Some(Self::No),
            "yes" => Some(Self::Yes),
            "only" => Some(Self::Only),
            _ => None,
        }
    }
}

/// The request context that travels with every message (oslo.context's `RequestContext` as a dict).
///
/// On the wire each key is flattened into the message as `_context_<key>`, exactly as
/// oslo.messaging's `pack_context` does. Keys this type does not know are kept in [`extra`](Self::extra)
/// and sent on unchanged, so a context from a Python service survives a hop through a Rust one.
///
/// # Examples
///
/// ```
/// use rpc_runtime::Context;
///
/// let ctx = Context::new().with_user("u1").with_project("p1").with_roles(["member"]);
/// assert!(ctx.request_id.starts_with("req-"));
/// assert_eq!(ctx.user_id.as_deref(), Some("u1"));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Context {
    /// The request id (`req-<uuid>`), logged on every hop.
    pub request_id: String,
    /// The id of the request that started a chain of requests across services.
    pub global_request_id: Option<String>,
    /// The user on whose behalf the request runs (`user_id`; oslo.context also sends `user`).
    pub user_id: Option<String>,
    /// The project of that user (`project_id`; oslo.context also sends `project`).
    pub project_id: Option<String>,
    /// The user's roles.
    pub roles: Vec<String>,
    /// Whether the caller is an administrator.
    pub is_admin: bool,
    /// Which soft-deleted rows the request may see.
    pub read_deleted: ReadDeleted,
    /// Every other context key, kept as sent.
    pub extra: Map<String, Value>,
}

/// The context keys with a typed field, in the order they are written.
const REQUEST_ID: &str = "request_id";
const GLOBAL_REQUEST_ID: &str = "global_request_id";
const USER_ID: &str = "user_id";
const PROJECT_ID: &str = "project_id";
const ROLES: &str = "roles";
const IS_ADMIN: &str = "is_admin";
const READ_DELETED: &str = "read_deleted";
/// oslo.context's aliases for `user_id` and `project_id`.
const USER: &str = "user";
const PROJECT: &str = "project";

impl Context {
    /// Builds a context with a fresh request id and nothing else set.
    pub fn new() -> Self {
        Self {
            request_id: new_request_id(),
            ..Self::default()
        }
    }

    /// The W3C trace context the request carries (`traceparent`), when it carries a valid one.
    pub fn traceparent(&self) -> Option<crate::trace::TraceParent> {
        self.extra
            .get(crate::trace::CONTEXT_KEY)
            .and_then(Value::as_str)
            .and_then(|text| text.parse().ok())
    }

    /// Sets the trace context calls made with this context carry.
    #[must_use]
    pub fn with_traceparent(mut self, parent: crate::trace::TraceParent) -> Self {
        self.set_traceparent(parent);
        self
    }

    /// Starts a new trace: calls made with this context carry it, and the servers they reach
    /// continue it.
    #[must_use]
    pub fn with_new_trace(self) -> Self {
        self.with_traceparent(crate::trace::TraceParent::new_root())
    }

    /// Sets the trace context in place.
    pub fn set_traceparent(&mut self, parent: crate::trace::TraceParent) {
        self.extra.insert(
            crate::trace::CONTEXT_KEY.to_owned(),
            Value::String(parent.to_string()),
        );
    }

    /// Sets the user id.
    #[must_use]
    pub fn with_user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Sets the project id.
    #[must_use]
    pub fn with_project(mut self, project_id: impl Into<String>) -> Self {
        self.project_id = Some(project_id.into());
        self
    }

    /// Sets the roles.
    #[must_use]
    pub fn with_roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Sets whether the caller is an administrator.
    #[must_use]
    pub fn with_admin(mut self, is_admin: bool) -> Self {
        self.is_admin = is_admin;
        self
    }

    /// Sets the global request id.
    #[must_use]
    pub fn with_global_request_id(mut self, id: impl Into<String>) -> Self {
        self.global_request_id = Some(id.into());
        self
    }

    /// Sets which soft-deleted rows the request may see.
    #[must_use]
    pub fn with_read_deleted(mut self, read_deleted: ReadDeleted) -> Self {
        self.read_deleted = read_deleted;
        self
    }

    /// Adds or replaces a free key.
    #[must_use]
    pub fn with_extra(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    /// Visits every key and value as it goes on the wire: the typed fields, then the free keys.
    /// Unset optional fields and empty roles are left out (receivers default them, as oslo.context's
    /// `from_dict` does), which keeps messages short.
    pub(crate) fn for_each_entry<E>(
        &self,
        mut visit: impl FnMut(&str, ContextValue<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        visit(REQUEST_ID, ContextValue::Str(&self.request_id))?;
        for (key, value) in [
            (GLOBAL_REQUEST_ID, &self.global_request_id),
            (USER_ID, &self.user_id),
            (PROJECT_ID, &self.project_id),
        ] {
            if let Some(value) = value {
                visit(key, ContextValue::Str(value))?;
            }
        }
        if !self.roles.is_empty() {
            visit(ROLES, ContextValue::Roles(&self.roles))?;
        }
        visit(IS_ADMIN, ContextValue::Bool(self.is_admin))?;
        visit(READ_DELETED, ContextValue::Str(self.read_deleted.as_str()))?;
        for (key, value) in &self.extra {
            visit(key, ContextValue::Json(value))?;
        }
        Ok(())
    }

    /// Takes one `(key, value)` pair from the wire. A typed key whose value has an unexpected type
    /// is kept in [`extra`](Self::extra) instead of failing the request.
    pub(crate) fn absorb(&mut self, key: &str, value: Value) {
        let leftover = match (key, value) {
            (REQUEST_ID, Value::String(s)) => {
                self.request_id = s;
                None
            }
            (GLOBAL_REQUEST_ID, Value::String(s)) => {
                self.global_request_id = Some(s);
                None
            }
            (USER_ID, Value::String(s)) => {
                self.user_id = Some(s);
                None
            }
            (PROJECT_ID, Value::String(s)) => {
                self.project_id = Some(s);
                None
            }
            (GLOBAL_REQUEST_ID | USER_ID | PROJECT_ID, Value::Null) => None,
            (ROLES, Value::Array(items)) if items.iter().all(Value::is_string) => {
                self.roles = items
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::String(s) => Some(s),
                        _ => None,
                    })
                    .collect();
                None
            }
            (IS_ADMIN, Value::Bool(b)) => {
                self.is_admin = b;
                None
            }
            (READ_DELETED, Value::String(s)) => match ReadDeleted::parse(&s) {
                Some(rd) => {
                    self.read_deleted = rd;
                    None
                }
                None => Some(Value::String(s)),
            },
            (USER, Value::String(s)) => {
                if self.user_id.is_none() {
                    self.user_id = Some(s.clone());
                }
                Some(Value::String(s))
            }
            (PROJECT, Value::String(s)) => {
                if self.project_id.is_none() {
                    self.project_id = Some(s.clone());
                }
                Some(Value::String(s))
            }
            (_, other) => Some(other),
        };
        if let Some(value) = leftover {
            self.extra.insert(key.to_owned(), value);
        }
    }

    /// The context as oslo's dict (`RequestContext.to_dict()`).
    pub fn to_dict(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let _ = self.for_each_entry::<()>(|key, value| {
            map.insert(key.to_owned(), value.to_json());
            Ok(())
        });
        map
    }

    /// Builds a context from oslo's dict form. Unknown keys land in [`extra`](Self::extra).
    pub fn from_dict(dict: Map<String, Value>) -> Self {
        let mut ctx = Self::default();
        for (key, value) in dict {
            ctx.absorb(&key, value);
        }
        ctx
    }
}

/// One context value as it goes on the wire, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ContextValue<'a> {
    Bool(bool),
    Str(&'a str),
    Roles(&'a [String]),
    Json(&'a Value),
}

impl ContextValue<'_> {
    fn to_json(self) -> Value {
        match self {
            Self::Bool(b) => Value::Bool(b),
            Self::Str(s) => Value::String(s.to_owned()),
            Self::Roles(roles) => Value::Array(roles.iter().cloned().map(Value::String).collect()),
            Self::Json(v) => v.clone(),
        }
    }
}

impl serde::Serialize for ContextValue<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Str(s) => serializer.serialize_str(s),
            Self::Roles(roles) => roles.serialize(serializer),
            Self::Json(v) => v.serialize(serializer),
        }
    }
}

/// A fresh request id in oslo.context's form, `req-<uuid>`.
pub fn new_request_id() -> String {
    format!("req-{}", uuid::Uuid::new_v4().hyphenated())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dict_round_trip_keeps_every_key() {
        let ctx = Context::new()
            .with_user("u1")
            .with_project("p1")
            .with_roles(["member", "reader"])
            .with_admin(true)
            .with_global_request_id("req-global")
            .with_read_deleted(ReadDeleted::Only)
            .with_extra("auth_token", "secret")
            .with_extra("nested", json!({"a": [1, 2]}));
        assert_eq!(Context::from_dict(ctx.to_dict()), ctx);
    }

    #[test]
    fn oslo_context_aliases_fill_typed_fields_and_survive() {
        // The keys oslo.context's RequestContext.to_dict() sends (the oslo-wire fixture 21_call_request_context_obj).
        let dict = json!({
            "user": "u2", "project_id": "p2", "project": "p2", "is_admin": true,
            "request_id": "req-ctx-obj", "global_request_id": null, "roles": ["admin"],
            "read_only": false, "user_identity": "u2 p2 - - -"
        });
        let Value::Object(dict) = dict else {
            unreachable!()
        };
        let ctx = Context::from_dict(dict);
        assert_eq!(ctx.user_id.as_deref(), Some("u2"));
        assert_eq!(ctx.project_id.as_deref(), Some("p2"));
        assert!(ctx.is_admin);
        assert_eq!(ctx.request_id, "req-ctx-obj");
        assert_eq!(ctx.roles, vec!["admin"]);
        assert_eq!(ctx.extra.get("user"), Some(&json!("u2")));
        assert_eq!(ctx.extra.get("user_identity"), Some(&json!("u2 p2 - - -")));
        assert!(!ctx.extra.contains_key("global_request_id"));
    }

    #[test]
    fn typed_key_with_unexpected_type_is_kept_not_lost() {
        let mut ctx = Context::default();
        ctx.absorb("is_admin", json!("yes"));
        ctx.absorb("roles", json!([1, 2]));
        ctx.absorb("read_deleted", json!("sometimes"));
        assert!(!ctx.is_admin);
        assert_eq!(ctx.extra.get("is_admin"), Some(&json!("yes")));
        assert_eq!(ctx.extra.get("roles"), Some(&json!([1, 2])));
        assert_eq!(ctx.extra.get("read_deleted"), Some(&json!("sometimes")));
    }

    #[test]
    fn new_request_ids_are_unique_and_prefixed() {
        let a = Context::new();
        let b = Context::new();
        assert!(a.request_id.starts_with("req-"));
        assert_ne!(a.request_id, b.request_id);
    }
}
