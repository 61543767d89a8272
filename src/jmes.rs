//! JSON key extraction with JMESPath (the `jmespath` crate, which follows the
//! JMESPath specification and its compliance suite).
//!
//! Expressions come from the SecretProviderClass, values from the store: both
//! are bounded before they reach a recursive parser. An expression is at
//! most [`MAX_EXPRESSION_BYTES`] long and nests brackets, parentheses and
//! braces at most [`MAX_EXPRESSION_DEPTH`] deep; a value is parsed by
//! `serde_json`, whose recursion limit (128) bounds its depth.
//!
//! A string result is written as its text, as ASCP does. Beyond ASCP (which
//! refuses them), a number, boolean, object or array result is written as
//! compact JSON text: integers within 64 bits exactly as written, other
//! numbers in serde_json's shortest form (`1.50` is `1.5`, `1e3` is
//! `1000.0`). An integer wider than 64 bits cannot be kept as written (the
//! parser holds it as a float), so a result holding one is refused rather
//! than written altered. A `null` or missing result is an error.
//!
//! Errors describe the expression and the kind of result, never the value.

use crate::secret::SecretBytes;

/// Longest JMESPath expression accepted.
pub const MAX_EXPRESSION_BYTES: usize = 1024;
/// Deepest nesting of `(`, `[` and `{` in an expression.
pub const MAX_EXPRESSION_DEPTH: usize = 32;

/// Checks that an expression is within bounds and compiles.
pub fn check_expression(expr: &str) -> Result<(), String> {
    check_bounds(expr)?;
    compile(expr).map(|_| ())
}

/// Size and nesting limits, checked before the recursive parser runs.
fn check_bounds(expr: &str) -> Result<(), String> {
    if expr.len() > MAX_EXPRESSION_BYTES {
        return Err(format!("longer than {MAX_EXPRESSION_BYTES} bytes"));
    }
    let mut depth = 0usize;
    let mut max = 0usize;
    for c in expr.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    // Counting inside quoted literals too overestimates, which only errs on
    // the safe side.
    if max > MAX_EXPRESSION_DEPTH {
        return Err(format!("nested deeper than {MAX_EXPRESSION_DEPTH} levels"));
    }
    Ok(())
}

fn compile(expr: &str) -> Result<jmespath::Expression<'static>, String> {
    jmespath::compile(expr).map_err(|e| {
        format!(
            "not a valid JMESPath expression: {}",
            first_line(&e.to_string())
        )
    })
}

/// An object's value parsed once as JSON, for all of its jmesPath entries.
pub struct Document {
    data: jmespath::Rcvar,
    /// Whether the text holds an integer literal wider than 64 bits (parsed
    /// as a float, so not writable as written).
    wide_integers: bool,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Document(<redacted>)")
    }
}

impl Document {
    /// Parses a value as JSON.
    pub fn parse(value: &SecretBytes) -> Result<Self, String> {
        let text = std::str::from_utf8(value.expose())
            .map_err(|_| "the object's value is not UTF-8 text, so not JSON".to_string())?;
        // Parse with serde_json first: its error carries no part of the
        // value, and its recursion limit bounds the depth.
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            format!(
                "the object's value is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        let data = jmespath::Variable::from_serializable(&json)
            .map_err(|_| "the object's value cannot be queried".to_string())?;
        Ok(Self {
            data: std::sync::Arc::new(data),
            wide_integers: has_wide_integer(text),
        })
    }

    /// The value `expr` selects: a string's text, or any other non-null
    /// result as compact JSON.
    pub fn extract(&self, expr: &str) -> Result<SecretBytes, String> {
        check_bounds(expr)?;
        let result = compile(expr)?
            .search(self.data.clone())
            .map_err(|e| format!("evaluation failed: {}", first_line(&e.to_string())))?;
        if result.is_null() {
            return Err("selects nothing in the object's value".into());
        }
        if let Some(s) = result.as_string() {
            return Ok(SecretBytes::from(s.clone()));
        }
        if self.wide_integers && holds_wide_float(&result) {
            return Err(format!(
                "selects a {} holding an integer wider than 64 bits, which cannot be written exactly",
                result.get_type()
            ));
        }
        // Serializing a parsed JSON value cannot fail (no non-string keys,
        // no NaN); the error still carries no part of the value.
        serde_json::to_vec(&*result)
            .map(SecretBytes::from)
            .map_err(|_| {
                format!(
                    "selects a {} that cannot be written as JSON",
                    result.get_type()
                )
            })
    }
}

/// Whether a JSON text holds an integer literal (no fraction, no exponent)
/// outside the range serde_json keeps exactly (`i64` and `u64`).
fn has_wide_integer(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let token = &text[start..i];
                let integer = !token.contains(['.', 'e', 'E']);
                if integer && token.parse::<i64>().is_err() && token.parse::<u64>().is_err() {
                    return true;
                }
            }
            _ => i += 1,
        }
    }
    false
}

