//! JSON key extraction with JMESPath: expressions parsed by the `jmespath`
//! crate (which follows the JMESPath specification), evaluated by this
//! module's own budgeted interpreter over its AST.
//!
//! Expressions come from the SecretProviderClass, values from the store:
//! both are hostile. An expression is at most [`MAX_EXPRESSION_BYTES`] long
//! and nests brackets, parentheses and braces at most
//! [`MAX_EXPRESSION_DEPTH`] deep before it reaches the crate's recursive
//! parser; a value is parsed by `serde_json`, whose recursion limit (128)
//! bounds its depth.
//!
//! A small expression can still ask for an enormous result:
//! `@ | [@,@,@,@,@,@,@,@,@,@] | [@,@,...]` eight times over is 10^8 copies
//! of the value. So the crate's unbudgeted `search` is never called.
//! [`check_expression`] (run by `ascp validate` and by the mount's checks
//! of a class) refuses what the expression's shape already shows; the
//! interpreter ([`eval`]) refuses, during evaluation, what only the data
//! shows. Values are shared, not copied (`[@, @]` holds two references to
//! one value), but each is counted as if materialised, because the result
//! is serialized; the result is written through a writer that fails past
//! [`MAX_VALUE_BYTES`].
//!
//! | bound | value | where |
//! |---|---|---|
//! | expression length | [`MAX_EXPRESSION_BYTES`] = 1024 bytes | check and evaluation, before parsing |
//! | bracket nesting | [`MAX_EXPRESSION_DEPTH`] = 32 | check and evaluation, before parsing |
//! | expression tree depth | [`MAX_AST_DEPTH`] = 64 | check and evaluation, after parsing |
//! | projections and multi-selects nested | [`MAX_NESTING`] = 16 | check and evaluation, after parsing |
//! | static amplification (multi-select widths multiplied through pipes and projections) | [`MAX_AMPLIFICATION`] = 128 | check and evaluation, after parsing |
//! | bytes of any value built, and of the result, as compact JSON | [`MAX_VALUE_BYTES`] = 1 MiB | evaluation (each value as it is built) and serialization |
//! | elements of any value built, and of the result | [`MAX_VALUE_ELEMENTS`] = 131,072 | evaluation |
//! | nesting of any value built, and of the result | [`MAX_VALUE_DEPTH`] = 160 | evaluation |
//! | work: steps of one evaluation | [`MAX_WORK`] = 4,194,304 | evaluation |
//!
//! Why these: a secret is at most 64 KiB and a parameter at most 8 KiB, so
//! a value has at most ~32,000 elements and its compact JSON at most 64
//! KiB; a result of 16 times that, or 4 times its elements, serves any
//! reshaping a class needs (a multi-select of a few keys, a projection, a
//! sort). A step is one expression node evaluated, one element visited,
//! copied or compared (a sort of n items is n·⌈log2 n⌉), or 64 bytes of
//! text built (`join`, `to_string`); sorting or projecting a whole 64 KiB
//! value takes under a million. Static amplification counts each
//! multi-select member, function argument and literal as large as its
//! input, and multiplies through pipes, sub-expressions, projections and
//! `map`: `{user: username, password: password}` is 2, three pipes of
//! ten-wide multi-selects are 1000.
//!
//! The interpreter implements the specification: fields, indexes, slices,
//! projections (list, object, flatten, filter), pipes, multi-select lists
//! and hashes, literals, comparators, `||`, `&&`, `!`, and the built-in
//! functions with `&expression` arguments (`sort_by`, `min_by`, `max_by`,
//! `map`). Ordering comparators compare numbers only (otherwise null), as
//! the crate does. Unknown functions, wrong argument counts and misplaced
//! `&expressions` are refused by [`check_expression`]; type errors at run
//! time fail the evaluation. An arithmetic function's result is an
//! integer when it is one exactly (`sum([1, 2])` is `3`).
//!
//! A string result is written as its text, as ASCP does. Beyond ASCP (which
//! refuses them), a number, boolean, object or array result is written as
//! compact JSON text: integers within 64 bits exactly as written, other
//! numbers in serde_json's shortest form (`1.50` is `1.5`, `1e3` is
//! `1000.0`). An integer wider than 64 bits cannot be kept as written (the
//! parser holds it as a float), so a result holding one is refused rather
//! than written altered. A `null` or missing result is an error.
//!
//! Errors describe the expression, the bound and the kind of result, never
//! the value.

