//! "Did you mean …?": the known name a mistyped one most resembles, for configuration files,
//! transport URLs and anything else an operator spells by hand.

/// The known name `name` is probably a misspelling of: the nearest by edit distance, when it is
/// close enough to be a typo (two edits, or one in six characters for long names).
///
/// ```
/// use rpc_runtime::suggest::nearest;
///
/// assert_eq!(nearest("report_intervall", &["host", "report_interval"]), Some("report_interval"));
/// assert_eq!(nearest("use_syslog", &["host", "report_interval"]), None);
/// ```
pub fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = 2.max(name.len() / 6);
    known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), *k))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

/// The known name closest to `name`, however far (for a name that must be one of `known`).
///
/// ```
/// use rpc_runtime::suggest::closest;
///
/// assert_eq!(closest("compte", &["compute", "scheduler"]), Some("compute"));
/// assert_eq!(closest("anything", &[]), None);
/// ```
pub fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .min_by_key(|k| strsim::levenshtein(name, k))
        .copied()
}

/// ` (did you mean `name`?)` after a message when there is a suggestion, nothing when there is
/// none: the one wording for every "unknown name" message.
pub(crate) struct DidYouMean<'a>(pub(crate) Option<&'a str>);

impl std::fmt::Display for DidYouMean<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(name) => write!(f, " (did you mean `{name}`?)"),
            None => Ok(()),
        }
    }
}
