//! The report: a table for a terminal, or one JSON document.

use std::fmt::Write as _;

use serde::Serialize;

use super::facts::Subject;
use super::{Check, Outcome};
use crate::bounded_text::Escaped;

/// Counts per outcome.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Checks that passed.
    pub pass: usize,
    /// Checks that warn.
    pub warn: usize,
    /// Checks that failed.
    pub fail: usize,
}

impl Summary {
    /// Counts `checks`.
    pub fn of(checks: &[Check]) -> Self {
        let count = |o: Outcome| checks.iter().filter(|c| c.outcome == o).count();
        Summary {
            pass: count(Outcome::Pass),
            warn: count(Outcome::Warn),
            fail: count(Outcome::Fail),
        }
    }
}

/// The checks as a table: one line per check, its fix indented below it.
/// Names from the cluster are printed with control characters escaped.
pub fn table(subject: &Subject, checks: &[Check]) -> String {
    let mut out = String::new();
    let who = match (&subject.pod, &subject.spc, &subject.service_account) {
        (Some(pod), _, _) => format!("pod {}/{pod}", subject.namespace),
        (None, Some(spc), Some(sa)) => format!(
            "SecretProviderClass {} with ServiceAccount {sa} in namespace {}",
            spc, subject.namespace
        ),
        _ => format!("namespace {}", subject.namespace),
    };
    let _ = writeln!(out, "ascp doctor: {}", Escaped(&who));
    let width = checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .min(40);
    for c in checks {
        let _ = writeln!(
            out,
            "{}  {:<width$}  {}",
            c.outcome.as_str(),
            Escaped(&c.name).to_string(),
            Escaped(&c.detail)
        );
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "      {:<width$}  fix: {}", "", Escaped(fix));
        }
    }
    let s = Summary::of(checks);
    let _ = writeln!(
        out,
        "{} check(s): {} PASS, {} WARN, {} FAIL",
        checks.len(),
        s.pass,
        s.warn,
        s.fail
    );
    out
}

#[derive(Serialize)]
struct JsonSubject<'a> {
    namespace: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spc: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_account: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    subject: JsonSubject<'a>,
    checks: &'a [Check],
    summary: Summary,
}

/// The checks as one JSON document: `{"subject", "checks": [{"name",
/// "outcome", "detail", "fix"?}], "summary": {"pass", "warn", "fail"}}`.
pub fn json(subject: &Subject, checks: &[Check]) -> String {
    let report = JsonReport {
        subject: JsonSubject {
            namespace: &subject.namespace,
            pod: subject.pod.as_deref(),
            spc: subject.spc.as_deref(),
            service_account: subject.service_account.as_deref(),
        },
        checks,
        summary: Summary::of(checks),
    };
    let mut text = serde_json::to_string_pretty(&report).unwrap_or_else(|e| {
        // Only strings and numbers are serialised: this cannot happen.
        format!("{{\"error\":\"{e}\"}}")
    });
    text.push('\n');
    text
}
