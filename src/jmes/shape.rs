//! What an expression's shape shows before any data: its depth, the
//! nesting of projections and multi-selects, how many times it can
//! multiply its input, and whether its functions exist and are called with
//! the right number and kind of arguments.

use jmespath::ast::Ast;

use super::{MAX_AMPLIFICATION, MAX_AST_DEPTH, MAX_NESTING};

/// A built-in function: its name, its fewest and most arguments (`None`:
/// any number), and which argument is an `&expression`.
struct Builtin {
    name: &'static str,
    min: usize,
    max: Option<usize>,
    expref: Option<usize>,
}

const fn f(name: &'static str, min: usize, max: Option<usize>, expref: Option<usize>) -> Builtin {
    Builtin {
        name,
        min,
        max,
        expref,
    }
}

/// The JMESPath specification's built-in functions.
const BUILTINS: &[Builtin] = &[
    f("abs", 1, Some(1), None),
    f("avg", 1, Some(1), None),
    f("ceil", 1, Some(1), None),
    f("contains", 2, Some(2), None),
    f("ends_with", 2, Some(2), None),
    f("floor", 1, Some(1), None),
    f("join", 2, Some(2), None),
    f("keys", 1, Some(1), None),
    f("length", 1, Some(1), None),
    f("map", 2, Some(2), Some(0)),
    f("max", 1, Some(1), None),
    f("max_by", 2, Some(2), Some(1)),
    f("merge", 1, None, None),
    f("min", 1, Some(1), None),
    f("min_by", 2, Some(2), Some(1)),
    f("not_null", 1, None, None),
    f("reverse", 1, Some(1), None),
    f("sort", 1, Some(1), None),
    f("sort_by", 2, Some(2), Some(1)),
    f("starts_with", 2, Some(2), None),
    f("sum", 1, Some(1), None),
    f("to_array", 1, Some(1), None),
    f("to_number", 1, Some(1), None),
    f("to_string", 1, Some(1), None),
    f("type", 1, Some(1), None),
    f("values", 1, Some(1), None),
];

/// Checks a parsed expression's shape against the bounds.
pub fn check(ast: &Ast) -> Result<(), String> {
    let amplification = walk(ast, 1, 0)?;
    if amplification > MAX_AMPLIFICATION {
        return Err(format!(
            "can multiply its input {} times (multi-select widths multiplied through pipes and projections), over the bound of {MAX_AMPLIFICATION}",
            if amplification == u64::MAX {
                "more than 2^64".to_owned()
            } else {
                amplification.to_string()
            }
        ));
    }
    Ok(())
}

/// Checks `node` at `depth` under `nesting` projections and multi-selects,
/// and returns how many times its result can hold its input: a static
/// over-estimate in which every multi-select member, function argument and
/// literal may be as large as the input.
fn walk(node: &Ast, depth: usize, nesting: usize) -> Result<u64, String> {
    if depth > MAX_AST_DEPTH {
        return Err(format!(
            "nests its expressions deeper than {MAX_AST_DEPTH} levels"
        ));
    }
    let d = depth + 1;
    let nested = || {
        let n = nesting + 1;
        if n > MAX_NESTING {
            Err(format!(
                "nests projections and multi-selects deeper than {MAX_NESTING} levels"
            ))
        } else {
            Ok(n)
        }
    };
    Ok(match node {
        Ast::Identity { .. }
        | Ast::Field { .. }
        | Ast::Index { .. }
        | Ast::Slice { .. }
        | Ast::Literal { .. } => 1,
        Ast::Expref { .. } => {
            return Err(
                "uses an &expression outside the argument of map, sort_by, min_by or max_by".into(),
            );
        }
        Ast::Not { node, .. } => {
            walk(node, d, nesting)?;
            1
        }
        Ast::Comparison { lhs, rhs, .. } => {
            walk(lhs, d, nesting)?;
            walk(rhs, d, nesting)?;
            1
        }
        Ast::Flatten { node, .. } | Ast::ObjectValues { node, .. } => walk(node, d, nesting)?,
        Ast::Subexpr { lhs, rhs, .. } => {
            walk(lhs, d, nesting)?.saturating_mul(walk(rhs, d, nesting)?)
        }
        Ast::Projection { lhs, rhs, .. } => {
            let n = nested()?;
            walk(lhs, d, n)?.saturating_mul(walk(rhs, d, n)?)
        }
        Ast::And { lhs, rhs, .. } | Ast::Or { lhs, rhs, .. } => {
            walk(lhs, d, nesting)?.max(walk(rhs, d, nesting)?)
        }
        Ast::Condition {
            predicate, then, ..
        } => {
            walk(predicate, d, nesting)?;
            walk(then, d, nesting)?
        }
        Ast::MultiList { elements, .. } => {
            let n = nested()?;
            let mut sum = 0u64;
            for e in elements {
                sum = sum.saturating_add(walk(e, d, n)?);
            }
            sum.max(1)
        }
        Ast::MultiHash { elements, .. } => {
            let n = nested()?;
            let mut sum = 0u64;
            for e in elements {
                sum = sum.saturating_add(walk(&e.value, d, n)?);
            }
            sum.max(1)
        }
        Ast::Function { name, args, .. } => function(name, args, d, nesting)?,
    })
}

fn function(name: &str, args: &[Ast], depth: usize, nesting: usize) -> Result<u64, String> {
    let shown = crate::bounded_text::escape_bounded(name, 40);
    let Some(b) = BUILTINS.iter().find(|b| b.name == name) else {
        return Err(format!("calls an unknown function {shown}()"));
    };
    if args.len() < b.min || b.max.is_some_and(|m| args.len() > m) {
        let wanted = match b.max {
            Some(m) if m == b.min => format!("{m}"),
            _ => format!("at least {}", b.min),
        };
        return Err(format!(
            "calls {shown}() with {} arguments; it takes {wanted}",
            args.len()
        ));
    }
    let mut amps = Vec::with_capacity(args.len());
    for (i, arg) in args.iter().enumerate() {
        let amp = match (arg, b.expref == Some(i)) {
            (Ast::Expref { ast, .. }, true) => walk(ast, depth + 1, nesting)?,
            (_, true) => {
                return Err(format!(
                    "calls {shown}() with argument {} not an &expression",
                    i + 1
                ));
            }
            (a, false) => walk(a, depth, nesting)?,
        };
        amps.push(amp);
    }
    Ok(match name {
        // Each element of the array through the expression.
        "map" => amps[0].saturating_mul(amps[1]),
        // An element of the array (the expression only orders them).
        "sort_by" | "min_by" | "max_by" => amps[0],
        _ => amps.iter().fold(0u64, |a, b| a.saturating_add(*b)).max(1),
    })
}
