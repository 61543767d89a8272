//! Bounding text before it reaches a message: object names, service answers,
//! parser errors. A hostile input must not turn one error into megabytes of
//! log or gRPC status.

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
}
