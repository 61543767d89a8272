//! `ascp validate FILE`: the server's own parsing and validation, offline.

use std::fmt::Write as _;

use crate::config::ValidateArgs;
use crate::spc::objects::check_regions;
use crate::spc::{self, Attributes, MountParams};

/// Validates and returns the report to print, or every error found.
pub fn run(args: &ValidateArgs) -> Result<String, String> {
    let manifest = super::read_spc(&args.file)?;
    let mut errors = Vec::new();
    let mut out = String::new();
    if manifest.provider != "aws" {
        errors.push(format!(
            "spec.provider is {:?}; this provider serves \"aws\"",
            manifest.provider
        ));
    }
    let attrs = Attributes::from_pairs(manifest.parameters.clone());
    let params = match MountParams::from_attributes(&attrs) {
        Ok(p) => Some(p),
        Err(crate::error::Error::Objects(list)) => {
            errors.extend(list);
            None
        }
        Err(e) => {
            errors.push(e.to_string());
            None
        }
    };
    if let Some(params) = &params {
        let region = params.region.clone().or_else(|| args.region.clone());
        match &region {
            Some(r) => {
                if let Err(e) = spc::check_region(spc::keys::REGION, r) {
                    errors.push(e.to_string());
                } else if params.failover_region.as_deref() == Some(r.as_str()) {
                    // The server makes this check once the primary region
                    // is known; with --region, so can we.
                    let e = crate::error::Error::Parameter {
                        key: spc::keys::FAILOVER_REGION,
                        reason: format!(
                            "{r} is also the primary region; the failover region must differ"
                        ),
                    };
                    errors.push(e.to_string());
                } else if let Err(list) =
                    check_regions(&params.objects, r, params.failover_region.as_deref())
                {
                    errors.extend(list);
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "note: no region in the class or --region; the pod's node will decide, and ARN regions are not checked"
                );
            }
        }
    }
    if !errors.is_empty() {
        let mut msg = format!("{}: {} error(s)\n", args.file.display(), errors.len());
        for e in &errors {
            let _ = writeln!(msg, "  - {e}");
        }
        return Err(msg);
    }
    let params = params.ok_or("no objects")?;
    let _ = writeln!(
        out,
        "SecretProviderClass {}: {} object(s), region {}{}",
        manifest.name,
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
    for spec in &params.objects {
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
        // Modes as filePermission writes them: four octal digits.
        let _ = writeln!(
            out,
            "{:<40} {:>5}  {:<14} {}",
            spec.file,
            format!("{mode:04o}"),
            spec.kind.as_str(),
            source
        );
        for j in &spec.jmes {
            let _ = writeln!(
                out,
                "{:<40} {:>5}  {:<14} {} jmesPath {}",
                j.file,
                format!("{:04o}", j.mode.unwrap_or(mode)),
                spec.kind.as_str(),
                spec.name,
                j.path
            );
        }
    }
    Ok(out)
}
