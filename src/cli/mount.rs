//! `ascp mount`: plays the CSI driver against a running provider.
//!
//! It builds the MountRequest from a SecretProviderClass the way the driver
//! does (the class's `spec.parameters` plus the pod attributes and the
//! service-account tokens), sends it over the provider's socket, writes any
//! files the provider returns (driver-writes mode) into the target directory
//! with the same atomic writer the provider uses, and prints the files and
//! versions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::config::MountArgs;
use crate::output::{self, OutputFile};
use crate::proto::csi_driver_provider_client::CsiDriverProviderClient;
use crate::proto::{MountRequest, ObjectVersion, VersionRequest};
use crate::secret::{SecretBytes, Token};
use crate::spc::{Attributes, keys};

pub use crate::server::connect;

/// Builds the attributes the driver would send for this pod and class.
pub fn driver_attributes(
    args: &MountArgs,
    spc_name: &str,
    parameters: &BTreeMap<String, String>,
) -> Result<Attributes, String> {
    let mut pairs: BTreeMap<String, String> = parameters.clone();
    pairs.insert(keys::POD_NAME.into(), args.pod_name.clone());
    pairs.insert(keys::POD_NAMESPACE.into(), args.namespace.clone());
    pairs.insert(
        keys::POD_UID.into(),
        pod_uid(&args.namespace, &args.pod_name),
    );
    pairs.insert(keys::SERVICE_ACCOUNT.into(), args.service_account.clone());
    pairs.insert(keys::EPHEMERAL.into(), "false".into());
    pairs.insert(keys::SPC.into(), spc_name.into());
    if !args.tokens.is_empty() {
        pairs.insert(
            keys::TOKENS.into(),
            tokens_json(&args.tokens)?.expose().to_owned(),
        );
    }
    Ok(Attributes::from_pairs(pairs))
}

/// The `serviceAccount.tokens` attribute, from token files.
fn tokens_json(tokens: &[(String, PathBuf)]) -> Result<Token, String> {
    let expires = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600))
        .to_string();
    let mut map = serde_json::Map::new();
    for (audience, file) in tokens {
        let token = std::fs::read_to_string(file).map_err(|e| {
            format!(
                "cannot read the token for {audience} from {}: {e}",
                file.display()
            )
        })?;
        map.insert(
            audience.clone(),
            serde_json::json!({ "token": token.trim(), "expirationTimestamp": expires }),
        );
    }
    Ok(Token::new(serde_json::Value::Object(map).to_string()))
}

/// A stable made-up pod UID, so repeated runs look like one pod.
fn pod_uid(namespace: &str, pod: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in namespace.bytes().chain([b'/']).chain(pod.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    format!("00000000-0000-4000-8000-{:012x}", h & 0xffff_ffff_ffff)
}

/// Runs the tool; returns the report, or the error to print.
pub async fn run(args: &MountArgs) -> Result<String, String> {
    let manifest = super::read_spc(&args.spc)?;
    let attrs = driver_attributes(args, &manifest.name, &manifest.parameters)?;
    std::fs::create_dir_all(&args.target)
        .map_err(|e| format!("cannot create {}: {e}", args.target.display()))?;
    let target = std::fs::canonicalize(&args.target).map_err(|e| e.to_string())?;

    let channel = connect(&args.socket, args.timeout).await?;
    let mut client = CsiDriverProviderClient::new(channel);
    let version = client
        .version(VersionRequest {
            version: "v1alpha1".into(),
        })
        .await
        .map_err(|s| format!("Version failed: {}: {}", code_name(s.code()), s.message()))?
        .into_inner();
    let request = MountRequest {
        attributes: attrs.to_json(),
        secrets: "{}".into(),
        target_path: target.display().to_string(),
        permission: args.permission.to_string(),
        current_object_version: args
            .current_versions
            .iter()
            .map(|(id, version)| ObjectVersion {
                id: id.clone(),
                version: version.clone(),
            })
            .collect(),
    };
    let response = client
        .mount(request)
        .await
        .map_err(|s| format!("Mount failed: {}: {}", code_name(s.code()), s.message()))?
        .into_inner();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "provider {} {} (API {}); mounted {} into {}",
        version.runtime_name,
        version.runtime_version,
        version.version,
        manifest.name,
        target.display()
    );
    if !response.files.is_empty() {
        let files: Vec<OutputFile> = response
            .files
            .iter()
            .map(|f| OutputFile {
                path: f.path.clone(),
                mode: (f.mode as u32) & 0o777,
                contents: SecretBytes::new(f.contents.clone()),
            })
            .collect();
        output::Target::open(&target)
            .and_then(|t| t.write_set(&files, &|| true))
            .map_err(|e| e.full_message())?;
        let _ = writeln!(
            out,
            "the driver's part: wrote {} file(s) returned by the provider",
            files.len()
        );
    }
    let _ = writeln!(out, "{:<40} {:>5} {:>8}  VERSION", "FILE", "MODE", "BYTES");
    let versions: BTreeMap<&str, &str> = response
        .object_version
        .iter()
        .map(|v| (v.id.as_str(), v.version.as_str()))
        .collect();
    for (id, version) in &versions {
        let (mode, bytes) = match std::fs::metadata(target.join(id)) {
            Ok(m) => {
                use std::os::unix::fs::PermissionsExt;
                (
                    format!("{:o}", m.permissions().mode() & 0o777),
                    m.len().to_string(),
                )
            }
            Err(_) => ("-".into(), "-".into()),
        };
        let _ = writeln!(out, "{id:<40} {mode:>5} {bytes:>8}  {version}");
    }
    Ok(out)
}

fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
}
