//! The rules of one object descriptor, checked field by field so that every
//! problem is reported (see [`check`]), and the rule that ARN names match
//! the regions they are fetched from ([`check_regions`]).

use super::files::{check_duplicates, check_file_name};
use super::parse::{self, RawObject, Scalar, text};
use super::{
    FailoverSpec, JmesSpec, MAX_FILES, MAX_NAME_BYTES, ObjectSpec, PathSpec, PathTranslation,
    Problem, shorten,
};
use crate::arn::{self, Arn};
use crate::encoding::{self, Encoding};
use crate::jmes;
use crate::store_kind::StoreKind;

/// Parses the `objects` YAML and checks every entry; returns a draft of each
/// entry and every problem found. The drafts are mountable only when there
/// is no problem; otherwise they serve the checks that span objects
/// (duplicates, ARN regions), so an entry's bad field hides none of them.
pub(super) fn check(
    yaml: &str,
    translation: &PathTranslation,
    has_failover_region: bool,
) -> (Vec<ObjectSpec>, Vec<Problem>) {
    let raw = match parse::read(yaml) {
        Ok(raw) => raw,
        Err(problem) => return (Vec::new(), vec![problem]),
    };
    if raw.is_empty() {
        return (
            Vec::new(),
            vec![Problem::objects("the objects list is empty")],
        );
    }

    let mut problems = Vec::new();
    let mut specs = Vec::with_capacity(raw.len());
    for (index, entry) in raw.into_iter().enumerate() {
        match entry {
            None => problems.push(Problem::object(
                index,
                None,
                "",
                "empty (null) entry in the objects list",
            )),
            Some(raw) => specs.push(validate_object(
                index,
                raw,
                translation,
                has_failover_region,
                &mut problems,
            )),
        }
    }
    check_duplicates(&specs, &mut problems);
    // A path's matches are counted as they are listed, against what the
    // other objects leave (see `crate::store::MatchBudget`).
    let files: usize = specs
        .iter()
        .filter(|s| s.path.is_none())
        .map(|s| 1 + s.jmes.len())
        .sum();
    if files > MAX_FILES {
        problems.push(Problem::objects(format!(
            "{files} files, more than the limit of {MAX_FILES} per mount"
        )));
    }
    (specs, problems)
}

/// Checks that ARN object names are in the regions they are fetched from.
pub fn check_regions(
    specs: &[ObjectSpec],
    primary: &str,
    failover: Option<&str>,
) -> Result<(), Vec<String>> {
    let problems = region_problems(specs, primary, failover);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.iter().map(ToString::to_string).collect())
    }
}

/// The objects whose ARN names another region than the one they are
/// fetched from (the failover object's: than the failover region).
pub(in crate::spc) fn region_problems(
    specs: &[ObjectSpec],
    primary: &str,
    failover: Option<&str>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    for spec in specs {
        if let Some(r) = &spec.arn_region
            && r != primary
        {
            problems.push(Problem::object(
                spec.index,
                Some(&spec.name),
                "objectName",
                format!(
                    "the ARN's region {} must match the region {}",
                    shorten(r),
                    shorten(primary)
                ),
            ));
        }
        if let (Some(f), Some(fr)) = (&spec.failover, failover)
            && let Some(r) = &f.arn_region
            && r != fr
        {
            problems.push(Problem::object(
                spec.index,
                Some(&spec.name),
                "failoverObject objectName",
                format!(
                    "the failoverObject ARN's region {} must match the failover region {}",
                    shorten(r),
                    shorten(fr)
                ),
            ));
        }
    }
    problems
}

/// One entry's problems, each naming the entry and the field.
struct Findings<'a> {
    index: usize,
    name: Option<&'a str>,
    out: &'a mut Vec<Problem>,
}

impl Findings<'_> {
    fn add(&mut self, field: impl Into<String>, rule: impl Into<String>) {
        self.out
            .push(Problem::object(self.index, self.name, field, rule));
    }

    /// Refuses a name or alias holding a control character; says whether it
    /// was clean.
    fn printable(&mut self, field: impl Into<String>, value: &str) -> bool {
        match value.chars().find(|c| c.is_control()) {
            None => true,
            Some(c) => {
                self.add(
                    field,
                    format!(
                        "contains the control character U+{:04X}; names and aliases must be printable",
                        u32::from(c)
                    ),
                );
                false
            }
        }
    }

    /// Checks a file name made from `field`'s value.
    fn file_name(&mut self, field: impl Into<String>, file: &str) {
        if let Err(rule) = check_file_name(file) {
            self.add(field, format!("file name {}: {rule}", shorten(file)));
        }
    }
}

