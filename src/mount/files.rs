//! From values to files: each object's file, its jmesPath files, each
//! match of a path object, and the versions the driver records
//! (docs/secretproviderclass.md#file-names-and-modes, docs/fetching.md#versions).
//!
//! jmesPath entries read the value as fetched; the object's own
//! `objectEncoding` then decodes its own file, and each entry's decodes the
//! extracted text. A path object's matches each become a file named by
//! their path below the prefix (`pathTranslation` applied), decoded by the
//! object's `objectEncoding`, with their own version. Match names are
//! checked as object names are (a listed name is the store's, not the
//! class's), and no two files of a mount may share a name: two matches, or
//! a match and another object, giving one name fail the mount naming both.
//! So does a mount of paths only, none of which matched anything (the
//! driver refuses a mount without a file). The matches of a mount's paths
//! share what its other files leave of the per-mount file limit: listings
//! stop there, and a mount whose answers came from two regions is checked
//! again here.
//! Every jmesPath result and decoded value is counted against the mount's
//! byte bound as it is made ([`super::budget`]).
//! Any failure fails the whole mount before a file is written.

use std::collections::{BTreeMap, HashMap};

use super::budget::MountBytes;
use super::fetch::Value;
use crate::bounded_text::escape_bounded;
use crate::encoding::Encoding;
use crate::error::Error;
use crate::jmes;
use crate::output::OutputFile;
use crate::proto::ObjectVersion;
use crate::secret::SecretBytes;
use crate::spc::objects::{MAX_FILES, check_file_name};
use crate::spc::{ObjectSpec, PathSpec};

/// The files of a mount and the versions to report.
pub struct Files {
    /// Every file, each object's own before its jmesPath files.
    pub files: Vec<OutputFile>,
    /// One version per file, merged over what the driver sent.
    pub versions: Vec<ObjectVersion>,
}

/// Builds the files of `objects` (with `values` in the same order), modes
/// defaulting to `default_mode`, versions merged over `driver_versions`
/// (what the driver sent as mounted). Each jmesPath result and each
/// decoded value is counted in `budget` as it is made (the values
/// themselves were counted as they arrived).
pub fn build(
    objects: &[&ObjectSpec],
    values: Vec<Value>,
    default_mode: u32,
    driver_versions: &[ObjectVersion],
    budget: &MountBytes,
) -> Result<Files, Error> {
    let mut files = Vec::new();
    let mut versions: BTreeMap<String, String> = driver_versions
        .iter()
        .map(|v| (v.id.clone(), v.version.clone()))
        .collect();
    // Who produced each file name, for a path's collisions.
    let mut origins: HashMap<String, String> = HashMap::new();
    for (spec, value) in objects.iter().zip(values) {
        let mode = spec.mode_or(default_mode);
        if let Some(path) = &spec.path {
            let matches = path_files(spec, path, value, &origins, budget)?;
            tracing::debug!(object = %spec.name, matches = matches.len(), "listed");
            for PathFile {
                file,
                name,
                version,
                contents,
            } in matches
            {
                origins.insert(file.clone(), name);
                versions.insert(file.clone(), version);
                files.push(OutputFile {
                    path: file,
                    mode,
                    contents,
                });
            }
            continue;
        }
        let Value {
            contents, version, ..
        } = value;
        let mut extracted = Vec::with_capacity(spec.jmes.len());
        if let Some(first) = spec.jmes.first() {
            let jmes_error = |path: &str, reason| Error::Jmes {
                object: spec.name.clone(),
                path: path.to_owned(),
                reason,
            };
            // Parsed once for all of the object's entries.
            let document =
                jmes::Document::parse(&contents).map_err(|r| jmes_error(&first.path, r))?;
            for j in &spec.jmes {
                let value = document
                    .extract(&j.path)
                    .map_err(|r| jmes_error(&j.path, r))?;
                let at = || {
                    format!(
                        "object {} jmesPath {}",
                        escape_bounded(&spec.name, 200),
                        j.alias
                    )
                };
                budget.charge(value.len(), at)?;
                let value = j.encoding.decode(value).map_err(|reason| Error::Decode {
                    object: spec.name.clone(),
                    field: format!(
                        "jmesPath {} objectEncoding {}",
                        j.alias,
                        j.encoding.as_str()
                    ),
                    reason,
                })?;
                if j.encoding != Encoding::Utf8 {
                    budget.charge(value.len(), || format!("{} (decoded)", at()))?;
                }
                origins.insert(j.file.clone(), format!("object {}", spec.name));
                extracted.push(OutputFile {
                    path: j.file.clone(),
                    mode: j.mode.unwrap_or(mode),
                    contents: value,
                });
                versions.insert(j.file.clone(), version.clone());
            }
        }
        tracing::debug!(object = %spec.name, file = %spec.file, version = %version, bytes = contents.len(), "fetched");
        let at = || format!("object {}", escape_bounded(&spec.name, 200));
        let contents = decode(spec, contents, &spec.name, budget, at)?;
        origins.insert(spec.file.clone(), format!("object {}", spec.name));
        files.push(OutputFile {
            path: spec.file.clone(),
            mode,
            contents,
        });
        files.extend(extracted);
        versions.insert(spec.file.clone(), version);
    }
    if files.len() > MAX_FILES
        && let Some(path) = objects.iter().find(|s| s.path.is_some())
    {
        return Err(Error::PathFiles {
            object: escape_bounded(&path.name, 200),
            reason: format!(
                "the mount's paths bring it to {} files, more than the limit of {MAX_FILES}",
                files.len()
            ),
        });
    }
    if files.is_empty() {
        let paths: Vec<String> = objects
            .iter()
            .map(|s| escape_bounded(&s.name, 200))
            .collect();
        return Err(Error::NothingToMount {
            paths: paths.join(", "),
        });
    }
    Ok(Files {
        files,
        versions: versions
            .into_iter()
            .map(|(id, version)| ObjectVersion { id, version })
            .collect(),
    })
}

