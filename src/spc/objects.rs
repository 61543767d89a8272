//! The `objects` parameter: a YAML list of object descriptors, turned into
//! validated [`ObjectSpec`]s with their file names and modes decided.
//!
//! The rules are ASCP's (SPEC §3), so a SecretProviderClass that works there
//! works here, plus these safety rules of our own: a file name never holds a
//! NUL, an empty, `.` or `..` element; it is at most 4096 bytes with at most
//! 255 per element; and no two files of one mount share a name (ASCP would
//! let the last one silently win).
//!
//! Parsing is bounded: the YAML's size, nesting depth, node count and alias
//! expansion are capped (see the constants), so a hostile document costs
//! little and cannot exhaust the stack.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use crate::error::Error;
use crate::jmes;
use crate::kinds::StoreKind;

/// Largest `objects` YAML accepted.
pub const MAX_OBJECTS_YAML_BYTES: usize = 1024 * 1024;
/// Objects per mount.
pub const MAX_OBJECTS: usize = 256;
/// Files per mount: objects plus their jmesPath entries.
pub const MAX_FILES: usize = 1024;
/// Nesting depth of the YAML document.
pub const MAX_YAML_DEPTH: usize = 16;
/// Alias references (`*name`) in the YAML document.
pub const MAX_YAML_ALIASES: usize = 256;
/// Nodes (scalars, lists, mappings, aliases expanded) in the YAML document.
/// The largest class the other limits allow (every object with every field,
/// a failoverObject and the most jmesPath entries) has about 11,300; this
/// cap keeps the cost of a hostile document within milliseconds.
pub const MAX_YAML_NODES: usize = 20_000;
/// Longest objectName, objectAlias or version accepted.
pub const MAX_NAME_BYTES: usize = 2048;
/// Longest file path, as the driver accepts.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest element of a file path.
pub const MAX_ELEMENT_BYTES: usize = 255;

/// How `/` in object names becomes part of a file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathTranslation {
    /// Every `/` becomes this character (default `_`).
    Replace(char),
    /// Names keep their `/` (subdirectories); leading `/` are stripped.
    Off,
}

impl PathTranslation {
    /// Parses the `pathTranslation` parameter.
    pub fn parse(v: Option<&str>) -> Result<Self, Error> {
        match v {
            None => Ok(Self::Replace('_')),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Self::Off),
            Some(v) if v.len() == 1 && v != "\0" => {
                Ok(Self::Replace(v.chars().next().unwrap_or('_')))
            }
            Some(v) => Err(Error::Parameter {
                key: super::keys::PATH_TRANSLATION,
                reason: format!(
                    "{:?} must be \"False\" or a single character",
                    v.chars().take(32).collect::<String>()
                ),
            }),
        }
    }

    /// The file name for an object name or alias.
    pub fn apply(self, name: &str) -> String {
        match self {
            // Replacing `/` by itself leaves a leading `/`, which ASCP then
            // joins onto the target directory, dropping it: the file lands
            // where it would with translation off.
            Self::Replace('/') | Self::Off => name.trim_start_matches('/').to_owned(),
            Self::Replace(c) => name.replace('/', &c.to_string()),
        }
    }
}

/// A validated object of the SecretProviderClass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSpec {
    /// Position in the `objects` list, from 0.
    pub index: usize,
    /// `objectName`: a name or a full ARN.
    pub name: String,
    /// Which store holds it.
    pub kind: StoreKind,
    /// `objectAlias`.
    pub alias: Option<String>,
    /// `objectVersion`.
    pub version: Option<String>,
    /// `objectVersionLabel`.
    pub label: Option<String>,
    /// The file the value is written to, relative to the target directory.
    pub file: String,
    /// `filePermission`, if set.
    pub mode: Option<u32>,
    /// `jmesPath` entries.
    pub jmes: Vec<JmesSpec>,
    /// `failoverObject`, if set.
    pub failover: Option<FailoverSpec>,
    /// The region named by an ARN objectName.
    pub arn_region: Option<String>,
}