/// Checks every field of one entry; returns its draft (see [`check`]).
fn validate_object(
    index: usize,
    raw: RawObject,
    translation: &PathTranslation,
    has_failover_region: bool,
    problems: &mut Vec<Problem>,
) -> ObjectSpec {
    let name = text(&raw.object_name).unwrap_or_default();
    let mut found = Findings {
        index,
        name: Some(name.as_str()).filter(|n| !n.is_empty()),
        out: problems,
    };
    if name.is_empty() {
        found.add("objectName", "is required");
    }

    let object_type = text(&raw.object_type);
    let alias = text(&raw.object_alias);
    let version = text(&raw.object_version);
    let label = text(&raw.object_version_label);

    for (field, v) in [
        ("objectName", Some(&name)),
        ("objectAlias", alias.as_ref()),
        ("objectVersion", version.as_ref()),
        ("objectVersionLabel", label.as_ref()),
    ] {
        if let Some(v) = v
            && v.len() > MAX_NAME_BYTES
        {
            found.add(field, format!("is longer than {MAX_NAME_BYTES} bytes"));
        }
    }
    let name_printable = found.printable("objectName", &name);
    let alias_printable = alias
        .as_deref()
        .is_none_or(|a| found.printable("objectAlias", a));

    // Without a name only objectType itself can be judged.
    let kind_result = if name.is_empty() && object_type.is_none() {
        Ok((StoreKind::SecretsManager, None))
    } else {
        resolve_kind(&name, object_type.as_deref())
    };
    let (kind, arn_region) = match &kind_result {
        Ok(k) => k.clone(),
        Err((field, rule)) => {
            found.add(*field, rule.clone());
            (StoreKind::SecretsManager, None)
        }
    };

    if kind == StoreKind::ParameterStore && version.is_some() && label.is_some() {
        found.add(
            "objectVersionLabel",
            "and objectVersion cannot both be set on an ssmparameter",
        );
    }

    let path = PathSpec::of(&name, *translation);
    if let Some(path) = &path {
        check_path_object(&path.prefix, kind, &raw, &mut found);
    }
    let file = translation.apply(alias.as_deref().unwrap_or(&name));
    match &alias {
        // A control character is reported once, as such.
        Some(_) if alias_printable => found.file_name("objectAlias", &file),
        None if name_printable && !name.is_empty() => found.file_name("objectName", &file),
        _ => {}
    }

    let mode = parse_file_permission(raw.file_permission.as_ref()).unwrap_or_else(|rule| {
        found.add("filePermission", rule);
        None
    });
    let object_encoding = parse_encoding(raw.object_encoding.as_ref()).unwrap_or_else(|rule| {
        found.add("objectEncoding", rule);
        Encoding::default()
    });

    let mut jmes = Vec::new();
    for (i, entry) in raw.jmes_path.unwrap_or_default().into_iter().enumerate() {
        let at = format!("jmesPath entry #{}", i + 1);
        let Some(entry) = entry else {
            found.add(at, "is empty");
            continue;
        };
        let path = text(&entry.path);
        let entry_alias = text(&entry.object_alias);
        let (Some(path), Some(entry_alias)) = (path, entry_alias) else {
            found.add(at, "needs both path and objectAlias");
            continue;
        };
        if let Err(reason) = jmes::check_expression(&path) {
            found.add(
                format!("{at} path"),
                format!("\"{}\": {reason}", shorten(&path)),
            );
        }
        let entry_file = translation.apply(&entry_alias);
        if entry_alias.len() > MAX_NAME_BYTES {
            found.add(
                format!("{at} objectAlias"),
                format!("is longer than {MAX_NAME_BYTES} bytes"),
            );
        }
        if found.printable(format!("{at} objectAlias"), &entry_alias) {
            found.file_name(format!("{at} objectAlias"), &entry_file);
        }
        let entry_mode =
            parse_file_permission(entry.file_permission.as_ref()).unwrap_or_else(|rule| {
                found.add(format!("{at} filePermission"), rule);
                None
            });
        let entry_encoding =
            parse_encoding(entry.object_encoding.as_ref()).unwrap_or_else(|rule| {
                found.add(format!("{at} objectEncoding"), rule);
                Encoding::default()
            });
        jmes.push(JmesSpec {
            alias: entry_alias,
            path,
            file: entry_file,
            mode: entry_mode,
            encoding: entry_encoding,
        });
    }

    let mut failover = None;
    if let Some(f) = raw.failover_object
        && let Some(f_name) = text(&f.object_name)
    {
        let f_version = text(&f.object_version);
        let f_label = text(&f.object_version_label);
        if alias.is_none() {
            found.add("objectAlias", "is required with a failoverObject");
        }
        if !has_failover_region {
            found.add(
                "failoverObject",
                "is allowed only when failoverRegion is set",
            );
        }
        if f_name.len() > MAX_NAME_BYTES {
            found.add(
                "failoverObject objectName",
                format!("is longer than {MAX_NAME_BYTES} bytes"),
            );
        }
        found.printable("failoverObject objectName", &f_name);
        let mut f_arn_region = None;
        match resolve_kind(&f_name, object_type.as_deref()) {
            Ok((f_kind, r)) => {
                f_arn_region = r;
                if f_kind != kind && kind_result.is_ok() {
                    found.add(
                        "failoverObject objectName",
                        format!("{} is not a {}", shorten(&f_name), kind.as_str()),
                    );
                }
            }
            // A bad objectType is the object's problem, reported once.
            Err((_, rule)) if kind_result.as_ref().err().is_some_and(|(_, r)| *r == rule) => {}
            Err((field, rule)) => found.add("failoverObject", format!("{field} {rule}")),
        }
        if kind == StoreKind::ParameterStore && f_version.is_some() && f_label.is_some() {
            found.add(
                "failoverObject objectVersionLabel",
                "and objectVersion cannot both be set on an ssmparameter",
            );
        }
        if f_version != version {
            found.add(
                "failoverObject objectVersion",
                "must equal the object's objectVersion",
            );
        }
        failover = Some(FailoverSpec {
            name: f_name,
            version: f_version,
            label: f_label,
            arn_region: f_arn_region,
        });
    }

    ObjectSpec {
        index,
        name,
        kind,
        alias,
        version,
        label,
        file,
        mode,
        jmes,
        failover,
        arn_region,
        encoding: object_encoding,
        path,
    }
}

