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
//! Mounts check through a bounded memo (`memo::Memo`): a class that passed
//! is not parsed again while it is kept, since the answer depends only on
//! its text, its `pathTranslation` and whether it has a `failoverRegion`.
//!
//! This module holds the types and the limits; the work is in its parts,
//! in the order a class meets them:
//! - `parse`: the YAML read into raw descriptors, within its bounds;
//! - `rules`: every rule of one descriptor, and the ARN regions;
//! - `files`: the file-name rules and the duplicate rules across objects;
//! - `memo`: the memo of classes that passed.

mod files;
mod memo;
mod parse;
mod rules;

use super::{Problem, keys};
/// Re-exported for the callers that name it here.
pub use crate::arn::Arn;
use crate::encoding::Encoding;
use crate::store_kind::StoreKind;
pub use files::check_file_name;
pub(super) use memo::check_memoized;
pub use parse::Scalar;
pub use rules::check_regions;
pub(super) use rules::region_problems;

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

/// Parses and validates the `objects` YAML; returns every rule broken.
///
/// `has_failover_region` says whether `failoverRegion` is set. Checks that
/// need the primary region are in [`check_regions`].
pub fn parse(
    yaml: &str,
    translation: &PathTranslation,
    has_failover_region: bool,
) -> Result<Vec<ObjectSpec>, Vec<String>> {
    let (specs, problems) = rules::check(yaml, translation, has_failover_region);
    if problems.is_empty() {
        Ok(specs)
    } else {
        Err(problems.iter().map(ToString::to_string).collect())
    }
}

/// Names in messages are cut to a readable length and escaped.
fn shorten(s: &str) -> String {
    shorten_to(s, 200)
}

fn shorten_to(s: &str, max: usize) -> String {
    crate::bounded_text::escape_bounded(s, max)
}
