//! The budgeted interpreter: evaluates the `jmespath` crate's AST over
//! [`Val`]s, charging every step to a work budget and checking every value
//! it builds against the size bounds before it is kept.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jmespath::ast::{Ast, Comparator};
use serde_json::Number;

use super::value::{Array, Object, Sizer, Val, compare_numbers, equal, json_string_len};

/// The bounds one evaluation runs under.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Bytes of compact JSON of any value built.
    pub value_bytes: u64,
    /// Elements of any value built.
    pub value_elements: u64,
    /// Nesting of arrays and objects of any value built.
    pub value_depth: u32,
    /// Steps: one per expression node evaluated, one per element visited,
    /// copied or compared, one per 64 bytes of text built.
    pub work: u64,
}

/// One evaluation: its limits, the work done so far and the literals of
/// its expression, each converted once.
pub struct Eval {
    limits: Limits,
    work: u64,
    literals: HashMap<usize, Val>,
}

type Out = Result<Val, String>;

/// A function's argument: a value, or an `&expression`.
enum Arg<'a> {
    Val(Val),
    Expr(&'a Ast),
}

impl Eval {
    pub fn new(limits: Limits) -> Eval {
        Eval {
            limits,
            work: 0,
            literals: HashMap::new(),
        }
    }

    /// The steps charged so far.
    pub fn work(&self) -> u64 {
        self.work
    }

    fn charge(&mut self, steps: u64) -> Result<(), String> {
        self.work = self.work.saturating_add(steps);
        if self.work > self.limits.work {
            return Err(format!(
                "evaluation exceeds {} steps, the bound on a jmesPath evaluation's work",
                self.limits.work
            ));
        }
        Ok(())
    }

    /// Checks a value's size (as materialised) against the bounds.
    pub fn check_size(&self, size: super::value::Size) -> Result<(), String> {
        let l = &self.limits;
        if size.bytes > l.value_bytes {
            return Err(format!(
                "a value it builds exceeds {} bytes as JSON, the bound on a jmesPath value",
                l.value_bytes
            ));
        }
        if size.elements > l.value_elements {
            return Err(format!(
                "a value it builds exceeds {} elements, the bound on a jmesPath value",
                l.value_elements
            ));
        }
        if size.depth > l.value_depth {
            return Err(format!(
                "a value it builds nests deeper than {} levels, the bound on a jmesPath value",
                l.value_depth
            ));
        }
        Ok(())
    }

    fn array(&mut self) -> ArrayBuilder {
        ArrayBuilder {
            items: Vec::new(),
            sizer: Sizer::array(),
        }
    }

    fn push(&mut self, b: &mut ArrayBuilder, v: Val) -> Result<(), String> {
        self.charge(1)?;
        b.sizer.add(None, &v);
        self.check_size(b.sizer.size)?;
        b.items.push(v);
        Ok(())
    }

    fn finish(b: ArrayBuilder) -> Val {
        Val::Arr(Arc::new(Array {
            items: b.items,
            size: b.sizer.size,
        }))
    }

    /// An array of `items`, each charged and counted.
    fn collect(&mut self, items: impl IntoIterator<Item = Val>) -> Out {
        let mut b = self.array();
        for v in items {
            self.push(&mut b, v)?;
        }
        Ok(Eval::finish(b))
    }

    fn object(&mut self, entries: impl IntoIterator<Item = (Arc<str>, Val)>) -> Out {
        let mut map = BTreeMap::new();
        for (k, v) in entries {
            self.charge(1)?;
            map.insert(k, v);
        }
        let mut sizer = Sizer::object();
        for (k, v) in &map {
            sizer.add(Some(k), v);
        }
        self.check_size(sizer.size)?;
        Ok(Val::Obj(Arc::new(Object {
            map,
            size: sizer.size,
        })))
    }

    /// A string of `len` bytes built by `make`, checked before it is built.
    fn text(&mut self, len: u64, make: impl FnOnce() -> String) -> Out {
        self.charge(1 + len / 64)?;
        self.check_size(super::value::Size {
            elements: 1,
            bytes: len.saturating_add(2),
            depth: 0,
        })?;
        let s = make();
        self.check_size(super::value::Size {
            elements: 1,
            bytes: json_string_len(&s),
            depth: 0,
        })?;
        Ok(Val::string(s))
    }

