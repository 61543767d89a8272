//! The values an evaluation works on: JSON values whose arrays and objects
//! are shared (`Arc`), so that `[@, @]` holds two references to one value
//! rather than two copies, and which carry their size as if materialised
//! (elements, bytes of compact JSON, depth), because that is what the
//! result costs once serialized.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::ser::{SerializeMap, SerializeSeq};
use serde_json::Number;

/// What a value costs once written out as compact JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Size {
    /// Values in it, itself included (a scalar is one).
    pub elements: u64,
    /// Bytes of its compact JSON text.
    pub bytes: u64,
    /// Nesting of arrays and objects (a scalar is 0).
    pub depth: u32,
}

/// A JSON value.
#[derive(Clone)]
pub enum Val {
    Null,
    Bool(bool),
    Num(Number),
    Str(Arc<str>),
    Arr(Arc<Array>),
    Obj(Arc<Object>),
}

/// An array and its size.
pub struct Array {
    pub items: Vec<Val>,
    pub size: Size,
}

/// An object (keys in order, as serde_json keeps them) and its size.
pub struct Object {
    pub map: BTreeMap<Arc<str>, Val>,
    pub size: Size,
}

// Never the value: only its type and size.
impl std::fmt::Debug for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let size = self.size();
        write!(f, "{}({} bytes)", self.type_name(), size.bytes)
    }
}

impl Val {
    pub fn string(s: impl Into<Arc<str>>) -> Val {
        Val::Str(s.into())
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Null => "null",
            Val::Bool(_) => "boolean",
            Val::Num(_) => "number",
            Val::Str(_) => "string",
            Val::Arr(_) => "array",
            Val::Obj(_) => "object",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// JMESPath truthiness: false, null and empty strings, arrays and
    /// objects are false; everything else (0 included) is true.
    pub fn is_truthy(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Num(_) => true,
            Val::Str(s) => !s.is_empty(),
            Val::Arr(a) => !a.items.is_empty(),
            Val::Obj(o) => !o.map.is_empty(),
        }
    }

    pub fn as_array(&self) -> Option<&[Val]> {
        match self {
            Val::Arr(a) => Some(&a.items),
            _ => None,
        }
    }

    /// The size as materialised: cached for arrays and objects, computed
    /// for scalars.
    pub fn size(&self) -> Size {
        let bytes = match self {
            Val::Null => 4,
            Val::Bool(true) => 4,
            Val::Bool(false) => 5,
            Val::Num(n) => number_len(n),
            Val::Str(s) => json_string_len(s),
            Val::Arr(a) => return a.size,
            Val::Obj(o) => return o.size,
        };
        Size {
            elements: 1,
            bytes,
            depth: 0,
        }
    }

    /// Converts a parsed JSON value (depth bounded by serde_json's
    /// recursion limit).
    pub fn from_json(v: &serde_json::Value) -> Val {
        match v {
            serde_json::Value::Null => Val::Null,
            serde_json::Value::Bool(b) => Val::Bool(*b),
            serde_json::Value::Number(n) => Val::Num(n.clone()),
            serde_json::Value::String(s) => Val::string(s.as_str()),
            serde_json::Value::Array(items) => {
                let mut b = Sizer::array();
                let items = items
                    .iter()
                    .map(|i| {
                        let v = Val::from_json(i);
                        b.add(None, &v);
                        v
                    })
                    .collect();
                Val::Arr(Arc::new(Array {
                    items,
                    size: b.size,
                }))
            }
            serde_json::Value::Object(map) => {
                let mut b = Sizer::object();
                let map = map
                    .iter()
                    .map(|(k, i)| {
                        let v = Val::from_json(i);
                        b.add(Some(k), &v);
                        (Arc::from(k.as_str()), v)
                    })
                    .collect();
                Val::Obj(Arc::new(Object { map, size: b.size }))
            }
        }
    }

    /// Converts a literal of the parsed expression (depth bounded by the
    /// expression's nesting bound) through its JSON form.
    pub fn from_literal(v: &jmespath::Variable) -> Val {
        serde_json::to_value(v).map_or(Val::Null, |json| Val::from_json(&json))
    }
}

/// Adds up the size of an array or object as its members arrive.
#[derive(Clone, Copy)]
pub struct Sizer {
    pub size: Size,
    count: u64,
}

impl Sizer {
    pub fn array() -> Sizer {
        Sizer {
            size: Size {
                elements: 1,
                bytes: 2,
                depth: 1,
            },
            count: 0,
        }
    }

    pub fn object() -> Sizer {
        Sizer::array()
    }

    /// Adds a member (with its key, in an object).
    pub fn add(&mut self, key: Option<&str>, v: &Val) {
        let s = v.size();
        let comma = u64::from(self.count > 0);
        let key = key.map_or(0, |k| json_string_len(k) + 1);
        self.size.elements = self.size.elements.saturating_add(s.elements);
        self.size.bytes = self
            .size
            .bytes
            .saturating_add(s.bytes)
            .saturating_add(comma + key);
        self.size.depth = self.size.depth.max(s.depth.saturating_add(1));
        self.count += 1;
    }
}

/// Bytes of a string as a JSON string literal, quotes and escapes included
/// (serde_json's escaping: two bytes for `"`, `\` and the common control
/// characters, six for the others).
pub fn json_string_len(s: &str) -> u64 {
    let escapes: u64 = s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 1,
            0..=0x1f => 5,
            _ => 0,
        })
        .sum();
    s.len() as u64 + 2 + escapes
}

fn number_len(n: &Number) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing a number into a counter cannot fail.
    let _ = serde_json::to_writer(&mut c, n);
    c.0
}

impl serde::Serialize for Val {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Val::Null => s.serialize_unit(),
            Val::Bool(b) => s.serialize_bool(*b),
            Val::Num(n) => n.serialize(s),
            Val::Str(v) => s.serialize_str(v),
            Val::Arr(a) => {
                let mut seq = s.serialize_seq(Some(a.items.len()))?;
                for i in &a.items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Val::Obj(o) => {
                let mut map = s.serialize_map(Some(o.map.len()))?;
                for (k, v) in &o.map {
                    map.serialize_entry(&**k, v)?;
                }
                map.end()
            }
        }
    }
}

/// Numeric order: exact for two integers of one kind, as floats otherwise.
pub fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x.cmp(&y);
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x.cmp(&y);
    }
    let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
    x.partial_cmp(&y).unwrap_or(Ordering::Equal)
}

/// JMESPath equality: same type and same value, numbers by value, arrays
/// in order, objects by key. The caller charges the work (at most the
/// smaller value's elements).
pub fn equal(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => compare_numbers(x, y) == Ordering::Equal,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Arr(x), Val::Arr(y)) => {
            Arc::ptr_eq(x, y)
                || (x.items.len() == y.items.len()
                    && x.items.iter().zip(&y.items).all(|(i, j)| equal(i, j)))
        }
        (Val::Obj(x), Val::Obj(y)) => {
            Arc::ptr_eq(x, y)
                || (x.map.len() == y.map.len()
                    && x.map
                        .iter()
                        .zip(&y.map)
                        .all(|((k, i), (l, j))| k == l && equal(i, j)))
        }
        _ => false,
    }
}