/// One `jmesPath` entry: a JSON key extracted into a file of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JmesSpec {
    /// `objectAlias` as written.
    pub alias: String,
    /// The JMESPath expression.
    pub path: String,
    /// The file it is written to.
    pub file: String,
    /// `filePermission`, if set.
    pub mode: Option<u32>,
}

/// `failoverObject`: what to ask the failover region for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverSpec {
    /// Name or ARN in the failover region.
    pub name: String,
    /// `objectVersion`.
    pub version: Option<String>,
    /// `objectVersionLabel`.
    pub label: Option<String>,
    /// The region named by an ARN name.
    pub arn_region: Option<String>,
}

impl ObjectSpec {
    /// The object's file mode: its own `filePermission`, else `default`.
    pub fn mode_or(&self, default: u32) -> u32 {
        self.mode.unwrap_or(default)
    }

    /// What to ask for in the failover region: the failover object's values
    /// where given, the object's own otherwise (as ASCP).
    pub fn failover_target(&self) -> (String, Option<String>, Option<String>) {
        match &self.failover {
            Some(f) => (
                f.name.clone(),
                f.version.clone().or_else(|| self.version.clone()),
                f.label.clone().or_else(|| self.label.clone()),
            ),
            None => (self.name.clone(), self.version.clone(), self.label.clone()),
        }
    }
}

/// A YAML scalar read as its text, whether written as a string, a number or
/// a boolean (`objectVersion: 3` is `"3"`).
#[derive(Debug, Clone, Default)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::default())
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::default())
            }
        }
        d.deserialize_str(V)
    }
}

fn text(s: &Option<Scalar>) -> Option<String> {
    s.as_ref().map(|s| s.0.clone()).filter(|s| !s.is_empty())
}

#[derive(Debug, Default)]
struct RawObject {
    object_name: Option<Scalar>,
    object_type: Option<Scalar>,
    object_alias: Option<Scalar>,
    object_version: Option<Scalar>,
    object_version_label: Option<Scalar>,
    file_permission: Option<Scalar>,
    jmes_path: Option<Vec<Option<RawJmes>>>,
    failover_object: Option<RawFailover>,
}

#[derive(Debug, Default)]
struct RawJmes {
    path: Option<Scalar>,
    object_alias: Option<Scalar>,
    file_permission: Option<Scalar>,
}

#[derive(Debug, Default)]
struct RawFailover {
    object_name: Option<Scalar>,
    object_version: Option<Scalar>,
    object_version_label: Option<Scalar>,
}

/// Deserializes a descriptor mapping with its keys matched as ASCP matches
/// them. ASCP decodes the YAML through Go's `encoding/json`, which finds a
/// struct field whatever the key's case (`objectname`, `JMESPath`), so a
/// class written that way works there and must work here. Unknown keys are
/// skipped, as there; a repeated key keeps its last value.
macro_rules! case_insensitive_fields {
    ($ty:ident, $expecting:literal, { $($key:literal => $field:ident),+ $(,)? }) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$ty, A::Error> {
                        let mut out = $ty::default();
                        while let Some(Scalar(key)) = map.next_key::<Scalar>()? {
                            $(
                                if key.eq_ignore_ascii_case($key) {
                                    out.$field = map.next_value()?;
                                    continue;
                                }
                            )+
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

case_insensitive_fields!(RawObject, "an object descriptor (a mapping with objectName)", {
    "objectName" => object_name,
    "objectType" => object_type,
    "objectAlias" => object_alias,
    "objectVersion" => object_version,
    "objectVersionLabel" => object_version_label,
    "filePermission" => file_permission,
    "jmesPath" => jmes_path,
    "failoverObject" => failover_object,
});

case_insensitive_fields!(RawJmes, "a jmesPath entry (a mapping with path and objectAlias)", {
    "path" => path,
    "objectAlias" => object_alias,
    "filePermission" => file_permission,
});

case_insensitive_fields!(RawFailover, "a failoverObject (a mapping with objectName)", {
    "objectName" => object_name,
    "objectVersion" => object_version,
    "objectVersionLabel" => object_version_label,
});

/// The top-level list, read entry by entry so that a list longer than
/// [`MAX_OBJECTS`] is refused as soon as the limit is passed, not after the
/// whole document has been parsed. `over_limit` tells the caller why the
/// parse stopped.
struct BoundedList<'a> {
    over_limit: &'a std::cell::Cell<bool>,
}

impl<'de> serde::de::DeserializeSeed<'de> for BoundedList<'_> {
    type Value = Vec<Option<RawObject>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BoundedList<'_> {
    type Value = Vec<Option<RawObject>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of object descriptors")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(entry) = seq.next_element()? {
            if out.len() == MAX_OBJECTS {
                self.over_limit.set(true);
                return Err(serde::de::Error::custom("too many objects"));
            }
            out.push(entry);
        }
        Ok(out)
    }
}

fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(MAX_OBJECTS_YAML_BYTES);
    budget.max_depth = MAX_YAML_DEPTH;
    budget.max_aliases = MAX_YAML_ALIASES;
    budget.max_anchors = MAX_YAML_ALIASES;
    // Every node is at most two events (start and end).
    budget.max_events = 2 * MAX_YAML_NODES + 16;
    budget.max_nodes = MAX_YAML_NODES;
    budget.max_documents = 1;
    budget.max_total_scalar_bytes = MAX_OBJECTS_YAML_BYTES;
    budget.max_recorded_anchor_events = 20_000;
    budget.max_recorded_anchor_bytes = MAX_OBJECTS_YAML_BYTES;
    budget.max_merge_keys = 256;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // ASCP's YAML reader keeps the last value of a repeated key; a class
    // relying on that must keep working.
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::LastWins;
    options
}

/// Parses and validates the `objects` YAML; returns every rule broken.
///
/// `has_failover_region` says whether `failoverRegion` is set. Checks that
/// need the primary region are in [`check_regions`].
pub fn parse(
    yaml: &str,
    translation: &PathTranslation,
    has_failover_region: bool,
) -> Result<Vec<ObjectSpec>, Vec<String>> {
    if yaml.len() > MAX_OBJECTS_YAML_BYTES {
        return Err(vec![format!(
            "the objects YAML has {} bytes, more than the limit of {MAX_OBJECTS_YAML_BYTES}",
            yaml.len()
        )]);
    }
    let over_limit = std::cell::Cell::new(false);
    let raw = serde_saphyr::with_deserializer_from_str_with_options(yaml, yaml_options(), |d| {
        serde::de::DeserializeSeed::deserialize(
            BoundedList {
                over_limit: &over_limit,
            },
            d,
        )
    })
    .map_err(|e| {
        if over_limit.get() {
            vec![format!(
                "more than {MAX_OBJECTS} objects, the limit per mount"
            )]
        } else {
            vec![format!(
                "the objects parameter is not a YAML list of objects: {}",
                yaml_error(&e)
            )]
        }
    })?;
    if raw.is_empty() {
        return Err(vec!["the objects list is empty".into()]);
    }

    let mut errors = Vec::new();
    let mut specs = Vec::with_capacity(raw.len());
    for (index, entry) in raw.into_iter().enumerate() {
        match entry {
            None => errors.push(format!(
                "object #{}: empty (null) entry in the objects list",
                index + 1
            )),
            Some(raw) => match validate_object(index, raw, translation, has_failover_region) {
                Ok(spec) => specs.push(spec),
                Err(mut e) => errors.append(&mut e),
            },
        }
    }
    if errors.is_empty() {
        check_duplicates(&specs, &mut errors);
    }
    let files: usize = specs.iter().map(|s| 1 + s.jmes.len()).sum();
    if files > MAX_FILES {
        errors.push(format!(
            "{files} files, more than the limit of {MAX_FILES} per mount"
        ));
    }
    if errors.is_empty() {
        Ok(specs)
    } else {
        Err(errors)
    }
}