    /// Evaluates `node` against `data`.
    pub fn eval(&mut self, node: &Ast, data: &Val) -> Out {
        self.charge(1)?;
        match node {
            Ast::Identity { .. } => Ok(data.clone()),
            Ast::Field { name, .. } => Ok(match data {
                Val::Obj(o) => o.map.get(name.as_str()).cloned().unwrap_or(Val::Null),
                _ => Val::Null,
            }),
            Ast::Index { idx, .. } => Ok(match data.as_array() {
                Some(items) => {
                    let len = items.len() as i64;
                    let i = i64::from(*idx);
                    let i = if i < 0 { len + i } else { i };
                    if (0..len).contains(&i) {
                        items[i as usize].clone()
                    } else {
                        Val::Null
                    }
                }
                None => Val::Null,
            }),
            Ast::Slice {
                start, stop, step, ..
            } => {
                if *step == 0 {
                    return Err("a slice's step is 0".into());
                }
                match data.as_array() {
                    Some(items) => {
                        let picked = slice_indices(items.len(), *start, *stop, *step);
                        let picked: Vec<Val> = picked.map(|i| items[i].clone()).collect();
                        self.collect(picked)
                    }
                    None => Ok(Val::Null),
                }
            }
            Ast::Literal { value, .. } => {
                let key = node as *const Ast as usize;
                if let Some(v) = self.literals.get(&key) {
                    return Ok(v.clone());
                }
                let v = Val::from_literal(value);
                self.charge(v.size().elements)?;
                self.check_size(v.size())?;
                self.literals.insert(key, v.clone());
                Ok(v)
            }
            Ast::Subexpr { lhs, rhs, .. } => {
                let left = self.eval(lhs, data)?;
                self.eval(rhs, &left)
            }
            Ast::Or { lhs, rhs, .. } => {
                let left = self.eval(lhs, data)?;
                if left.is_truthy() {
                    Ok(left)
                } else {
                    self.eval(rhs, data)
                }
            }
            Ast::And { lhs, rhs, .. } => {
                let left = self.eval(lhs, data)?;
                if left.is_truthy() {
                    self.eval(rhs, data)
                } else {
                    Ok(left)
                }
            }
            Ast::Not { node, .. } => Ok(Val::Bool(!self.eval(node, data)?.is_truthy())),
            Ast::Condition {
                predicate, then, ..
            } => {
                if self.eval(predicate, data)?.is_truthy() {
                    self.eval(then, data)
                } else {
                    Ok(Val::Null)
                }
            }
            Ast::Comparison {
                comparator,
                lhs,
                rhs,
                ..
            } => {
                let left = self.eval(lhs, data)?;
                let right = self.eval(rhs, data)?;
                self.compare(comparator, &left, &right)
            }
            Ast::ObjectValues { node, .. } => match self.eval(node, data)? {
                Val::Obj(o) => self.collect(o.map.values().cloned()),
                _ => Ok(Val::Null),
            },
            Ast::Flatten { node, .. } => {
                let subject = self.eval(node, data)?;
                let Some(items) = subject.as_array() else {
                    return Ok(Val::Null);
                };
                let mut b = self.array();
                for item in items {
                    match item.as_array() {
                        Some(inner) => {
                            for i in inner {
                                self.push(&mut b, i.clone())?;
                            }
                        }
                        None => self.push(&mut b, item.clone())?,
                    }
                }
                Ok(Eval::finish(b))
            }
            Ast::Projection { lhs, rhs, .. } => {
                let subject = self.eval(lhs, data)?;
                let Some(items) = subject.as_array() else {
                    return Ok(Val::Null);
                };
                let mut b = self.array();
                for item in items {
                    let v = self.eval(rhs, item)?;
                    if !v.is_null() {
                        self.push(&mut b, v)?;
                    }
                }
                Ok(Eval::finish(b))
            }
            Ast::MultiList { elements, .. } => {
                if data.is_null() {
                    return Ok(Val::Null);
                }
                let mut b = self.array();
                for e in elements {
                    let v = self.eval(e, data)?;
                    self.push(&mut b, v)?;
                }
                Ok(Eval::finish(b))
            }
            Ast::MultiHash { elements, .. } => {
                if data.is_null() {
                    return Ok(Val::Null);
                }
                let mut entries = Vec::with_capacity(elements.len());
                let mut sizer = Sizer::object();
                for kv in elements {
                    let v = self.eval(&kv.value, data)?;
                    sizer.add(Some(&kv.key), &v);
                    self.check_size(sizer.size)?;
                    entries.push((Arc::from(kv.key.as_str()), v));
                }
                self.object(entries)
            }
            Ast::Expref { .. } => {
                Err("uses an &expression outside the argument of a function".into())
            }
            Ast::Function { name, args, .. } => {
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(match a {
                        Ast::Expref { ast, .. } => Arg::Expr(ast),
                        _ => Arg::Val(self.eval(a, data)?),
                    });
                }
                self.call(name, values)
            }
        }
    }

    fn compare(&mut self, c: &Comparator, a: &Val, b: &Val) -> Out {
        Ok(match c {
            Comparator::Equal | Comparator::NotEqual => {
                self.charge(a.size().elements.min(b.size().elements))?;
                Val::Bool(equal(a, b) == matches!(c, Comparator::Equal))
            }
            _ => match (a, b) {
                (Val::Num(x), Val::Num(y)) => {
                    let o = compare_numbers(x, y);
                    Val::Bool(match c {
                        Comparator::LessThan => o == Ordering::Less,
                        Comparator::LessThanEqual => o != Ordering::Greater,
                        Comparator::GreaterThan => o == Ordering::Greater,
                        _ => o != Ordering::Less,
                    })
                }
                _ => Val::Null,
            },
        })
    }

    fn call(&mut self, name: &str, args: Vec<Arg<'_>>) -> Out {
        let shown = crate::bounded_text::escape_bounded(name, 40);
        let invalid =
            |i: usize, want: &str| format!("{shown}() takes {want} as argument {}", i + 1);
        // Arity and &expression positions are checked with the shape, so
        // a mismatch here is a type error all the same.
        let val = |i: usize| -> Result<&Val, String> {
            match args.get(i) {
                Some(Arg::Val(v)) => Ok(v),
                _ => Err(format!("{shown}() needs a value as argument {}", i + 1)),
            }
        };
        let expr = |i: usize| -> Result<&Ast, String> {
            match args.get(i) {
                Some(Arg::Expr(e)) => Ok(e),
                _ => Err(format!(
                    "{shown}() needs an &expression as argument {}",
                    i + 1
                )),
            }
        };
        let number = |i: usize| -> Result<f64, String> {
            match val(i)? {
                Val::Num(n) => Ok(n.as_f64().unwrap_or(0.0)),
                _ => Err(invalid(i, "a number")),
            }
        };
        let string = |i: usize| -> Result<Arc<str>, String> {
            match val(i)? {
                Val::Str(s) => Ok(s.clone()),
                _ => Err(invalid(i, "a string")),
            }
        };
        let array = |i: usize| -> Result<Arc<Array>, String> {
            match val(i)? {
                Val::Arr(a) => Ok(a.clone()),
                _ => Err(invalid(i, "an array")),
            }
        };
        let object = |i: usize| -> Result<Arc<Object>, String> {
            match val(i)? {
                Val::Obj(o) => Ok(o.clone()),
                _ => Err(invalid(i, "an object")),
            }
        };
        match name {
            "abs" => {
                let Val::Num(n) = val(0)? else {
                    return Err(invalid(0, "a number"));
                };
                Ok(match n.as_i64() {
                    Some(i) if i != i64::MIN => Val::Num(Number::from(i.abs())),
                    _ => number_value(n.as_f64().unwrap_or(0.0).abs())?,
                })
            }
            "avg" | "sum" => {
                let a = array(0)?;
                self.charge(a.items.len() as u64)?;
                let mut sum = 0.0;
                let mut ints: Option<i64> = Some(0);
                for v in &a.items {
                    let Val::Num(n) = v else {
                        return Err(invalid(0, "an array of numbers"));
                    };
                    sum += n.as_f64().unwrap_or(0.0);
                    ints = ints.and_then(|s| n.as_i64().and_then(|i| s.checked_add(i)));
                }
                if name == "sum" {
                    return Ok(match ints {
                        Some(i) => Val::Num(Number::from(i)),
                        None => number_value(sum)?,
                    });
                }
                if a.items.is_empty() {
                    return Ok(Val::Null);
                }
                number_value(sum / a.items.len() as f64)
            }
            "ceil" => number_value(number(0)?.ceil()),
            "floor" => number_value(number(0)?.floor()),
            "contains" => {
                let needle = val(1)?.clone();
                match val(0)? {
                    Val::Arr(a) => {
                        let a = a.clone();
                        for item in &a.items {
                            self.charge(item.size().elements.min(needle.size().elements))?;
                            if equal(item, &needle) {
                                return Ok(Val::Bool(true));
                            }
                        }
                        Ok(Val::Bool(false))
                    }
                    Val::Str(s) => {
                        self.charge(1 + s.len() as u64 / 64)?;
                        Ok(Val::Bool(match &needle {
                            Val::Str(n) => s.contains(&**n),
                            _ => false,
                        }))
                    }
                    _ => Err(invalid(0, "an array or a string")),
                }
            }
            "ends_with" => Ok(Val::Bool(string(0)?.ends_with(&*string(1)?))),
            "starts_with" => Ok(Val::Bool(string(0)?.starts_with(&*string(1)?))),
            "join" => {
                let glue = string(0)?;
                let a = array(1)?;
                let mut len = 0u64;
                for v in &a.items {
                    let Val::Str(s) = v else {
                        return Err(invalid(1, "an array of strings"));
                    };
                    len = len.saturating_add(s.len() as u64);
                }
                let seps = (a.items.len() as u64).saturating_sub(1);
                len = len.saturating_add(seps.saturating_mul(glue.len() as u64));
                self.charge(a.items.len() as u64)?;
                self.text(len, || {
                    let mut out = String::with_capacity(len as usize);
                    for (i, v) in a.items.iter().enumerate() {
                        if i > 0 {
                            out.push_str(&glue);
                        }
                        if let Val::Str(s) = v {
                            out.push_str(s);
                        }
                    }
                    out
                })
            }
            "keys" => {
                let o = object(0)?;
                self.collect(o.map.keys().map(|k| Val::Str(k.clone())))
            }
            "values" => {
                let o = object(0)?;
                self.collect(o.map.values().cloned())
            }
            "length" => {
                let n = match val(0)? {
                    Val::Str(s) => {
                        self.charge(1 + s.len() as u64 / 64)?;
                        s.chars().count()
                    }
                    Val::Arr(a) => a.items.len(),
                    Val::Obj(o) => o.map.len(),
                    _ => return Err(invalid(0, "a string, an array or an object")),
                };
                Ok(Val::Num(Number::from(n as u64)))
            }
            "map" => {
                let e = expr(0)?;
                let a = array(1)?;
                let mut b = self.array();
                for item in &a.items {
                    let v = self.eval(e, item)?;
                    self.push(&mut b, v)?;
                }
                Ok(Eval::finish(b))
            }
            "max" | "min" => {
                let a = array(0)?;
                self.charge(a.items.len() as u64)?;
                sortable_kind(&a.items)
                    .ok_or_else(|| invalid(0, "an array of numbers or of strings"))?;
                let want = if name == "max" {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
                let mut best: Option<&Val> = None;
                for v in &a.items {
                    if best.is_none_or(|b| order(v, b) == want) {
                        best = Some(v);
                    }
                }
                Ok(best.cloned().unwrap_or(Val::Null))
            }
            "max_by" | "min_by" => {
                let a = array(0)?;
                let e = expr(1)?;
                let want = if name == "max_by" {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
                let keys = self.keys_of(&a.items, e, &shown)?;
                let mut best: Option<usize> = None;
                for i in 0..keys.len() {
                    if best.is_none_or(|b| order(&keys[i], &keys[b]) == want) {
                        best = Some(i);
                    }
                }
                Ok(best.map_or(Val::Null, |i| a.items[i].clone()))
            }
            "sort" => {
                let a = array(0)?;
                sortable_kind(&a.items)
                    .ok_or_else(|| invalid(0, "an array of numbers or of strings"))?;
                self.charge(sort_cost(a.items.len()))?;
                let mut items = a.items.clone();
                items.sort_by(order);
                self.collect(items)
            }
            "sort_by" => {
                let a = array(0)?;
                let e = expr(1)?;
                let keys = self.keys_of(&a.items, e, &shown)?;
                self.charge(sort_cost(a.items.len()))?;
                let mut idx: Vec<usize> = (0..a.items.len()).collect();
                idx.sort_by(|x, y| order(&keys[*x], &keys[*y]));
                self.collect(idx.into_iter().map(|i| a.items[i].clone()))
            }
            "merge" => {
                let mut map: BTreeMap<Arc<str>, Val> = BTreeMap::new();
                for i in 0..args.len() {
                    let o = object(i)?;
                    self.charge(o.map.len() as u64)?;
                    for (k, v) in &o.map {
                        map.insert(k.clone(), v.clone());
                    }
                }
                self.object(map)
            }
            "not_null" => {
                for i in 0..args.len() {
                    let v = val(i)?;
                    if !v.is_null() {
                        return Ok(v.clone());
                    }
                }
                Ok(Val::Null)
            }
            "reverse" => match val(0)? {
                Val::Str(s) => {
                    let s = s.clone();
                    self.text(s.len() as u64, || s.chars().rev().collect())
                }
                Val::Arr(a) => {
                    let a = a.clone();
                    self.collect(a.items.iter().rev().cloned())
                }
                _ => Err(invalid(0, "a string or an array")),
            },
            "to_array" => {
                let v = val(0)?.clone();
                if matches!(v, Val::Arr(_)) {
                    Ok(v)
                } else {
                    self.collect([v])
                }
            }
            "to_number" => Ok(match val(0)? {
                Val::Num(n) => Val::Num(n.clone()),
                Val::Str(s) => match serde_json::from_str::<Number>(s) {
                    Ok(n) => Val::Num(n),
                    Err(_) => Val::Null,
                },
                _ => Val::Null,
            }),
            "to_string" => {
                let v = val(0)?.clone();
                if matches!(v, Val::Str(_)) {
                    return Ok(v);
                }
                let len = v.size().bytes;
                self.text(len, || serde_json::to_string(&v).unwrap_or_default())
            }
            "type" => Ok(Val::string(val(0)?.type_name())),
            _ => Err(format!("calls an unknown function {shown}()")),
        }
    }

    /// The sort keys of `items` under `e`: all numbers or all strings.
    fn keys_of(&mut self, items: &[Val], e: &Ast, shown: &str) -> Result<Vec<Val>, String> {
        let mut keys = Vec::with_capacity(items.len());
        for item in items {
            self.charge(1)?;
            keys.push(self.eval(e, item)?);
        }
        if sortable_kind(&keys).is_none() {
            return Err(format!(
                "{shown}()'s expression must give all numbers or all strings"
            ));
        }
        Ok(keys)
    }
}

struct ArrayBuilder {
    items: Vec<Val>,
    sizer: Sizer,
}

/// Whether `items` are all numbers or all strings (an empty array is
/// either): the arrays `sort`, `min` and `max` accept.
fn sortable_kind(items: &[Val]) -> Option<&'static str> {
    let Some(first) = items.first() else {
        return Some("number");
    };
    let kind = match first {
        Val::Num(_) => "number",
        Val::Str(_) => "string",
        _ => return None,
    };
    items.iter().all(|v| v.type_name() == kind).then_some(kind)
}

