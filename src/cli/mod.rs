//! The operator's tools, for when a pod hangs in `ContainerCreating`:
//! `ascp validate` checks a SecretProviderClass offline with the server's own
//! code; `ascp mount` plays the CSI driver against a running provider;
//! `ascp doctor` checks a pod's whole chain (driver, provider, class,
//! identity, IAM permissions) in the cluster and in AWS.

pub mod doctor;
pub mod mount;
pub mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::spc::objects::Scalar;

/// The parts of a SecretProviderClass manifest these tools read.
#[derive(Debug, Clone)]
pub struct SpcManifest {
    /// `metadata.name`.
    pub name: String,
    /// `spec.provider`.
    pub provider: String,
    /// `spec.parameters`.
    pub parameters: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Doc {
    kind: Option<String>,
    metadata: Option<Meta>,
    spec: Option<Spec>,
}

#[derive(Debug, Deserialize)]
struct Meta {
    name: Option<Scalar>,
}

#[derive(Debug, Deserialize)]
struct Spec {
    provider: Option<Scalar>,
    parameters: Option<BTreeMap<String, Option<Scalar>>>,
}

/// Reads the first SecretProviderClass in a YAML file of one or more
/// documents.
pub fn read_spc(path: &Path) -> Result<SpcManifest, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let docs: Vec<Option<Doc>> = serde_saphyr::from_multiple(&text).map_err(|e| {
        format!(
            "{} is not a Kubernetes YAML manifest: {}",
            path.display(),
            first_line(&e.to_string())
        )
    })?;
    let doc = docs
        .into_iter()
        .flatten()
        .find(|d| d.kind.as_deref() == Some("SecretProviderClass"))
        .ok_or_else(|| format!("{} holds no SecretProviderClass", path.display()))?;
    let spec = doc.spec.ok_or("the SecretProviderClass has no spec")?;
    Ok(SpcManifest {
        name: doc
            .metadata
            .and_then(|m| m.name)
            .map(|n| n.0)
            .unwrap_or_default(),
        provider: spec.provider.map(|p| p.0).unwrap_or_default(),
        parameters: spec
            .parameters
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.map(|s| s.0).unwrap_or_default()))
            .collect(),
    })
}

fn first_line(s: &str) -> String {
    crate::bounded_text::first_line(s, 300)
}
