//! From values to files: each object's file, its jmesPath files, and the
//! versions the driver records (SPEC §3, §4).
//!
//! jmesPath entries read the value as fetched; the object's own
//! `objectEncoding` then decodes its own file, and each entry's decodes the
//! extracted text. Any failure fails the whole mount before a file is
//! written.

use std::collections::BTreeMap;

use super::fetch::Value;
use crate::error::Error;
use crate::jmes;
use crate::output::OutputFile;
use crate::proto::ObjectVersion;
use crate::spc::ObjectSpec;

/// The files of a mount and the versions to report.
pub struct Files {
    /// Every file, each object's own before its jmesPath files.
    pub files: Vec<OutputFile>,
    /// One version per file, merged over what the driver sent.
    pub versions: Vec<ObjectVersion>,
}

/// Builds the files of `objects` (with `values` in the same order), modes
/// defaulting to `default_mode`, versions merged over `current`.
pub fn build(
    objects: &[&ObjectSpec],
    values: Vec<Value>,
    default_mode: u32,
    current: &[ObjectVersion],
) -> Result<Files, Error> {
    let mut files = Vec::new();
    let mut versions: BTreeMap<String, String> = current
        .iter()
        .map(|v| (v.id.clone(), v.version.clone()))
        .collect();
    for (
        spec,
        Value {
            contents, version, ..
        },
    ) in objects.iter().zip(values)
    {
        let mode = spec.mode_or(default_mode);
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
                let value = j.encoding.decode(value).map_err(|reason| Error::Decode {
                    object: spec.name.clone(),
                    field: format!(
                        "jmesPath {} objectEncoding {}",
                        j.alias,
                        j.encoding.as_str()
                    ),
                    reason,
                })?;
                extracted.push(OutputFile {
                    path: j.file.clone(),
                    mode: j.mode.unwrap_or(mode),
                    contents: value,
                });
                versions.insert(j.file.clone(), version.clone());
            }
        }
        tracing::debug!(object = %spec.name, file = %spec.file, version = %version, bytes = contents.len(), "fetched");
        let contents = spec
            .encoding
            .decode(contents)
            .map_err(|reason| Error::Decode {
                object: spec.name.clone(),
                field: format!("objectEncoding {}", spec.encoding.as_str()),
                reason,
            })?;
        files.push(OutputFile {
            path: spec.file.clone(),
            mode,
            contents,
        });
        files.extend(extracted);
        versions.insert(spec.file.clone(), version);
    }
    Ok(Files {
        files,
        versions: versions
            .into_iter()
            .map(|(id, version)| ObjectVersion { id, version })
            .collect(),
    })
}
