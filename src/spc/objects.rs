//! The `objects` parameter: a YAML list of object descriptors, turned into
//! validated [`ObjectSpec`]s with their file names and modes decided.
//!
//! The rules are ASCP's (docs/secretproviderclass.md#object-descriptors-objects),
//! so a SecretProviderClass that works there works here, plus these safety
//! rules of our own: a file name never holds a NUL, an empty, `.` or `..`
//! element, and its first element never starts
//! with `..` (the kubelet's atomic writer keeps `..data` and its timestamped
//! directories there, and the driver refuses such names too); it is at most
//! 4096 bytes with at most 255 per element; no two files of one mount share
//! a name (ASCP would let the last one silently win); and names and aliases
//! (objectName, objectAlias, jmesPath objectAlias, failoverObject
//! objectName) hold no control character, so they cannot forge log lines.
//! No Secrets Manager or SSM name can hold one.
//!
//! Beyond ASCP, an `objectName` ending in `/*` or `/**` is a path
//! ([`PathSpec`]): every secret or parameter under the prefix, each in a
//! file named by its name below it. A path is never an ARN, an ssmparameter
//! path starts with `/`, `*` appears only in that ending, and a path carries
//! no objectAlias, jmesPath, objectVersion, objectVersionLabel or
//! failoverObject; its files are checked once it is listed (in the mount).
//! `objectEncoding` (object and jmesPath entry) is `utf-8`, `base64` or
//! `hex`, any case.
//!
//! Every rule is checked on every entry and every problem is reported, each
//! naming its object and field: an entry with one bad field is still checked
//! field by field, and its names and aliases still enter the duplicate rules.
//!
//! Parsing is bounded: the YAML's size, nesting depth, node count and alias
//! expansion are capped (see the constants), so a hostile document costs
//! little and cannot exhaust the stack.
//!
//! Mounts check through a bounded memo (`Memo`): a class that passed is
//! not parsed again while it is kept, since the answer depends only on its
//! text, its `pathTranslation` and whether it has a `failoverRegion`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;

use super::{Problem, keys};
use crate::encoding::{self, Encoding};
use crate::jmes;
use crate::store_kind::StoreKind;

/// Largest `objects` YAML accepted.
pub const MAX_OBJECTS_YAML_BYTES: usize = 1024 * 1024;
/// Objects per mount.
pub const MAX_OBJECTS: usize = 256;
/// Files per mount: objects, their jmesPath entries and the matches of its
/// path objects (counted as they are listed).
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
    pub fn parse(v: Option<&str>) -> Result<Self, Problem> {
        match v {
            None => Ok(Self::Replace('_')),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Self::Off),
            Some(v) if v.len() == 1 && v != "\0" => {
                Ok(Self::Replace(v.chars().next().unwrap_or('_')))
            }
            Some(v) => Err(Problem::parameter(
                keys::PATH_TRANSLATION,
                format!(
                    "\"{}\" must be \"False\" or a single character",
                    shorten_to(v, 32)
                ),
            )),
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
    /// `objectEncoding` of the object's own file (of each match's, for a
    /// path).
    pub encoding: Encoding,
    /// Set when `objectName` ends in `/*` or `/**`: the object is every
    /// secret or parameter under a path, each in a file of its own.
    pub path: Option<PathSpec>,
}

/// A path object: `prefix*` (one level) or `prefix**` (any depth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathSpec {
    /// The objectName without its final `*` or `**`; ends in `/`.
    pub prefix: String,
    /// `/**`: names at any depth below the prefix.
    pub recursive: bool,
    /// The class's `pathTranslation`, applied to each match's name below
    /// the prefix.
    pub translation: PathTranslation,
}

/// Most matches of one path object.
pub const MAX_PATH_MATCHES: usize = 256;

impl PathSpec {
    /// The path of an objectName ending in `/*` or `/**`.
    pub fn of(name: &str, translation: PathTranslation) -> Option<Self> {
        let (prefix, recursive) = match name.strip_suffix("/**") {
            Some(p) => (p, true),
            None => (name.strip_suffix("/*")?, false),
        };
        Some(PathSpec {
            prefix: format!("{prefix}/"),
            recursive,
            translation,
        })
    }

    /// The file of a match named `name` (which starts with the prefix): its
    /// path below the prefix, translated.
    pub fn file_of(&self, name: &str) -> String {
        self.translation
            .apply(name.strip_prefix(&self.prefix).unwrap_or(name))
    }
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
    /// `objectEncoding` of the extracted value.
    pub encoding: Encoding,
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