/// Checks that ARN object names are in the regions they are fetched from.
pub fn check_regions(
    specs: &[ObjectSpec],
    primary: &str,
    failover: Option<&str>,
) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    for spec in specs {
        if let Some(r) = &spec.arn_region
            && r != primary
        {
            errors.push(format!(
                "object {}: the ARN's region {r} must match the region {primary}",
                spec.name
            ));
        }
        if let (Some(f), Some(fr)) = (&spec.failover, failover)
            && let Some(r) = &f.arn_region
            && r != fr
        {
            errors.push(format!(
                "object {}: the failoverObject ARN's region {r} must match the failover region {fr}",
                spec.name
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn yaml_error(e: &serde_saphyr::Error) -> String {
    // The parser's message may quote the document; keep it short and one line.
    let msg = e.to_string();
    let line = msg
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("parse error");
    line.chars().take(300).collect()
}

fn validate_object(
    index: usize,
    raw: RawObject,
    translation: &PathTranslation,
    has_failover_region: bool,
) -> Result<ObjectSpec, Vec<String>> {
    let Some(name) = text(&raw.object_name) else {
        return Err(vec![format!(
            "object #{}: objectName is required",
            index + 1
        )]);
    };
    let who = format!("object {}", shorten(&name));
    let mut errors = Vec::new();
    let mut fail = |rule: String| errors.push(format!("{who}: {rule}"));

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
            fail(format!("{field} is longer than {MAX_NAME_BYTES} bytes"));
        }
    }

    let (kind, arn_region) = match resolve_kind(&name, object_type.as_deref()) {
        Ok(k) => k,
        Err(rule) => {
            fail(rule);
            (StoreKind::SecretsManager, None)
        }
    };

    if kind == StoreKind::ParameterStore && version.is_some() && label.is_some() {
        fail("an ssmparameter cannot set both objectVersion and objectVersionLabel".into());
    }

    let file = translation.apply(alias.as_deref().unwrap_or(&name));
    if let Err(rule) = check_file_name(&file) {
        fail(format!("file name {:?}: {rule}", shorten(&file)));
    }

    let mode = match parse_file_permission(raw.file_permission.as_ref()) {
        Ok(m) => m,
        Err(rule) => {
            fail(rule);
            None
        }
    };

    let mut jmes = Vec::new();
    for (i, entry) in raw.jmes_path.unwrap_or_default().into_iter().enumerate() {
        let Some(entry) = entry else {
            fail(format!("jmesPath entry #{} is empty", i + 1));
            continue;
        };
        let path = text(&entry.path);
        let entry_alias = text(&entry.object_alias);
        let (Some(path), Some(entry_alias)) = (path, entry_alias) else {
            fail(format!(
                "jmesPath entry #{} needs both path and objectAlias",
                i + 1
            ));
            continue;
        };
        if let Err(reason) = jmes::check_expression(&path) {
            fail(format!("jmesPath {:?}: {reason}", shorten(&path)));
        }
        let entry_file = translation.apply(&entry_alias);
        if let Err(rule) = check_file_name(&entry_file) {
            fail(format!(
                "jmesPath file name {:?}: {rule}",
                shorten(&entry_file)
            ));
        }
        let entry_mode = match parse_file_permission(entry.file_permission.as_ref()) {
            Ok(m) => m,
            Err(rule) => {
                fail(format!("jmesPath {:?}: {rule}", shorten(&path)));
                None
            }
        };
        jmes.push(JmesSpec {
            alias: entry_alias,
            path,
            file: entry_file,
            mode: entry_mode,
        });
    }

    let mut failover = None;
    if let Some(f) = raw.failover_object
        && let Some(f_name) = text(&f.object_name)
    {
        let f_version = text(&f.object_version);
        let f_label = text(&f.object_version_label);
        if alias.is_none() {
            fail("an object with a failoverObject needs an objectAlias".into());
        }
        if !has_failover_region {
            fail("failoverObject is allowed only when failoverRegion is set".into());
        }
        let mut f_arn_region = None;
        match resolve_kind(&f_name, object_type.as_deref()) {
            Ok((f_kind, r)) => {
                f_arn_region = r;
                if f_kind != kind {
                    fail(format!(
                        "failoverObject {} is not a {}",
                        shorten(&f_name),
                        kind.as_str()
                    ));
                }
            }
            Err(rule) => fail(format!("failoverObject: {rule}")),
        }
        if kind == StoreKind::ParameterStore && f_version.is_some() && f_label.is_some() {
            fail("an ssmparameter failoverObject cannot set both objectVersion and objectVersionLabel".into());
        }
        if f_version != version {
            fail("failoverObject objectVersion must equal the object's objectVersion".into());
        }
        failover = Some(FailoverSpec {
            name: f_name,
            version: f_version,
            label: f_label,
            arn_region: f_arn_region,
        });
    }

    if errors.is_empty() {
        Ok(ObjectSpec {
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
        })
    } else {
        Err(errors)
    }
}

/// The store kind and the ARN region of an object name, per ASCP's rules.
fn resolve_kind(
    name: &str,
    object_type: Option<&str>,
) -> Result<(StoreKind, Option<String>), String> {
    let arn = if name.starts_with("arn:") {
        Some(
            Arn::parse(name)
                .ok_or_else(|| format!("objectName {} is not a valid ARN", shorten(name)))?,
        )
    } else {
        None
    };
    let declared = match object_type {
        None => None,
        Some("secretsmanager") => Some(StoreKind::SecretsManager),
        Some("ssmparameter") => Some(StoreKind::ParameterStore),
        Some(other) => {
            return Err(format!(
                "objectType {:?} is not one of secretsmanager, ssmparameter",
                shorten(other)
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
            return Err("objectType is required when objectName is not a full ARN".into());
        }
        (None, Some(None)) => {
            let service = arn.as_ref().map(|a| a.service).unwrap_or_default();
            return Err(format!(
                "the ARN's service {:?} is neither secretsmanager nor ssm",
                shorten(service)
            ));
        }
        (None, Some(Some(k))) => k,
        (Some(d), None) => d,
        (Some(d), Some(a)) if a == Some(d) => d,
        (Some(d), Some(_)) => {
            return Err(format!("objectType {} does not match the ARN", d.as_str()));
        }
    };
    Ok((kind, arn.map(|a| a.region.to_owned())))
}

/// The parts of an ARN this module needs. Parsing follows the AWS SDK's
/// rules: the prefix `arn:` and six `:`-separated sections.
#[derive(Debug, PartialEq, Eq)]
pub struct Arn<'a> {
    /// `aws`, `aws-cn`, `aws-us-gov`, …
    pub partition: &'a str,
    /// `secretsmanager`, `ssm`, `iam`, …
    pub service: &'a str,
    /// The region; empty for global services.
    pub region: &'a str,
    /// The account id.
    pub account: &'a str,
    /// The rest.
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Parses an ARN; `None` when it has fewer than six sections.
    pub fn parse(s: &'a str) -> Option<Self> {
        let rest = s.strip_prefix("arn:")?;
        let mut parts = rest.splitn(5, ':');
        Some(Self {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        })
    }
}

/// Whether `s` is an IAM role ARN.
pub fn is_iam_role_arn(s: &str) -> bool {
    Arn::parse(s).is_some_and(|a| {
        a.service == "iam"
            && a.region.is_empty()
            && a.account.len() == 12
            && a.account.bytes().all(|b| b.is_ascii_digit())
            && a.resource
                .strip_prefix("role/")
                .is_some_and(|r| !r.is_empty())
    })
}

/// Checks a file name relative to the target directory.
pub fn check_file_name(file: &str) -> Result<(), String> {
    // ASCP's rule, kept for its exact meaning: no `/../`, leading `../` or
    // trailing `/..`.
    if file.contains("/../") || file.starts_with("../") || file.ends_with("/..") {
        return Err("must not contain ../".into());
    }
    if file.is_empty() {
        return Err("is empty".into());
    }
    if file.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    if file.starts_with('/') {
        return Err("is an absolute path".into());
    }
    if file.len() > MAX_PATH_BYTES {
        return Err(format!("is longer than {MAX_PATH_BYTES} bytes"));
    }
    for element in file.split('/') {
        match element {
            "" => return Err("has an empty path element".into()),
            "." | ".." => return Err(format!("has a {element:?} path element")),
            e if e.len() > MAX_ELEMENT_BYTES => {
                return Err(format!(
                    "has a path element longer than {MAX_ELEMENT_BYTES} bytes"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `filePermission`: exactly four octal digits, e.g. `"0600"`.
fn parse_file_permission(v: Option<&Scalar>) -> Result<Option<u32>, String> {
    let Some(v) = v.map(|s| s.0.as_str()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if v.len() == 4 && v.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        u32::from_str_radix(v, 8)
            .map(|m| Some(m & 0o777))
            .map_err(|_| format!("filePermission {v:?} is not valid"))
    } else {
        Err(format!(
            "filePermission {:?} must be four octal digits, e.g. \"0600\"",
            shorten(v)
        ))
    }
}

/// ASCP's duplicate rules, and one of ours: no two files with one name.
fn check_duplicates(specs: &[ObjectSpec], errors: &mut Vec<String>) {
    let mut seen_names: HashMap<&str, (&Option<String>, &Option<String>)> = HashMap::new();
    let mut seen_aliases: HashSet<&str> = HashSet::new();
    for spec in specs {
        if let Some((alias, label)) = seen_names.get(spec.name.as_str()) {
            let same_alias = spec.alias.is_some() && spec.alias == **alias;
            let same_label = spec.label.is_some() && spec.label == **label;
            let neither = |a: &Option<String>, l: &Option<String>| a.is_none() && l.is_none();
            let duplicate = (same_alias && spec.label.is_none() && label.is_none())
                || (spec.alias.is_none() && alias.is_none() && same_label)
                || (same_alias && same_label)
                || (neither(&spec.alias, &spec.label) && neither(alias, label));
            if duplicate {
                errors.push(format!(
                    "object {}: duplicate objectName with the same objectAlias and objectVersionLabel as an earlier object",
                    shorten(&spec.name)
                ));
            }
        }
        seen_names.insert(&spec.name, (&spec.alias, &spec.label));
        if let Some(alias) = &spec.alias
            && !seen_aliases.insert(alias)
        {
            errors.push(format!(
                "object {}: objectAlias {} is already used",
                shorten(&spec.name),
                shorten(alias)
            ));
        }
        for j in &spec.jmes {
            let entry_alias = j.alias.as_str();
            if !seen_aliases.insert(entry_alias) {
                errors.push(format!(
                    "object {}: jmesPath objectAlias {} is already used",
                    shorten(&spec.name),
                    shorten(entry_alias)
                ));
            }
        }
    }
    if !errors.is_empty() {
        return;
    }
    let mut files: HashSet<&str> = HashSet::new();
    for spec in specs {
        for file in std::iter::once(&spec.file).chain(spec.jmes.iter().map(|j| &j.file)) {
            if !files.insert(file) {
                errors.push(format!(
                    "object {}: file name {} is produced by another object too",
                    shorten(&spec.name),
                    shorten(file)
                ));
            }
        }
    }
}

/// Names in messages are cut to a readable length.
fn shorten(s: &str) -> String {
    crate::text::truncate(s, 200)
}
