//! JSON key extraction with JMESPath (the `jmespath` crate, which follows the
//! JMESPath specification and its compliance suite).
//!
//! Expressions come from the SecretProviderClass, values from the store: both
//! are bounded before they reach a recursive parser. An expression is at
//! most [`MAX_EXPRESSION_BYTES`] long and nests brackets, parentheses and
//! braces at most [`MAX_EXPRESSION_DEPTH`] deep; a value is parsed by
//! `serde_json`, whose recursion limit (128) bounds its depth. Only a string
//! result is accepted, as ASCP does.
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
pub struct Document(jmespath::Rcvar);

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
        Ok(Self(std::sync::Arc::new(data)))
    }

    /// The string `expr` selects.
    pub fn extract(&self, expr: &str) -> Result<SecretBytes, String> {
        check_bounds(expr)?;
        let result = compile(expr)?
            .search(self.0.clone())
            .map_err(|e| format!("evaluation failed: {}", first_line(&e.to_string())))?;
        if result.is_null() {
            return Err("selects nothing in the object's value".into());
        }
        match result.as_string() {
            Some(s) => Ok(SecretBytes::from(s.clone())),
            None => Err(format!("selects a {}, not a string", result.get_type())),
        }
    }
}

/// Evaluates `expr` on a JSON value and returns the string it selects.
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
    fn extracts_strings_only() {
        let value = v(r#"{"username":"admin","port":5432,"nested":{"k":"deep"},"list":["a","b"]}"#);
        assert_eq!(extract(&value, "username").unwrap().expose(), b"admin");
        assert_eq!(extract(&value, "nested.k").unwrap().expose(), b"deep");
        assert_eq!(extract(&value, "list[1]").unwrap().expose(), b"b");
        assert!(extract(&value, "port").unwrap_err().contains("number"));
        assert!(extract(&value, "missing").unwrap_err().contains("nothing"));
        assert!(extract(&value, "nested").unwrap_err().contains("object"));
    }

    #[test]
    fn errors_never_quote_the_value() {
        let value = v(r#"{"password": 12345678, "x": "topsecret-value" "#);
        let e = extract(&value, "password").unwrap_err();
        assert!(!e.contains("topsecret"), "{e}");
        let e = extract(&v(r#"{"password": 98765}"#), "password").unwrap_err();
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