    /// Whether the object's own file holds its value exactly as fetched, so
    /// that a rotation remount may read the file back instead of fetching
    /// it. Not when `objectEncoding` decodes it: the file then holds other
    /// bytes than the value its jmesPath entries and records start from.
    /// Nor for a path, which has no file of its own and is listed again at
    /// every mount, so that matches added or removed show.
    pub fn file_holds_value(&self) -> bool {
        self.encoding == Encoding::Utf8 && self.path.is_none()
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
    object_encoding: Option<Scalar>,
}

#[derive(Debug, Default)]
struct RawJmes {
    path: Option<Scalar>,
    object_alias: Option<Scalar>,
    file_permission: Option<Scalar>,
    object_encoding: Option<Scalar>,
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
    "objectEncoding" => object_encoding,
});

case_insensitive_fields!(RawJmes, "a jmesPath entry (a mapping with path and objectAlias)", {
    "path" => path,
    "objectAlias" => object_alias,
    "filePermission" => file_permission,
    "objectEncoding" => object_encoding,
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
    let (specs, problems) = check(yaml, translation, has_failover_region);
    if problems.is_empty() {
        Ok(specs)
    } else {
        Err(problems.iter().map(ToString::to_string).collect())
    }
}

/// Classes kept by a [`Memo`].
const MEMO_ENTRIES: usize = 64;
/// Larger documents are checked every time.
const MEMO_MAX_YAML_BYTES: usize = 16 * 1024;
/// YAML bytes a [`Memo`] stands for, all classes together: what it holds
/// grows with them, and hostile classes must not make it hold much.
const MEMO_BUDGET_BYTES: usize = 256 * 1024;

/// The process's memo of [`check`], used by every mount.
static MEMO: Memo = Memo::new();

/// [`check`] through the process's [`Memo`].
pub(super) fn check_memoized(
    yaml: &str,
    translation: &PathTranslation,
    has_failover_region: bool,
) -> (Arc<[ObjectSpec]>, Vec<Problem>) {
    MEMO.check(yaml, translation, has_failover_region)
}

/// The objects of classes that passed [`check`], by the SHA-256 of all it
/// was given.
///
/// A node mounts the same few classes again and again (every replica, every
/// rotation remount), and parsing their YAML was about 7% of a warm mount's
/// instructions (benchmarks/README.md). The answer depends only on the
/// arguments, so an answer found by their digest is the one `check` would
/// give. Only classes without problems are kept (a broken class costs its
/// sender, not the node): at most [`MEMO_ENTRIES`] of them, each of at most
/// [`MEMO_MAX_YAML_BYTES`] and together of at most [`MEMO_BUDGET_BYTES`].
/// When a class does not fit, the memo starts over.
pub(super) struct Memo {
    /// Empty until the first class is kept (`HashMap::new` is not `const`).
    classes: Mutex<Option<Classes>>,
}

/// The classes a [`Memo`] keeps.
#[derive(Default)]
struct Classes {
    /// A class's objects by the digest of its `objects`, `pathTranslation`
    /// and whether it has a `failoverRegion`.
    by_digest: HashMap<[u8; 32], Arc<[ObjectSpec]>>,
    /// The YAML bytes of the classes kept.
    yaml_bytes: usize,
}

impl Memo {
    pub(super) const fn new() -> Self {
        Self {
            classes: Mutex::new(None),
        }
    }

    /// [`check`], answered from the memo when these arguments passed it
    /// before.
    pub(super) fn check(
        &self,
        yaml: &str,
        translation: &PathTranslation,
        has_failover_region: bool,
    ) -> (Arc<[ObjectSpec]>, Vec<Problem>) {
        if yaml.len() > MEMO_MAX_YAML_BYTES {
            let (specs, problems) = check(yaml, translation, has_failover_region);
            return (specs.into(), problems);
        }
        let key = memo_key(yaml, translation, has_failover_region);
        let classes = || self.classes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(specs) = classes().as_ref().and_then(|c| c.by_digest.get(&key)) {
            return (specs.clone(), Vec::new());
        }
        let (specs, problems) = check(yaml, translation, has_failover_region);
        let specs: Arc<[ObjectSpec]> = specs.into();
        if problems.is_empty() {
            let mut classes = classes();
            let kept = classes.get_or_insert_with(Classes::default);
            if kept.by_digest.len() >= MEMO_ENTRIES
                || kept.yaml_bytes + yaml.len() > MEMO_BUDGET_BYTES
            {
                *kept = Classes::default();
            }
            if kept.by_digest.insert(key, specs.clone()).is_none() {
                kept.yaml_bytes += yaml.len();
            }
        }
        (specs, problems)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.classes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |c| c.by_digest.len())
    }
}

