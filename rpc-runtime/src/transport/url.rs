//! Transport URLs, oslo.messaging style: `rabbit://user:pass@host1:5672,user:pass@host2:5672/vhost?opt=v`.

use std::fmt;
use std::str::FromStr;

use crate::error::TransportError;

/// One broker host of a transport URL.
#[derive(Clone, PartialEq, Eq)]
pub struct TransportHost {
    /// The user name, if any.
    pub username: Option<String>,
    password: Option<String>,
    /// The host name or address.
    pub hostname: String,
    /// The port, if given.
    pub port: Option<u16>,
}

impl TransportHost {
    /// A host with only a name: default port and credentials.
    #[cfg_attr(not(feature = "amqp"), allow(dead_code))]
    pub(crate) fn named(hostname: &str) -> Self {
        Self {
            username: None,
            password: None,
            hostname: hostname.to_owned(),
            port: None,
        }
    }

    /// The password, if any. It is never printed: `Display` and `Debug` show `***`.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }
}

impl fmt::Display for TransportHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.username {
            f.write_str(user)?;
            if self.password.is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.hostname)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TransportHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransportHost({self})")
    }
}

/// A parsed transport URL. `Display` and `Debug` redact passwords, so it is safe to log.
///
/// # Examples
///
/// ```
/// use rpc_runtime::TransportUrl;
///
/// let url: TransportUrl = "rabbit://nova:s3cret@rmq1:5672,nova:s3cret@rmq2/openstack".parse().unwrap();
/// assert_eq!(url.hosts().len(), 2);
/// assert_eq!(url.to_string(), "rabbit://nova:***@rmq1:5672,nova:***@rmq2/openstack");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TransportUrl {
    scheme: String,
    hosts: Vec<TransportHost>,
    virtual_host: Option<String>,
    query: Vec<(String, String)>,
}

impl TransportUrl {
    /// The scheme: `memory`, `rabbit`, `amqp`, `amqps`.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The broker hosts, in failover order.
    pub fn hosts(&self) -> &[TransportHost] {
        &self.hosts
    }

    /// The virtual host (percent-decoded), if the URL has a path.
    pub fn virtual_host(&self) -> Option<&str> {
        self.virtual_host.as_deref()
    }

    /// The query options, in order.
    pub fn query(&self) -> &[(String, String)] {
        &self.query
    }

    /// The value of one query option.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `memory://`, or `memory://name/` for a named in-process broker.
    pub fn memory(name: Option<&str>) -> Self {
        Self {
            scheme: "memory".to_owned(),
            hosts: name.map(TransportHost::named).into_iter().collect(),
            virtual_host: None,
            query: Vec::new(),
        }
    }

    /// Adds query options the URL does not set itself (the URL's own win).
    pub fn with_default_options(
        mut self,
        options: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        for (key, value) in options {
            if self.option(&key).is_none() {
                self.query.push((key, value));
            }
        }
        self
    }
}

impl fmt::Display for TransportUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        for (i, host) in self.hosts.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{host}")?;
        }
        if let Some(vhost) = &self.virtual_host {
            write!(f, "/{}", percent_encode(vhost))?;
        }
        if !self.query.is_empty() {
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&self.query)
                .finish();
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TransportUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransportUrl({self})")
    }
}

impl FromStr for TransportUrl {
    type Err = TransportError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| TransportError::InvalidUrl {
            url: redact_raw(input),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = input
            .split_once("://")
            .ok_or_else(|| invalid("expected `scheme://…`"))?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-')
        {
            return Err(invalid("the scheme must be letters, digits, `+` or `-`"));
        }
        let (hosts, path, query) = split_authority(rest).map_err(&invalid)?;
        let virtual_host = match path {
            None | Some("") => None,
            Some(p) => Some(
                percent_decode(p)
                    .ok_or_else(|| invalid("bad percent-escape in the virtual host"))?,
            ),
        };
        // As oslo reads the query (urllib's parse_qs): form-encoded, `+` is a space.
        let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Ok(Self {
            scheme: scheme.to_ascii_lowercase(),
            hosts,
            virtual_host,
            query: pairs,
        })
    }
}

/// A URL after `scheme://`: its hosts, path (the vhost) and query.
type Split<'a> = (Vec<TransportHost>, Option<&'a str>, Option<&'a str>);