mod eval;
mod shape;
mod value;

use crate::secret::SecretBytes;
use eval::Eval;
pub(crate) use eval::Limits;
use value::Val;

/// Longest JMESPath expression accepted.
pub const MAX_EXPRESSION_BYTES: usize = 1024;
/// Deepest nesting of `(`, `[` and `{` in an expression.
pub const MAX_EXPRESSION_DEPTH: usize = 32;
/// Deepest expression tree (`a.b.c` is 3 deep).
pub const MAX_AST_DEPTH: usize = 64;
/// Most projections and multi-selects nested in one another.
pub const MAX_NESTING: usize = 16;
/// Most times an expression's shape may multiply its input.
pub const MAX_AMPLIFICATION: u64 = 128;
/// Most bytes of compact JSON in any value an evaluation builds, and in
/// its result.
pub const MAX_VALUE_BYTES: u64 = 1024 * 1024;
/// Most elements in any value an evaluation builds, and in its result.
pub const MAX_VALUE_ELEMENTS: u64 = 128 * 1024;
/// Deepest nesting of arrays and objects in any value an evaluation
/// builds, and in its result.
pub const MAX_VALUE_DEPTH: u32 = 160;
/// Most steps of one evaluation.
pub const MAX_WORK: u64 = 4 * 1024 * 1024;

/// The bounds every evaluation runs under.
pub(crate) const LIMITS: Limits = Limits {
    value_bytes: MAX_VALUE_BYTES,
    value_elements: MAX_VALUE_ELEMENTS,
    value_depth: MAX_VALUE_DEPTH,
    work: MAX_WORK,
};

/// Checks that an expression is within bounds, compiles, and that its
/// shape is within bounds.
pub fn check_expression(expr: &str) -> Result<(), String> {
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

/// Bounds, parses and checks the shape of an expression.
fn compile(expr: &str) -> Result<jmespath::Expression<'static>, String> {
    check_bounds(expr)?;
    let compiled = jmespath::compile(expr).map_err(|e| {
        format!(
            "not a valid JMESPath expression: {}",
            first_line(&e.to_string())
        )
    })?;
    shape::check(compiled.as_ast())?;
    Ok(compiled)
}

/// An object's value parsed once as JSON, for all of its jmesPath entries.
pub struct Document {
    data: Val,
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
        // serde_json's error carries no part of the value, and its
        // recursion limit bounds the depth.
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            format!(
                "the object's value is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        Ok(Self {
            data: Val::from_json(&json),
            wide_integers: has_wide_integer(text),
        })
    }

    /// The value `expr` selects: a string's text, or any other non-null
    /// result as compact JSON.
    pub fn extract(&self, expr: &str) -> Result<SecretBytes, String> {
        self.extract_within(expr, LIMITS).map(|(v, _)| v)
    }

    /// [`Document::extract`] under `limits`; also returns the steps taken.
    pub(crate) fn extract_within(
        &self,
        expr: &str,
        limits: Limits,
    ) -> Result<(SecretBytes, u64), String> {
        let compiled = compile(expr)?;
        let mut eval = Eval::new(limits);
        let result = eval.eval(compiled.as_ast(), &self.data)?;
        if result.is_null() {
            return Err("selects nothing in the object's value".into());
        }
        // What was selected from the value rather than built is checked
        // here.
        eval.check_size(result.size())?;
        if let Val::Str(s) = &result {
            return Ok((SecretBytes::from(s.to_string()), eval.work()));
        }
        if self.wide_integers && holds_wide_float(&result) {
            return Err(format!(
                "selects a {} holding an integer wider than 64 bits, which cannot be written exactly",
                result.type_name()
            ));
        }
        let mut out = BoundedWriter {
            buf: Vec::new(),
            cap: limits.value_bytes as usize,
        };
        serde_json::to_writer(&mut out, &result).map_err(|_| {
            format!(
                "a {} result exceeds {} bytes as JSON, the bound on a jmesPath value",
                result.type_name(),
                limits.value_bytes
            )
        })?;
        Ok((SecretBytes::new(out.buf), eval.work()))
    }
}

