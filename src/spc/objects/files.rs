//! The rules of file names: each name on its own ([`check_file_name`]) and
//! the names of one mount together ([`check_duplicates`]: ASCP's duplicate
//! rules, and no two files with one name).

use std::collections::{HashMap, HashSet};

use super::{MAX_ELEMENT_BYTES, MAX_PATH_BYTES, ObjectSpec, Problem, shorten};

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

/// ASCP's duplicate rules, and one of ours: no two files with one name.
/// Runs over every draft, invalid ones included.
pub(super) fn check_duplicates(specs: &[ObjectSpec], problems: &mut Vec<Problem>) {
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