/// Order of two numbers or two strings (code point order); other pairs,
/// which `sortable_kind` excludes, are equal.
fn order(a: &Val, b: &Val) -> Ordering {
    match (a, b) {
        (Val::Num(x), Val::Num(y)) => compare_numbers(x, y),
        (Val::Str(x), Val::Str(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// Steps charged for sorting `n` items: n·⌈log2 n⌉ comparisons.
fn sort_cost(n: usize) -> u64 {
    let n = n as u64;
    n.saturating_mul(u64::from(64 - n.leading_zeros()))
}

/// A number from an arithmetic result: an integer when it is one that a
/// float holds exactly, otherwise a float; an error when not finite.
fn number_value(f: f64) -> Result<Val, String> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if f.fract() == 0.0 && f.abs() <= EXACT {
        return Ok(Val::Num(Number::from(f as i64)));
    }
    Number::from_f64(f)
        .map(Val::Num)
        .ok_or_else(|| "an arithmetic result is not a finite number".to_string())
}

/// The indices a slice picks from an array of `len` items, per the
/// JMESPath specification (`step` is not 0).
fn slice_indices(
    len: usize,
    start: Option<i32>,
    stop: Option<i32>,
    step: i32,
) -> impl Iterator<Item = usize> {
    let len = len as i64;
    let step = i64::from(step);
    let clamp = |v: i64| {
        if v < 0 {
            let v = v + len;
            if v >= 0 {
                v
            } else if step < 0 {
                -1
            } else {
                0
            }
        } else if v >= len {
            if step < 0 { len - 1 } else { len }
        } else {
            v
        }
    };
    let from = start.map_or(if step < 0 { len - 1 } else { 0 }, |s| clamp(s.into()));
    let to = stop.map_or(if step < 0 { -1 } else { len }, |s| clamp(s.into()));
    let mut i = from;
    std::iter::from_fn(move || {
        let more = if step > 0 { i < to } else { i > to };
        if more && (0..len).contains(&i) {
            let at = i as usize;
            i += step;
            Some(at)
        } else {
            None
        }
    })
}