/// Splits what follows `scheme://` into hosts, the path (the vhost) and the query.
///
/// As oslo (urllib): the hosts end at the first `/` or `?`, so an `@` in the vhost or the query
/// is theirs. A password holding a raw `/` or `?` (which urllib cannot parse) is accepted too:
/// when the hosts do not parse that way, the split moves to the first `/` or `?` after an `@`
/// that makes them parse.
fn split_authority(rest: &str) -> Result<Split<'_>, &'static str> {
    let ends: Vec<usize> = rest
        .match_indices(['/', '?'])
        .map(|(i, _)| i)
        .chain(std::iter::once(rest.len()))
        .collect();
    let mut first_error = None;
    for (n, &end) in ends.iter().enumerate() {
        // After the first candidate, only ends past an `@` can be credentials' ends.
        if n > 0 && !rest[..end].contains('@') {
            continue;
        }
        match parse_hosts(&rest[..end]) {
            Ok(hosts) => {
                let tail = &rest[end..];
                let (path, query) = match tail.strip_prefix('/') {
                    Some(after) => match after.split_once('?') {
                        Some((path, query)) => (Some(path), Some(query)),
                        None => (Some(after), None),
                    },
                    None => (None, tail.strip_prefix('?')),
                };
                return Ok((hosts, path, query));
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    Err(first_error.unwrap_or("the hosts cannot be read"))
}

fn parse_hosts(authority: &str) -> Result<Vec<TransportHost>, &'static str> {
    if authority.is_empty() {
        return Ok(Vec::new());
    }
    authority.split(',').map(parse_host).collect()
}

fn parse_host(part: &str) -> Result<TransportHost, &'static str> {
    let (credentials, address) = match part.rsplit_once('@') {
        Some((c, a)) => (Some(c), a),
        None => (None, part),
    };
    if address.contains(['/', '?']) {
        return Err("a host name holds `/` or `?`");
    }
    let (username, password) = match credentials {
        None => (None, None),
        Some(c) => match c.split_once(':') {
            Some((u, p)) => (
                Some(percent_decode(u).ok_or("bad percent-escape in the user name")?),
                Some(percent_decode(p).ok_or("bad percent-escape in the password")?),
            ),
            None => (
                Some(percent_decode(c).ok_or("bad percent-escape in the user name")?),
                None,
            ),
        },
    };
    let (hostname, port) = if let Some(stripped) = address.strip_prefix('[') {
        // [ipv6]:port
        let (host, after) = stripped
            .split_once(']')
            .ok_or("unclosed `[` in an IPv6 host")?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(
                p.parse()
                    .map_err(|_| "the port must be a number from 0 to 65535")?,
            ),
            None if after.is_empty() => None,
            None => return Err("unexpected text after an IPv6 host"),
        };
        (host.to_owned(), port)
    } else {
        match address.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                Some(
                    p.parse()
                        .map_err(|_| "the port must be a number from 0 to 65535")?,
                ),
            ),
            None => (address.to_owned(), None),
        }
    };
    if hostname.is_empty() {
        return Err("a host is empty");
    }
    Ok(TransportHost {
        username,
        password,
        hostname,
        port,
    })
}

/// Hides the credentials of text that did not parse: everything before the last `@` of the host
/// part becomes `***` (a malformed URL cannot be split into hosts reliably, so nothing of it is
/// shown).
fn redact_raw(input: &str) -> String {
    let Some((scheme, rest)) = input.split_once("://") else {
        return match input.rfind('@') {
            Some(at) => format!("***{}", &input[at..]),
            None => input.to_owned(),
        };
    };
    match rest.rfind('@') {
        Some(at) => {
            let user = rest[..at]
                .split([':', ','])
                .next()
                .filter(|u| !u.contains(['/', '?']))
                .unwrap_or("");
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => input.to_owned(),
    }
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    // percent-encoding passes a malformed escape through as text; refuse it instead.
    let malformed = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return None;
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// Everything but RFC 3986's unreserved characters.
const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes everything but unreserved characters (`%2F` for `/`).
pub(crate) fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, RESERVED).to_string()
}