/// Whether a result holds a float that is an integer beyond 64 bits: what
/// a wide integer literal becomes once parsed.
fn holds_wide_float(v: &jmespath::Variable) -> bool {
    use jmespath::Variable;
    match v {
        Variable::Number(n) => n
            .as_f64()
            .is_some_and(|f| !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() >= 9.2e18),
        Variable::Array(items) => items.iter().any(|i| holds_wide_float(i)),
        Variable::Object(map) => map.values().any(|i| holds_wide_float(i)),
        _ => false,
    }
}

/// Evaluates `expr` on a JSON value and returns what it selects.
pub fn extract(value: &SecretBytes, expr: &str) -> Result<SecretBytes, String> {
    check_bounds(expr)?;
    Document::parse(value)?.extract(expr)
}

fn first_line(s: &str) -> String {
    crate::text::first_line(s, 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> SecretBytes {
        SecretBytes::from(s.to_string())
    }

    #[test]
    fn strings_as_text_other_results_as_compact_json() {
        let value = v(
            r#"{"username":"admin","port":5432,"neg":-17,"big":18446744073709551615,
                "ratio":1.50,"exp":1e3,"on":true,"off":false,"none":null,
                "nested":{ "k" : "deep", "n" : [1, 2.5, "x"] },"list":["a","b"]}"#,
        );
        let got =
            |e: &str| String::from_utf8(extract(&value, e).unwrap().expose().to_vec()).unwrap();
        assert_eq!(got("username"), "admin");
        assert_eq!(got("nested.k"), "deep");
        assert_eq!(got("list[1]"), "b");
        assert_eq!(got("port"), "5432");
        assert_eq!(got("neg"), "-17");
        assert_eq!(got("big"), "18446744073709551615");
        assert_eq!(got("ratio"), "1.5");
        assert_eq!(got("exp"), "1000.0");
        assert_eq!(got("on"), "true");
        assert_eq!(got("off"), "false");
        assert_eq!(got("nested"), r#"{"k":"deep","n":[1,2.5,"x"]}"#);
        assert_eq!(got("list"), r#"["a","b"]"#);
        assert_eq!(got("length(list)"), "2");
        assert!(extract(&value, "none").unwrap_err().contains("nothing"));
        assert!(extract(&value, "missing").unwrap_err().contains("nothing"));
    }

    #[test]
    fn integers_wider_than_64_bits_are_refused_not_altered() {
        let value =
            v(r#"{"wide":123456789012345678901234,"small":7,"s":"99999999999999999999999"}"#);
        let e = extract(&value, "wide").unwrap_err();
        assert!(e.contains("wider than 64 bits"), "{e}");
        assert!(!e.contains("1234567890"), "{e}");
        assert!(extract(&value, "@").unwrap_err().contains("wider"));
        assert_eq!(extract(&value, "small").unwrap().expose(), b"7");
        // A long digit string inside a JSON string is not a number.
        assert!(!has_wide_integer(
            r#"{"s":"99999999999999999999999","e":"\"1"}"#
        ));
        assert!(has_wide_integer("[-99999999999999999999]"));
    }

    #[test]
    fn errors_never_quote_the_value() {
        let value = v(r#"{"password": 12345678, "x": "topsecret-value" "#);
        let e = extract(&value, "password").unwrap_err();
        assert!(!e.contains("topsecret"), "{e}");
        let e = extract(&v(r#"{"password": 98765}"#), "nothing").unwrap_err();
        assert!(!e.contains("98765"), "{e}");
    }

    #[test]
    fn bounds_hostile_expressions_and_values() {
        let deep = format!("{}a{}", "(".repeat(5000), ")".repeat(5000));
        assert!(check_expression(&deep).is_err());
        assert!(check_expression(&"a.".repeat(600)).is_err());
        assert!(check_expression("a.b[0]").is_ok());
        assert!(check_expression("a[").is_err());
        let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(
            extract(&v(&deep_json), "a")
                .unwrap_err()
                .contains("not valid JSON")
        );
    }
}