fn memo_key(yaml: &str, translation: &PathTranslation, has_failover_region: bool) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    match translation {
        PathTranslation::Replace(c) => {
            hash.update([b'R']);
            hash.update(u32::from(*c).to_le_bytes());
        }
        PathTranslation::Off => hash.update([b'O']),
    }
    hash.update([u8::from(has_failover_region)]);
    hash.update(yaml.as_bytes());
    hash.finalize().into()
}

/// Parses the `objects` YAML and checks every entry; returns a draft of each
/// entry and every problem found. The drafts are mountable only when there
/// is no problem; otherwise they serve the checks that span objects
/// (duplicates, ARN regions), so an entry's bad field hides none of them.
pub(super) fn check(
    yaml: &str,
    translation: &PathTranslation,
    has_failover_region: bool,
) -> (Vec<ObjectSpec>, Vec<Problem>) {
    if yaml.len() > MAX_OBJECTS_YAML_BYTES {
        let rule = format!(
            "the YAML has {} bytes, more than the limit of {MAX_OBJECTS_YAML_BYTES}",
            yaml.len()
        );
        return (Vec::new(), vec![Problem::objects(rule)]);
    }
    let over_limit = std::cell::Cell::new(false);
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(yaml, yaml_options(), |d| {
        serde::de::DeserializeSeed::deserialize(
            BoundedList {
                over_limit: &over_limit,
            },
            d,
        )
    });
    let raw = match parsed {
        Ok(raw) => raw,
        Err(e) => {
            let rule = if over_limit.get() {
                format!("more than {MAX_OBJECTS} objects, the limit per mount")
            } else {
                format!(
                    "the objects parameter is not a YAML list of objects: {}",
                    yaml_error(&e)
                )
            };
            return (Vec::new(), vec![Problem::objects(rule)]);
        }
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
pub(super) fn region_problems(
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

fn yaml_error(e: &serde_saphyr::Error) -> String {
    // The parser's message may quote the document; keep it short, one line
    // and escaped.
    let msg = e.to_string();
    let line = msg
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("parse error");
    shorten_to(line, 300)
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
    if prefix.starts_with("arn:") {
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
    let arn = if name.starts_with("arn:") {
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
    // The kubelet's atomic writer, which the driver uses and whose layout
    // the provider writes too, keeps `..data` and `..<timestamp>` entries at
    // the top; the driver refuses such names as well.
    if file.starts_with("..") {
        return Err("must not start with \"..\" (names the atomic writer keeps for itself)".into());
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

/// ASCP's duplicate rules, and one of ours: no two files with one name.
/// Runs over every draft, invalid ones included.
fn check_duplicates(specs: &[ObjectSpec], problems: &mut Vec<Problem>) {
    type Seen<'a> = (usize, &'a Option<String>, &'a Option<String>);
    let mut seen_names: HashMap<&str, Seen<'_>> = HashMap::new();
    let mut seen_aliases: HashMap<&str, usize> = HashMap::new();
    // Files whose collision a duplicate rule already explains.
    let mut explained: HashSet<(usize, &str)> = HashSet::new();
    let used_by = |first: usize| format!("is already used by object #{}", first + 1);
    for spec in specs {
        let at =
            |field: &str, rule: String| Problem::object(spec.index, Some(&spec.name), field, rule);
        if !spec.name.is_empty() {
            if let Some((first, alias, label)) = seen_names.get(spec.name.as_str()) {
                let same_alias = spec.alias.is_some() && spec.alias == **alias;
                let same_label = spec.label.is_some() && spec.label == **label;
                let neither = |a: &Option<String>, l: &Option<String>| a.is_none() && l.is_none();
                let duplicate = (same_alias && spec.label.is_none() && label.is_none())
                    || (spec.alias.is_none() && alias.is_none() && same_label)
                    || (same_alias && same_label)
                    || (neither(&spec.alias, &spec.label) && neither(alias, label));
                if duplicate {
                    problems.push(at(
                        "objectName",
                        format!(
                            "repeats object #{} with the same objectAlias and objectVersionLabel",
                            first + 1
                        ),
                    ));
                    explained.insert((spec.index, spec.file.as_str()));
                }
            }
            seen_names.insert(&spec.name, (spec.index, &spec.alias, &spec.label));
        }
        if let Some(alias) = &spec.alias {
            if let Some(first) = seen_aliases.get(alias.as_str()) {
                let rule = format!("{} {}", shorten(alias), used_by(*first));
                problems.push(at("objectAlias", rule));
                explained.insert((spec.index, spec.file.as_str()));
            } else {
                seen_aliases.insert(alias, spec.index);
            }
        }
        for j in &spec.jmes {
            if let Some(first) = seen_aliases.get(j.alias.as_str()) {
                let rule = format!("{} {}", shorten(&j.alias), used_by(*first));
                problems.push(at("jmesPath objectAlias", rule));
                explained.insert((spec.index, j.file.as_str()));
            } else {
                seen_aliases.insert(&j.alias, spec.index);
            }
        }
    }
    let mut files: HashMap<&str, usize> = HashMap::new();
    // A path's files are known once it is listed (checked then).
    for spec in specs.iter().filter(|s| s.path.is_none()) {
        let own_field = if spec.alias.is_some() {
            "objectAlias"
        } else {
            "objectName"
        };
        let produced = std::iter::once((own_field, &spec.file))
            .chain(spec.jmes.iter().map(|j| ("jmesPath objectAlias", &j.file)));
        for (field, file) in produced {
            // Names that are bad on their own are reported as such.
            if check_file_name(file).is_err() {
                continue;
            }
            match files.get(file.as_str()) {
                Some(first) if !explained.contains(&(spec.index, file.as_str())) => {
                    problems.push(Problem::object(
                        spec.index,
                        Some(&spec.name),
                        field,
                        format!(
                            "file name {} is produced by object #{} too",
                            shorten(file),
                            first + 1
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    files.insert(file, spec.index);
                }
            }
        }
    }
}

/// Names in messages are cut to a readable length and escaped.
fn shorten(s: &str) -> String {
    shorten_to(s, 200)
}

fn shorten_to(s: &str, max: usize) -> String {
    crate::bounded_text::escape_bounded(s, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASS: &str = "- objectName: db\n  objectType: secretsmanager\n- objectName: /app/key\n  objectType: ssmparameter\n";

    #[test]
    fn the_memo_answers_as_check_does_and_keeps_only_passing_classes() {
        let memo = Memo::new();
        let underscore = PathTranslation::Replace('_');
        let (first, problems) = memo.check(CLASS, &underscore, false);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(&first[..], &check(CLASS, &underscore, false).0[..]);
        let (again, _) = memo.check(CLASS, &underscore, false);
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second check was not remembered"
        );
        assert_eq!(memo.len(), 1);

        // Every argument is part of the key.
        let (off, _) = memo.check(CLASS, &PathTranslation::Off, false);
        assert_eq!(off[1].file, "app/key");
        assert_eq!(first[1].file, "_app_key");
        let (dash, _) = memo.check(CLASS, &PathTranslation::Replace('-'), false);
        assert_eq!(dash[1].file, "-app-key");
        memo.check(CLASS, &underscore, true);
        assert_eq!(memo.len(), 4);

        // A class with a problem is checked, and told, every time.
        let broken = "- objectName: db\n  objectType: vault\n";
        for _ in 0..2 {
            let (_, problems) = memo.check(broken, &underscore, false);
            assert_eq!(problems.len(), 1, "{problems:?}");
        }
        assert_eq!(memo.len(), 4);
    }

    #[test]
    fn the_memo_is_bounded_in_classes_and_in_size() {
        let memo = Memo::new();
        let underscore = PathTranslation::Replace('_');
        for i in 0..MEMO_ENTRIES {
            memo.check(
                &format!("- objectName: s{i}\n  objectType: secretsmanager\n"),
                &underscore,
                false,
            );
        }
        assert_eq!(memo.len(), MEMO_ENTRIES);
        memo.check(CLASS, &underscore, false);
        assert_eq!(memo.len(), 1, "a full memo starts over");

        // Large classes fill the byte budget before the count.
        let memo = Memo::new();
        let filler = "#".repeat(MEMO_MAX_YAML_BYTES - 200);
        let per_budget = MEMO_BUDGET_BYTES / MEMO_MAX_YAML_BYTES;
        for i in 0..per_budget {
            let class = format!("- objectName: s{i}\n  objectType: secretsmanager\n{filler}\n");
            memo.check(&class, &underscore, false);
        }
        assert_eq!(memo.len(), per_budget);
        let class = format!("- objectName: last\n  objectType: secretsmanager\n{filler}\n");
        memo.check(&class, &underscore, false);
        assert_eq!(
            memo.len(),
            1,
            "a class over the byte budget starts the memo over"
        );

        let padding = "#".repeat(MEMO_MAX_YAML_BYTES);
        let large = format!("{CLASS}{padding}\n");
        let (specs, problems) = memo.check(&large, &underscore, false);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(specs.len(), 2);
        assert_eq!(memo.len(), 1, "a large class is not kept");
    }
}