/// oslo.config's booleans (`true/false`, `1/0`, `yes/no`, `on/off`, any case), shared by URL
/// options and configuration files.
pub(crate) fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_vhost_and_query() {
        let url: TransportUrl =
            "rabbit://guest:guest@127.0.0.1:5672,u2:p%40ss@[::1]/%2f?heartbeat=10&ssl"
                .parse()
                .unwrap();
        assert_eq!(url.scheme(), "rabbit");
        assert_eq!(url.hosts().len(), 2);
        assert_eq!(url.hosts()[0].hostname, "127.0.0.1");
        assert_eq!(url.hosts()[0].port, Some(5672));
        assert_eq!(url.hosts()[1].password(), Some("p@ss"));
        assert_eq!(url.hosts()[1].hostname, "::1");
        assert_eq!(url.virtual_host(), Some("/"));
        assert_eq!(url.option("heartbeat"), Some("10"));
        assert_eq!(url.option("ssl"), Some(""));
    }

    #[test]
    fn memory_url_needs_no_host() {
        let url: TransportUrl = "memory://".parse().unwrap();
        assert!(url.hosts().is_empty());
        let named: TransportUrl = "memory://tests-1".parse().unwrap();
        assert_eq!(named.hosts()[0].hostname, "tests-1");
    }

    #[test]
    fn passwords_never_print() {
        let url: TransportUrl = "rabbit://nova:topsecret@host/".parse().unwrap();
        assert!(!url.to_string().contains("topsecret"));
        assert!(!format!("{url:?}").contains("topsecret"));
        assert!(!format!("{:?}", url.hosts()[0]).contains("topsecret"));
        let err = "rabbit://nova:topsecret@host:notaport/"
            .parse::<TransportUrl>()
            .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("topsecret"), "{text}");
        assert!(text.contains("nova:***@host:notaport"), "{text}");
    }

    #[test]
    fn unencoded_slash_or_question_mark_in_a_password_stays_secret() {
        let url: TransportUrl = "rabbit://nova:p/w?x@rmq:5673/vh?heartbeat=5"
            .parse()
            .unwrap();
        assert_eq!(url.hosts()[0].password(), Some("p/w?x"));
        assert_eq!(url.hosts()[0].hostname, "rmq");
        assert_eq!(url.virtual_host(), Some("vh"));
        assert_eq!(url.option("heartbeat"), Some("5"));
        assert!(!url.to_string().contains("p/w"));
        for bad in [
            "rabbit://nova:p/w@rmq:notaport/",
            "rabbit://a:x,y@h1,b:z@h2:bad/",
        ] {
            let err = bad.parse::<TransportUrl>().unwrap_err().to_string();
            for secret in ["p/w", "x,y", "z@"] {
                assert!(!err.contains(secret), "{err}");
            }
        }
    }

    #[test]
    fn query_values_are_percent_decoded_as_oslo_does() {
        let url: TransportUrl =
            "rabbit://u:p@h/vh?ssl_ca_file=%2Fetc%2Fmy%20ca.pem&control_exchange=a+b&k%5Fx=1"
                .parse()
                .unwrap();
        assert_eq!(url.option("ssl_ca_file"), Some("/etc/my ca.pem"));
        assert_eq!(url.option("control_exchange"), Some("a b"));
        assert_eq!(url.option("k_x"), Some("1"));
        let again: TransportUrl = url.to_string().parse().unwrap();
        assert_eq!(again.query(), url.query(), "{url}");
    }

    #[test]
    fn an_at_sign_in_the_vhost_or_the_query_is_theirs() {
        let url: TransportUrl = "rabbit://nova:pw@rmq:5672/team@site?control_exchange=x@y"
            .parse()
            .unwrap();
        assert_eq!(url.hosts().len(), 1);
        assert_eq!(url.hosts()[0].username.as_deref(), Some("nova"));
        assert_eq!(url.hosts()[0].password(), Some("pw"));
        assert_eq!(url.hosts()[0].hostname, "rmq");
        assert_eq!(url.hosts()[0].port, Some(5672));
        assert_eq!(url.virtual_host(), Some("team@site"));
        assert_eq!(url.option("control_exchange"), Some("x@y"));
        let url: TransportUrl = "rabbit://a:1@h1,b:2@h2:5673?x=u@v".parse().unwrap();
        assert_eq!(url.hosts().len(), 2);
        assert_eq!(url.hosts()[1].hostname, "h2");
        assert_eq!(url.virtual_host(), None);
        assert_eq!(url.option("x"), Some("u@v"));
    }

    #[test]
    fn refuses_malformed_urls() {
        for bad in [
            "no-scheme",
            "://x",
            "rabbit://h:99999/",
            "rabbit://[::1/",
            "rabbit://u:p@/",
            "rabbit://h/%zz",
            "rabbit://h/%4",
        ] {
            match bad.parse::<TransportUrl>() {
                Err(TransportError::InvalidUrl { .. }) => {}
                other => panic!("{bad}: expected InvalidUrl, got {other:?}"),
            }
        }
    }
}