/// Decodes `contents` per the object's `objectEncoding`; `what` names the
/// value (the object, or a path's match) in the error. Decoded bytes are a
/// new buffer, counted in `budget` as `at` (the value as fetched was
/// counted already).
fn decode(
    spec: &ObjectSpec,
    contents: SecretBytes,
    what: &str,
    budget: &MountBytes,
    at: impl FnOnce() -> String,
) -> Result<SecretBytes, Error> {
    let decoded = spec
        .encoding
        .decode(contents)
        .map_err(|reason| Error::Decode {
            object: what.to_owned(),
            field: format!("objectEncoding {}", spec.encoding.as_str()),
            reason,
        })?;
    if spec.encoding != Encoding::Utf8 {
        budget.charge(decoded.len(), || format!("{} (decoded)", at()))?;
    }
    Ok(decoded)
}

/// One match of a path object, ready to be a file.
struct PathFile {
    /// The file name.
    file: String,
    /// The match's name, escaped for messages.
    name: String,
    version: String,
    /// Decoded per the object's `objectEncoding`.
    contents: SecretBytes,
}

/// The files of a path object's matches. `taken` holds the names earlier
/// objects produced, with what produced them.
fn path_files(
    spec: &ObjectSpec,
    path: &PathSpec,
    value: Value,
    taken: &HashMap<String, String>,
    budget: &MountBytes,
) -> Result<Vec<PathFile>, Error> {
    let refuse = |reason: String| Error::PathFiles {
        object: escape_bounded(&spec.name, 200),
        reason,
    };
    let mut own: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(value.listed.len());
    for listed in value.listed {
        let file = path.file_of(&listed.name);
        let name = escape_bounded(&listed.name, 200);
        if let Err(rule) = check_file_name(&file) {
            return Err(refuse(format!(
                "{name} cannot be a file: its name {} {rule}",
                escape_bounded(&file, 200)
            )));
        }
        if let Some(first) = own.get(&file).or_else(|| taken.get(&file)) {
            return Err(refuse(format!(
                "{name} and {first} both give the file name {}",
                escape_bounded(&file, 200)
            )));
        }
        own.insert(file.clone(), name.clone());
        let at = || format!("object {} match {name}", escape_bounded(&spec.name, 200));
        let contents = decode(spec, listed.contents, &listed.name, budget, at)?;
        out.push(PathFile {
            file,
            name,
            version: listed.version,
            contents,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spc::PathTranslation;
    use crate::spc::objects::parse;
    use crate::store::Listed;

    fn specs(yaml: &str) -> Vec<ObjectSpec> {
        parse(yaml, &PathTranslation::Replace('_'), false).expect("a valid class")
    }

    fn listing(names: &[String]) -> Value {
        Value {
            contents: SecretBytes::new(Vec::new()),
            version: String::new(),
            arn: None,
            listed: names
                .iter()
                .map(|name| Listed {
                    name: name.clone(),
                    contents: SecretBytes::from(format!("value of {name}")),
                    version: format!("v-{name}"),
                })
                .collect(),
        }
    }

    fn build_paths(yaml: &str, listings: &[Vec<String>]) -> Result<Files, Error> {
        let specs = specs(yaml);
        let objects: Vec<&ObjectSpec> = specs.iter().collect();
        let values = listings.iter().map(|names| listing(names)).collect();
        let budget = super::super::budget::BytePool::default().mount(usize::MAX);
        build(&objects, values, 0o644, &[], &budget)
    }

    #[test]
    fn each_match_is_a_file_with_its_own_version() {
        let files = build_paths(
            "- objectName: p/**\n  objectType: secretsmanager\n",
            &[vec!["p/a".into(), "p/n/b".into()]],
        )
        .unwrap();
        let paths: Vec<&str> = files.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a", "n_b"]);
        assert_eq!(files.files[1].contents.expose(), b"value of p/n/b");
        assert_eq!(files.versions[1].version, "v-p/n/b");
    }

    #[test]
    fn unsafe_match_names_and_empty_mounts_are_refused() {
        let yaml = "- objectName: p/*\n  objectType: secretsmanager\n";
        let e = build_paths(yaml, &[vec!["p/..data".into()]])
            .err()
            .expect("a reserved name");
        assert!(e.to_string().contains("p/..data cannot be a file"), "{e}");
        let e = build_paths(yaml, &[Vec::new()]).err().expect("no file");
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert!(e.to_string().contains("no object lies under p/*"), "{e}");
    }
}
