//! Bounding and escaping text before it reaches a message or a log line:
//! object names, service answers, parser errors. A hostile input must not
//! turn one error into megabytes of log or gRPC status, nor forge a log line
//! with a newline of its own.

use std::fmt;

/// `text` cut to at most `max` bytes on a character boundary, with `…`
/// appended when it was cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

/// The first line of `text`, at most `max_chars` characters.
pub fn first_line(text: &str, max_chars: usize) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(max_chars)
        .collect()
}

/// Displays a string with its control characters escaped, for log fields
/// and messages that carry names from a SecretProviderClass:
/// `tracing::info!(object = %Escaped(&spec.name))`.
///
/// `\n`, `\r` and `\t` print as those escapes, every other control
/// character (C0, DEL, C1) as `\u{…}`, and `\` as `\\` so that an escape
/// cannot be confused with text that looks like one. Everything else prints
/// as it is.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut plain = 0;
        for (at, c) in self.0.char_indices() {
            if !c.is_control() && c != '\\' {
                continue;
            }
            f.write_str(&self.0[plain..at])?;
            plain = at + c.len_utf8();
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\\' => f.write_str("\\\\")?,
                c => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            }
        }
        f.write_str(&self.0[plain..])
    }
}

/// `text` cut to at most `max` bytes (before escaping), then escaped: what a
/// message quotes of a name.
pub fn escape_bounded(text: &str, max: usize) -> String {
    Escaped(&truncate(text, max)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_character_boundaries() {
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("ééé", 3), "é…");
        assert_eq!(first_line("one\ntwo", 10), "one");
        assert_eq!(first_line("abcdef", 2), "ab");
        assert_eq!(first_line("", 2), "");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(Escaped("plain/name-1").to_string(), "plain/name-1");
        assert_eq!(
            Escaped("a\nb\rc\td\\e\0f\u{7f}g\u{85}h\u{1b}[2m").to_string(),
            "a\\nb\\rc\\td\\\\e\\u{0}f\\u{7f}g\\u{85}h\\u{1b}[2m"
        );
        assert_eq!(Escaped("é\n").to_string(), "é\\n");
        assert_eq!(escape_bounded("ab\ncd", 3), "ab\\n…");
        assert!(!escape_bounded(&"\n".repeat(1000), 200).contains('\n'));
    }
}