/// A buffer that refuses to grow past `cap` bytes.
struct BoundedWriter {
    buf: Vec<u8>,
    cap: usize,
}

impl std::io::Write for BoundedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.cap {
            return Err(std::io::Error::other("over the bound"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
fn holds_wide_float(v: &Val) -> bool {
    match v {
        Val::Num(n) => n
            .as_f64()
            .is_some_and(|f| !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() >= 9.2e18),
        Val::Arr(a) => a.items.iter().any(holds_wide_float),
        Val::Obj(o) => o.map.values().any(holds_wide_float),
        _ => false,
    }
}

/// Evaluates `expr` on a JSON value and returns what it selects.
pub fn extract(value: &SecretBytes, expr: &str) -> Result<SecretBytes, String> {
    check_bounds(expr)?;
    Document::parse(value)?.extract(expr)
}

fn first_line(s: &str) -> String {
    crate::bounded_text::first_line(s, 300)
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

#[cfg(test)]
mod conformance {
    //! The interpreter against the specification's examples, and against
    //! the `jmespath` crate's own `search` on the same inputs (the crate
    //! follows the specification's compliance suite).

    use super::*;

    /// Evaluates with this module's interpreter; the result as JSON.
    fn ours(doc: &str, expr: &str) -> Result<serde_json::Value, String> {
        let json: serde_json::Value = serde_json::from_str(doc).unwrap();
        let compiled = compile(expr)?;
        let v = Eval::new(LIMITS).eval(compiled.as_ast(), &Val::from_json(&json))?;
        Ok(serde_json::to_value(&v).unwrap())
    }

    /// Evaluates with the crate.
    fn theirs(doc: &str, expr: &str) -> Result<serde_json::Value, String> {
        let data = jmespath::Variable::from_json(doc).unwrap();
        let r = jmespath::compile(expr)
            .map_err(|e| e.to_string())?
            .search(data)
            .map_err(|e| e.to_string())?;
        Ok(serde_json::to_value(&*r).unwrap())
    }

    /// Equal as JSON, numbers by value.
    fn same(a: &serde_json::Value, b: &serde_json::Value) -> bool {
        use serde_json::Value as J;
        match (a, b) {
            (J::Number(x), J::Number(y)) => x.as_f64() == y.as_f64(),
            (J::Array(x), J::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(i, j)| same(i, j))
            }
            (J::Object(x), J::Object(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|((k, i), (l, j))| k == l && same(i, j))
            }
            _ => a == b,
        }
    }

    fn expect(doc: &str, expr: &str, want: &str) {
        let want: serde_json::Value = serde_json::from_str(want).unwrap();
        let got = ours(doc, expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert!(same(&got, &want), "{expr}: got {got}, want {want}");
    }

    const DOC: &str = r#"{
        "a": {"b": {"c": [0, 1, 2, 3, 4, 5]}},
        "people": [
            {"name": "bob", "age": 30, "tags": ["x", "y"], "o": {"k": 1}},
            {"name": "alice", "age": 25, "tags": [], "o": {"k": 2}},
            {"name": "carol", "age": 35, "tags": ["z"], "o": null},
            {"nick": "dave", "age": 25}
        ],
        "nested": [[1, 2], [3, [4, 5]], 6, []],
        "obj": {"x": 1, "y": "two", "z": [3], "n": null},
        "s": "hello", "e": "", "t": true, "f": false, "zero": 0,
        "nums": [3, 1.5, -2, 10], "strs": ["b", "a", "c"], "mixed": [1, "a"],
        "k.dot": 7, "json": "[1, 2]", "numtext": "12.5", "wide": 18446744073709551615
    }"#;

    /// Expressions over DOC, compared with the crate.
    const DIFFERENTIAL: &[&str] = &[
        "a",
        "a.b",
        "a.b.c",
        "a.b.c[0]",
        "a.b.c[-1]",
        "a.b.c[10]",
        "a.b.c[-7]",
        "missing.x",
        "\"k.dot\"",
        "s.x",
        "s[0]",
        "@",
        "@.a.b",
        "a.b.c[1:3]",
        "a.b.c[::2]",
        "a.b.c[::-1]",
        "a.b.c[-2:]",
        "a.b.c[:-2]",
        "a.b.c[5:1:-2]",
        "a.b.c[10:]",
        "a.b.c[:100]",
        "a.b.c[-100:2]",
        "a.b.c[3:-100:-1]",
        "s[1:2]",
        "people[*].name",
        "people[*].nick",
        "people[].name",
        "people[*].tags[*]",
        "people[*].tags[]",
        "people[].tags[]",
        "nested[]",
        "nested[][]",
        "nested[*][0]",
        "obj.*",
        "obj.*.x",
        "*.b",
        "people[*].o.k",
        "people[?age > `26`].name",
        "people[?age == `25`].name",
        "people[?age != `25`]",
        "people[?name == 'bob'].age",
        "people[?tags].name",
        "people[?!tags].name",
        "people[?age >= `30` && name].name",
        "people[?age < `26` || name == 'carol'].name",
        "people[?o.k > `1`] | [0].name",
        "people | [1]",
        "people[0] | name",
        "a | b | c",
        "[a.b.c[0], s, t]",
        "{first: people[0].name, n: length(people)}",
        "people[*].[name, age]",
        "people[*].{n: name, a: age}",
        "s || e",
        "e || s",
        "e && s",
        "s && t",
        "f || `null`",
        "!f",
        "!s",
        "!e",
        "!zero",
        "nums[?@ > `0`]",
        "`[1, 2]`",
        "`\"lit\"`",
        "'raw'",
        "`{\"k\": [1]}`.k",
        "t == `true`",
        "obj == obj",
        "nums == `[3, 1.5, -2, 10]`",
        "s < `1`",
        "zero < `1`",
        "`1` < `1.5`",
        "`2` == `2.0`",
        "obj.n",
        "null_field || 'd'",
        "abs(`-3`)",
        "abs(`3.5`)",
        "avg(nums)",
        "ceil(`1.2`)",
        "floor(`-1.2`)",
        "contains(strs, 'a')",
        "contains(s, 'ell')",
        "contains(s, `1`)",
        "contains(nums, `10`)",
        "ends_with(s, 'lo')",
        "starts_with(s, 'he')",
        "join(', ', strs)",
        "join('', `[]`)",
        "keys(obj)",
        "values(obj)",
        "length(s)",
        "length(strs)",
        "length(obj)",
        "length('h\u{e9}llo')",
        "map(&age, people)",
        "map(&[name, age], people)",
        "map(&tags[0], people)",
        "max(nums)",
        "min(nums)",
        "max(strs)",
        "min(strs)",
        "max(`[]`)",
        "max_by(people, &age).name",
        "min_by(people, &age).name",
        "max_by(people, &name)",
        "merge(obj, `{\"x\": 9}`)",
        "merge(`{}`)",
        "not_null(missing, obj.n, s)",
        "not_null(missing)",
        "reverse(strs)",
        "reverse(s)",
        "sort(nums)",
        "sort(strs)",
        "sort_by(people, &age)[*].age",
        "sort_by(people[:3], &name)[*].name",
        "sum(nums)",
        "sum(`[]`)",
        "to_array(s)",
        "to_array(strs)",
        "to_number(numtext)",
        "to_number(s)",
        "to_number(zero)",
        "to_number(t)",
        "to_string(obj)",
        "to_string(s)",
        "to_string(nums)",
        "type(s)",
        "type(nums)",
        "type(obj)",
        "type(t)",
        "type(obj.n)",
        "type(zero)",
        "length(keys(@))",
        "people[*].name | sort(@) | [0]",
        "people[?contains(tags, 'z')].name",
        "sort_by(people, &age) | [-1].name",
        "a.b.c[?@ > `2`] | length(@)",
        "*",
        "*.*",
        "[*]",
        "people[*]",
        "obj.*[]",
        "people[1:].age",
        "people[:2].tags[]",
        "[s, t][0]",
        "{a: s}.a",
        "nested[?length(@) > `0`]",
        "people[?age > `26`] | length(@)",
        "people[*].age | max(@)",
        "wide",
        "sort(mixed)",
        "max(mixed)",
        "sum(strs)",
        "abs(s)",
        "join(',', nums)",
        "keys(s)",
        "length(t)",
        "sort_by(people, &o)",
        "avg(strs)",
        "merge(s)",
        "starts_with(s, `1`)",
        "obj[]",
        "s[]",
        "obj[*]",
        "people[0:2].name",
        "people[::-1].name",
        "a.b.c[:]",
        "people[?age == `25`] | [?nick].nick",
        "people[*].tags[0]",
        "people[].o.*",
        "nested[*][]",
        "nested[][*]",
        "[nested[0], nested[1]][]",
        "people[?o.k == `1`].name",
        "people[?`true`].age",
        "people[?age].age | [?@ > `26`]",
        "*[?@ == `1`]",
        "obj.{x: x, y: y}",
        "{a: a, missing: missing}",
        "[missing, missing]",
        "people[-1]",
        "people[-1].[nick, age]",
        "people[1:1]",
        "a.b.c[1:0]",
        "a.b.c[::-3]",
        "a.b.c[100:0:-1]",
        "\"people\"[0].\"name\"",
        "s == 'hello'",
        "s != `\"hello\"`",
        "nums[?@ < `0`]",
        "to_array(`null`)",
        "not_null(`null`, `[]`)",
        "length(`{}`)",
        "keys(`{}`)",
        "sort(`[]`)",
        "sort_by(`[]`, &a)",
        "max_by(`[]`, &a)",
        "map(&@, `[]`)",
        "join('-', `[\"a\"]`)",
        "reverse(`[]`)",
        "reverse('')",
        "people[?!(age > `26`)].age",
        "!(t && f)",
        "t && f || t",
        "people[*].age | sum(@)",
        "people[*].age | avg(@)",
        "people[?contains(keys(@), 'nick')]",
        "merge(people[0].o, people[1].o)",
        "values(people[0]) | length(@)",
    ];

    #[test]
    fn agrees_with_the_crate_on_the_specifications_constructs() {
        for expr in DIFFERENTIAL {
            let a = ours(DOC, expr);
            let b = theirs(DOC, expr);
            match (&a, &b) {
                (Ok(x), Ok(y)) => assert!(same(x, y), "{expr}: ours {x}, the crate's {y}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{expr}: ours {a:?}, the crate's {b:?}"),
            }
        }
    }

    #[test]
    fn follows_the_specification_where_checked_by_hand() {
        expect(DOC, "people[*].name", r#"["bob","alice","carol"]"#);
        expect(DOC, "people[?age == `25`].name", r#"["alice"]"#);
        expect(DOC, "nested[]", "[1,2,3,[4,5],6]");
        expect(DOC, "a.b.c[::-2]", "[5,3,1]");
        expect(DOC, "a.b.c[4:1:-1]", "[4,3,2]");
        expect(DOC, "sort_by(people, &age)[*].age", "[25,25,30,35]");
        // A stable sort keeps alice before dave.
        expect(DOC, "sort_by(people, &age)[:2].age", "[25,25]");
        expect(DOC, "sort_by(people, &age)[1].nick", r#""dave""#);
        expect(DOC, "sum(`[1, 2]`)", "3");
        expect(DOC, "avg(`[1, 2]`)", "1.5");
        // The specification's null, where the crate fails.
        expect(DOC, "avg(`[]`)", "null");
        expect(DOC, "map(&tags[0], people)", r#"["x",null,"z",null]"#);
        expect(DOC, "to_string(`[1, \"a\"]`)", r#""[1,\"a\"]""#);
        expect(DOC, "to_number('not')", "null");
        expect(DOC, "`1` < `2`", "true");
        expect(DOC, "s < `2`", "null");
        expect(DOC, "people[0].[name, missing]", r#"["bob",null]"#);
        expect(DOC, "missing.[a, b]", "null");
        expect(DOC, "missing.{a: a}", "null");
        expect(DOC, "length('h\u{e9}llo')", "5");
        expect(DOC, "reverse('ab\u{e9}')", "\"\u{e9}ba\"");
        expect(DOC, "abs(`-9223372036854775808`)", "9223372036854775808.0");
    }

    #[test]
    fn refuses_at_the_check_what_the_shape_shows() {
        let ten = format!("[{}]", ["@"; 10].join(","));
        let amplifying = format!("@ | {}", [ten.as_str(); 8].join(" | "));
        let e = check_expression(&amplifying).unwrap_err();
        assert!(e.contains("multiply its input") && e.contains("128"), "{e}");
        assert!(check_expression(&format!("@ | {ten} | {ten}")).is_ok());
        let e = check_expression(&format!("@ | {ten} | {ten} | {ten}")).unwrap_err();
        assert!(e.contains("1000 times"), "{e}");
        let e = check_expression(&"[*]".repeat(17)).unwrap_err();
        assert!(e.contains("16"), "{e}");
        assert!(check_expression(&"[*]".repeat(16)).is_ok());
        let e = check_expression(&vec!["a"; 70].join(".")).unwrap_err();
        assert!(e.contains("64"), "{e}");
        for (expr, needle) in [
            ("nope(@)", "unknown function"),
            ("length(@, @)", "takes 1"),
            ("merge()", "at least 1"),
            ("sort_by(@, age)", "&expression"),
            ("&a", "&expression"),
            ("length(&a)", "&expression"),
        ] {
            let e = check_expression(expr).unwrap_err();
            assert!(e.contains(needle), "{expr}: {e}");
        }
        assert!(check_expression("{user: username, password: password}").is_ok());
        assert!(check_expression("map(&[a, b], @)").is_ok());
    }

    fn doc(text: &str) -> Document {
        Document::parse(&SecretBytes::from(text.to_string())).unwrap()
    }

    const SMALL: Limits = Limits {
        value_bytes: 100,
        value_elements: 20,
        value_depth: 4,
        work: 200,
    };

    #[test]
    fn each_bound_is_refused_by_name_at_evaluation() {
        let d = doc(
            r#"{"s": "0123456789012345678901234567890123456789", "a": [1,2,3,4,5,6,7,8,9,10],
                        "deep": [[[1]]], "words": ["ab", "cd"]}"#,
        );
        let run = |e: &str| d.extract_within(e, SMALL).map(|(v, _)| v.expose().to_vec());
        let e = run("[s, s, s]").unwrap_err();
        assert!(e.contains("100 bytes"), "{e}");
        let e = run("[a, a]").unwrap_err();
        assert!(e.contains("20 elements"), "{e}");
        let e = run("[[deep]]").unwrap_err();
        assert!(e.contains("4 levels"), "{e}");
        let e = run("sort(sort(sort(sort(sort(a)))))").unwrap_err();
        assert!(e.contains("200 steps"), "{e}");
        let e = run("join(s, ['a', 'b', 'c', 'd'])").unwrap_err();
        assert!(e.contains("100 bytes"), "{e}");
        // Selected rather than built, the result is checked all the same.
        let big = doc(&format!("[{}]", vec!["1"; 30].join(",")));
        let e = big.extract_within("@", SMALL).unwrap_err();
        assert!(e.contains("20 elements"), "{e}");
        assert_eq!(run("a[2]").unwrap(), b"3");
    }

    #[test]
    fn shared_values_are_counted_as_written() {
        // 100 copies of a 64 KiB value: 6.4 MB once written.
        let value = format!("{{\"k\": \"{}\"}}", "x".repeat(64 * 1024 - 16));
        let d = doc(&value);
        let wide = format!("[{}]", vec!["@"; 100].join(","));
        let e = d.extract(&wide).unwrap_err();
        assert!(e.contains("1048576 bytes"), "{e}");
        // Ten copies are within the bounds, and written in full.
        let ten = format!("[{}]", ["k"; 10].join(","));
        let out = d.extract(&ten).unwrap();
        assert_eq!(out.expose().len(), 10 * (64 * 1024 - 16 + 2) + 11);
    }

    #[test]
    fn a_sort_of_a_large_value_is_within_the_work_bound() {
        let items: Vec<String> = (0..20_000)
            .map(|i| format!("{{\"n\":{}}}", (i * 7919) % 20_000))
            .collect();
        let d = doc(&format!("[{}]", items.join(",")));
        let (out, work) = d.extract_within("sort_by(@, &n)[0].n", LIMITS).unwrap();
        assert_eq!(out.expose(), b"0");
        assert!(work < MAX_WORK / 2, "{work}");
    }
}