/// The rules of a path object (`prefix/*`, `prefix/**`): its files are
/// named by the matches, and a path lists only the caller's own account.
fn check_path_object(prefix: &str, kind: StoreKind, raw: &RawObject, found: &mut Findings<'_>) {
    let refused = "cannot be set on a path (an objectName ending in /* or /**)";
    if arn::is_arn(prefix) {
        found.add(
            "objectName",
            "a path cannot be an ARN: it lists the caller's own account by name",
        );
    }
    if kind == StoreKind::ParameterStore && !prefix.starts_with('/') {
        found.add(
            "objectName",
            "an ssmparameter path must start with / (a parameter hierarchy)",
        );
    }
    if prefix[..prefix.len() - 1].contains('*') {
        found.add("objectName", "* may only end a path, as /* or /**");
    }
    for (field, set) in [
        ("objectAlias", text(&raw.object_alias).is_some()),
        ("objectVersion", text(&raw.object_version).is_some()),
        (
            "objectVersionLabel",
            text(&raw.object_version_label).is_some(),
        ),
        (
            "jmesPath",
            raw.jmes_path.as_ref().is_some_and(|j| !j.is_empty()),
        ),
        ("failoverObject", raw.failover_object.is_some()),
    ] {
        if set {
            found.add(field, refused);
        }
    }
}

/// The store kind and the ARN region of an object name, per ASCP's rules.
/// A failure names the field at fault: `objectName` or `objectType`.
fn resolve_kind(
    name: &str,
    object_type: Option<&str>,
) -> Result<(StoreKind, Option<String>), (&'static str, String)> {
    let arn = if arn::is_arn(name) {
        Some(Arn::parse(name).ok_or_else(|| {
            (
                "objectName",
                format!("{} is not a valid ARN", shorten(name)),
            )
        })?)
    } else {
        None
    };
    let declared = match object_type {
        None => None,
        Some("secretsmanager") => Some(StoreKind::SecretsManager),
        Some("ssmparameter") => Some(StoreKind::ParameterStore),
        Some(other) => {
            return Err((
                "objectType",
                format!(
                    "\"{}\" is not one of secretsmanager, ssmparameter",
                    shorten(other)
                ),
            ));
        }
    };
    let arn_kind = arn.as_ref().map(|a| match a.service {
        "secretsmanager" => Some(StoreKind::SecretsManager),
        "ssm" => Some(StoreKind::ParameterStore),
        _ => None,
    });
    let kind = match (declared, arn_kind) {
        (None, None) => {
            return Err((
                "objectType",
                "is required when objectName is not a full ARN".into(),
            ));
        }
        (None, Some(None)) => {
            let service = arn.as_ref().map(|a| a.service).unwrap_or_default();
            return Err((
                "objectName",
                format!(
                    "the ARN's service \"{}\" is neither secretsmanager nor ssm",
                    shorten(service)
                ),
            ));
        }
        (None, Some(Some(k))) => k,
        (Some(d), None) => d,
        (Some(d), Some(a)) if a == Some(d) => d,
        (Some(d), Some(_)) => {
            return Err((
                "objectType",
                format!("{} does not match the ARN", d.as_str()),
            ));
        }
    };
    Ok((kind, arn.map(|a| a.region.to_owned())))
}

/// `filePermission`: exactly four octal digits, e.g. `"0600"`.
fn parse_file_permission(v: Option<&Scalar>) -> Result<Option<u32>, String> {
    let Some(v) = v.map(|s| s.0.as_str()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if v.len() == 4 && v.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        u32::from_str_radix(v, 8)
            .map(|m| Some(m & 0o777))
            .map_err(|_| format!("\"{v}\" is not valid"))
    } else {
        Err(format!(
            "\"{}\" must be four octal digits, e.g. \"0600\"",
            shorten(v)
        ))
    }
}

/// Reads `objectEncoding`; empty or absent is the default (`utf-8`).
fn parse_encoding(v: Option<&Scalar>) -> Result<Encoding, String> {
    let Some(v) = v.map(|s| s.0.as_str()).filter(|s| !s.is_empty()) else {
        return Ok(Encoding::default());
    };
    Encoding::parse(v).ok_or_else(|| format!("\"{}\" must be {}", shorten(v), encoding::NAMES))
}
