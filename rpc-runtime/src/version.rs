//! RPC API versions and oslo.messaging's compatibility rule.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An RPC API version: `major.minor`, with oslo's optional third part (the revision).
///
/// Ordered as semver orders `major.minor.patch` with oslo's revision as the patch number
/// ([`to_semver`](Self::to_semver) converts). It prints as `X.Y` when the revision is zero, as oslo
/// writes it, and as `X.Y.Z` otherwise. It is `Copy` and usable in `static` tables.
///
/// # Examples
///
/// ```
/// use rpc_runtime::Version;
///
/// let server: Version = "4.1".parse().unwrap();
/// assert!(server.can_serve(&"4.0".parse().unwrap()));
/// assert!(!server.can_serve(&"4.2".parse().unwrap()));
/// assert_eq!(server.to_string(), "4.1");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    // Field order is the ordering: major, then minor, then revision.
    major: u64,
    minor: u64,
    revision: u64,
}

impl Version {
    /// Builds `major.minor` (revision 0).
    pub const fn new(major: u64, minor: u64) -> Self {
        Self::with_revision(major, minor, 0)
    }

    /// Builds `major.minor.revision`.
    pub const fn with_revision(major: u64, minor: u64, revision: u64) -> Self {
        Self {
            major,
            minor,
            revision,
        }
    }

    /// The major number: a change here breaks callers.
    pub fn major(&self) -> u64 {
        self.major
    }

    /// The minor number: a change here adds methods or arguments.
    pub fn minor(&self) -> u64 {
        self.minor
    }

    /// oslo's revision, the optional third part (0 when absent).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The version as semver sees it: `major.minor.revision`.
    pub fn to_semver(&self) -> semver::Version {
        semver::Version::new(self.major, self.minor, self.revision)
    }

    /// Tells whether a server at `self` accepts a request at `requested` (oslo's
    /// `version_is_compatible`).
    ///
    /// The majors must be equal and the requested minor at most the served one; when the minors are
    /// equal, the requested revision must be at most the served one.
    pub fn can_serve(&self, requested: &Version) -> bool {
        self.major() == requested.major()
            && match requested.minor().cmp(&self.minor()) {
                Ordering::Less => true,
                Ordering::Equal => requested.revision() <= self.revision(),
                Ordering::Greater => false,
            }
    }
}

/// A version of one API as a type: `#[rpc_endpoint]` generates one marker per version the API has
/// (`scheduler_versions::V4_1`), and a typed client capped at a marker
/// (`SchedulerClient<scheduler_versions::V4_1>`) has only the methods that exist at that version.
pub trait VersionMarker: Send + Sync + 'static {
    /// The version this marker stands for.
    const VERSION: Version;
}

/// Tells whether a message at `version` may be sent under `cap` (oslo's `can_send_version`).
///
/// With no cap, everything may be sent.
pub fn can_send_version(cap: Option<&Version>, version: &Version) -> bool {
    cap.is_none_or(|cap| cap.can_serve(version))
}

impl From<Version> for semver::Version {
    fn from(version: Version) -> Self {
        version.to_semver()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.revision() == 0 {
            write!(f, "{}.{}", self.major(), self.minor())
        } else {
            write!(f, "{}.{}.{}", self.major(), self.minor(), self.revision())
        }
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({self})")
    }
}

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid RPC version `{input}`: expected `major.minor` or `major.minor.revision` with whole numbers"
)]
pub struct ParseVersionError {
    input: String,
}

impl ParseVersionError {
    /// The text that was refused.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl FromStr for Version {
    type Err = ParseVersionError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = || ParseVersionError {
            input: input.to_owned(),
        };
        let mut parts = input.split('.');
        let mut number = || -> Result<Option<u64>, ParseVersionError> {
            match parts.next() {
                None => Ok(None),
                Some(part) if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) => {
                    part.parse().map(Some).map_err(|_| error())
                }
                Some(_) => Err(error()),
            }
        };
        let major = number()?.ok_or_else(error)?;
        let minor = number()?.ok_or_else(error)?;
        let revision = number()?.unwrap_or(0);
        if number()?.is_some() {
            return Err(error());
        }
        Ok(Self::with_revision(major, minor, revision))
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn compatibility_rule_matches_oslo() {
        // (served, requested, accepted) — the cases observed against a real oslo.messaging server, plus oslo's rules.
        let cases = [
            ("4.1", "4.0", true),
            ("4.1", "4.1", true),
            ("4.1", "4.2", false),
            ("4.1", "3.9", false),
            ("4.1", "5.0", false),
            ("4.2", "4.2.1", false),
            ("4.2.1", "4.2.1", true),
            ("4.2.1", "4.2", true),
            ("4.2", "1.0", false),
            ("1.0", "1.0", true),
        ];
        for (served, requested, accepted) in cases {
            assert_eq!(
                v(served).can_serve(&v(requested)),
                accepted,
                "server {served} request {requested}"
            );
        }
    }

    #[test]
    fn parses_and_prints_like_oslo() {
        assert_eq!(v("4.2").to_string(), "4.2");
        assert_eq!(v("4.2.0").to_string(), "4.2");
        assert_eq!(v("4.2.1").to_string(), "4.2.1");
        assert_eq!(v("10.25"), Version::new(10, 25));
        for bad in [
            "", "4", "4.", ".4", "a.b", "4.2.1.0", "-1.0", "4.+1", " 4.1",
        ] {
            let err = bad.parse::<Version>().unwrap_err();
            assert_eq!(err.input(), bad);
            assert!(err.to_string().contains("major.minor"), "{err}");
        }
    }

    #[test]
    fn orders_by_major_then_minor_then_revision_as_semver_does() {
        let mut versions = vec![v("4.10"), v("4.2"), v("3.9"), v("4.2.1")];
        versions.sort();
        assert_eq!(versions, vec![v("3.9"), v("4.2"), v("4.2.1"), v("4.10")]);
        let mut semvers: Vec<semver::Version> = versions.iter().map(Version::to_semver).collect();
        semvers.sort();
        assert_eq!(
            semvers,
            versions.iter().map(Version::to_semver).collect::<Vec<_>>()
        );
    }

    #[test]
    fn can_send_version_without_cap_sends_anything() {
        assert!(can_send_version(None, &v("9.9")));
        assert!(can_send_version(Some(&v("4.1")), &v("4.0")));
        assert!(!can_send_version(Some(&v("4.1")), &v("4.2")));
    }

    #[test]
    fn serde_uses_the_string_form() {
        assert_eq!(serde_json::to_string(&v("4.2")).unwrap(), "\"4.2\"");
        assert_eq!(
            serde_json::from_str::<Version>("\"4.2.1\"").unwrap(),
            v("4.2.1")
        );
        assert!(serde_json::from_str::<Version>("\"x\"").is_err());
    }
}
