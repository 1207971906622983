//! oslo.config's INI dialect: `[section]` headers, `key = value` (or `key: value`) lines, `#` and
//! `;` comment lines, and values continued on indented lines. Every entry keeps its line number so
//! a bad value can be reported where it was written.

/// One `key = value` of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) section: String,
    pub(crate) key: String,
    pub(crate) value: String,
    /// 1-based line of the key.
    pub(crate) line: usize,
}

/// A line the parser cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub(crate) line: usize,
    pub(crate) reason: &'static str,
}

/// Parses a whole file. Section and key names are kept as written, but `[default]` is `DEFAULT`.
pub(crate) fn parse(text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut section: Option<String> = None;
    // Whether the previous line was a key or a continuation (so an indented line continues it).
    let mut continuing = false;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continuing = false;
            continue;
        }
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let indented = raw.starts_with(' ') || raw.starts_with('\t');
        if indented && continuing {
            if let Some(last) = entries.last_mut() {
                if !last.value.is_empty() {
                    last.value.push('\n');
                }
                last.value.push_str(trimmed);
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let name = rest.strip_suffix(']').ok_or(SyntaxError {
                line,
                reason: "a section header must end with `]`",
            })?;
            let name = name.trim();
            if name.is_empty() {
                return Err(SyntaxError {
                    line,
                    reason: "empty section name",
                });
            }
            section = Some(if name.eq_ignore_ascii_case("default") {
                "DEFAULT".to_owned()
            } else {
                name.to_owned()
            });
            continuing = false;
            continue;
        }
        let Some(section) = &section else {
            return Err(SyntaxError {
                line,
                reason: "a key before any section header (start with `[DEFAULT]`)",
            });
        };
        let split = trimmed.find(['=', ':']).ok_or(SyntaxError {
            line,
            reason: "expected `key = value`",
        })?;
        let key = trimmed[..split].trim();
        if key.is_empty() {
            return Err(SyntaxError {
                line,
                reason: "a value without a key",
            });
        }
        entries.push(Entry {
            section: section.clone(),
            key: key.to_owned(),
            value: trimmed[split + 1..].trim().to_owned(),
            line,
        });
        continuing = true;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(section: &str, key: &str, value: &str, line: usize) -> Entry {
        Entry {
            section: section.into(),
            key: key.into(),
            value: value.into(),
            line,
        }
    }

    #[test]
    fn sections_keys_comments_and_continuations() {
        let text = "\
# a comment
[default]
host = node1
; another comment
transport_url: rabbit://h/

[upgrade_levels]
compute = auto
[filter]
list = a,
    b
empty =
";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                entry("DEFAULT", "host", "node1", 3),
                entry("DEFAULT", "transport_url", "rabbit://h/", 5),
                entry("upgrade_levels", "compute", "auto", 8),
                entry("filter", "list", "a,\nb", 10),
                entry("filter", "empty", "", 12),
            ]
        );
    }

    #[test]
    fn a_value_keeps_what_follows_the_first_separator() {
        let entries = parse("[database]\nconnection = mysql+pymysql://u:p@h/nova?x=1\n").unwrap();
        assert_eq!(entries[0].value, "mysql+pymysql://u:p@h/nova?x=1");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        assert_eq!(
            parse("host = a\n").unwrap_err(),
            SyntaxError {
                line: 1,
                reason: "a key before any section header (start with `[DEFAULT]`)"
            }
        );
        assert_eq!(parse("[DEFAULT]\n\n[oops\n").unwrap_err().line, 3);
        assert_eq!(
            parse("[DEFAULT]\njust words\n").unwrap_err().reason,
            "expected `key = value`"
        );
        assert_eq!(
            parse("[DEFAULT]\n = 3\n").unwrap_err().reason,
            "a value without a key"
        );
    }
}
