//! `ascp validate FILE`: the server's own parsing and validation, offline.

use std::fmt::Write as _;

use crate::bounded_text::Escaped;
use crate::config::ValidateArgs;
use crate::encoding::Encoding;
use crate::spc::objects::MAX_PATH_MATCHES;
use crate::spc::{Attributes, MountParams, PathSpec, PathTranslation};
use crate::store_kind::StoreKind;

/// Validates and returns the report to print, or every problem found, one
/// per line.
pub fn run(args: &ValidateArgs) -> Result<String, String> {
    let manifest = super::read_spc(&args.file)?;
    let mut problems = Vec::new();
    let mut out = String::new();
    if manifest.provider != "aws" {
        problems.push(format!(
            "spec.provider is {:?}; this provider serves \"aws\"",
            manifest.provider
        ));
    }
    let attrs = Attributes::from_pairs(manifest.parameters.clone());
    // The server's own check; with --region, ARN regions are checked as the
    // server checks them once it knows the region.
    let params = match MountParams::check(&attrs, args.region.as_deref()) {
        Ok(p) => Some(p),
        Err(found) => {
            problems.extend(found.iter().map(ToString::to_string));
            None
        }
    };
    if !problems.is_empty() {
        let mut msg = format!("{}: {} problem(s)\n", args.file.display(), problems.len());
        for p in &problems {
            let _ = writeln!(msg, "  - {p}");
        }
        return Err(msg);
    }
    let params = params.ok_or("no objects")?;
    for w in &params.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if params.region.is_none() && args.region.is_none() {
        let _ = writeln!(
            out,
            "note: no region in the class or --region; the pod's node will decide, and ARN regions are not checked"
        );
    }
    let _ = writeln!(
        out,
        "SecretProviderClass {}: {} object(s), region {}{}",
        Escaped(&manifest.name),
        params.objects.len(),
        params
            .region
            .as_deref()
            .or(args.region.as_deref())
            .unwrap_or("(from the node)"),
        params
            .failover_region
            .as_deref()
            .map(|f| format!(", failover {f}"))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "{:<40} {:>5}  {:<14} SOURCE", "FILE", "MODE", "STORE");
    for spec in params.objects.iter() {
        let mode = spec.mode_or(args.permission);
        let mut source = spec.name.clone();
        if let Some(v) = &spec.version {
            source.push_str(&format!(" version {v}"));
        }
        if let Some(l) = &spec.label {
            source.push_str(&format!(" label {l}"));
        }
        if let Some(f) = &spec.failover {
            source.push_str(&format!(" (failover: {})", f.name));
        }
        if let Some(path) = &spec.path {
            source.push_str(&listed(path, spec.kind));
        }
        source.push_str(&decoded(spec.encoding));
        // A path's files are its matches, known once listed.
        let file = match &spec.path {
            Some(path) if path.recursive => "**",
            Some(_) => "*",
            None => spec.file.as_str(),
        };
        // Modes as filePermission writes them: four octal digits.
        let _ = writeln!(
            out,
            "{:<40} {:>5}  {:<14} {}",
            file,
            format!("{mode:04o}"),
            spec.kind.as_str(),
            source
        );
        for j in &spec.jmes {
            let _ = writeln!(
                out,
                "{:<40} {:>5}  {:<14} {} jmesPath {}{}",
                j.file,
                format!("{:04o}", j.mode.unwrap_or(mode)),
                spec.kind.as_str(),
                spec.name,
                Escaped(&j.path),
                decoded(j.encoding)
            );
        }
    }
    Ok(out)
}

/// What a path object mounts, in words.
fn listed(path: &PathSpec, kind: StoreKind) -> String {
    let what = match kind {
        StoreKind::SecretsManager => "secret",
        StoreKind::ParameterStore => "parameter",
    };
    let depth = if path.recursive {
        "at any depth"
    } else {
        "directly"
    };
    let names = match path.translation {
        PathTranslation::Off | PathTranslation::Replace('/') => {
            "its name below the prefix, in subdirectories".to_owned()
        }
        PathTranslation::Replace(c) => format!("its name below the prefix, / becoming {c}"),
    };
    format!(
        " (path: each {what} {depth} under {}, at most {MAX_PATH_MATCHES}, in a file named by {names})",
        Escaped(&path.prefix)
    )
}

/// How a file's bytes come from its value, when not as fetched.
fn decoded(encoding: Encoding) -> String {
    match encoding {
        Encoding::Utf8 => String::new(),
        e => format!(" (decoded from {})", e.as_str()),
    }
}
