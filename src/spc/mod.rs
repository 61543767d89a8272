//! The SecretProviderClass contract: the Mount request's attributes, the
//! `spec.parameters` copied into them, and the `objects` list.
//!
//! Everything here is written by users of any namespace and is treated as
//! hostile: each size is bounded before parsing, each recursion is bounded by
//! a depth limit, and nothing here panics on input.
//!
//! Limits (each a clear `InvalidArgument` when exceeded):
//!
//! | what | limit |
//! |---|---|
//! | `attributes` JSON | [`MAX_ATTRIBUTES_BYTES`] |
//! | `objects` YAML | [`objects::MAX_OBJECTS_YAML_BYTES`], nesting depth [`objects::MAX_YAML_DEPTH`], [`objects::MAX_YAML_NODES`] nodes, [`objects::MAX_YAML_ALIASES`] aliases |
//! | objects per mount | [`objects::MAX_OBJECTS`] |
//! | files per mount (objects and jmesPath entries) | [`objects::MAX_FILES`] |
//!
//! Parameters (`spec.parameters`), as ASCP reads them:
//!
//! - `region`: the primary region; when empty the pod's node decides.
//! - `failoverRegion`: a second region; must differ from the primary.
//! - `pathTranslation`: empty → `_`; `false` in any case → off; one ASCII
//!   character → that character; anything else is an error.
//! - `usePodIdentity`: Go `strconv.ParseBool` syntax; empty → IRSA.
//! - `preferredAddressType`: `ipv4`, `ipv6`, `auto` or empty, any case.
//! - `assumeRoleArn`, `assumeRoleExternalId` (beyond ASCP): a role to chain
//!   into after the pod's own.
//!
//! Region names are checked to be plain host labels (lowercase letters,
//! digits, `-`), because the SDK builds endpoint host names from them.

pub mod objects;

use std::collections::BTreeMap;

use crate::error::Error;
use crate::secret::Token;
use crate::store::{AddressPreference, PodIdentity};

pub use objects::{FailoverSpec, JmesSpec, ObjectSpec, PathTranslation};

/// Largest `attributes` accepted. A SecretProviderClass lives in etcd, whose
/// objects are at most 1.5 MiB, so nothing real comes near this.
pub const MAX_ATTRIBUTES_BYTES: usize = 2 * 1024 * 1024;

/// Attribute keys the driver sets.
pub mod keys {
    /// The pod's name.
    pub const POD_NAME: &str = "csi.storage.k8s.io/pod.name";
    /// The pod's namespace.
    pub const POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
    /// The pod's UID.
    pub const POD_UID: &str = "csi.storage.k8s.io/pod.uid";
    /// The pod's service account.
    pub const SERVICE_ACCOUNT: &str = "csi.storage.k8s.io/serviceAccount.name";
    /// The service-account tokens requested by the CSIDriver's tokenRequests.
    pub const TOKENS: &str = "csi.storage.k8s.io/serviceAccount.tokens";
    /// Whether the volume is ephemeral.
    pub const EPHEMERAL: &str = "csi.storage.k8s.io/ephemeral";
    /// The SecretProviderClass name.
    pub const SPC: &str = "secretProviderClass";
    /// The objects list.
    pub const OBJECTS: &str = "objects";
    /// The primary region.
    pub const REGION: &str = "region";
    /// The failover region.
    pub const FAILOVER_REGION: &str = "failoverRegion";
    /// Path translation character.
    pub const PATH_TRANSLATION: &str = "pathTranslation";
    /// Pod Identity switch.
    pub const USE_POD_IDENTITY: &str = "usePodIdentity";
    /// Pod Identity Agent address family.
    pub const PREFERRED_ADDRESS_TYPE: &str = "preferredAddressType";
    /// Role to chain into (beyond ASCP).
    pub const ASSUME_ROLE_ARN: &str = "assumeRoleArn";
    /// External id for that role (beyond ASCP).
    pub const ASSUME_ROLE_EXTERNAL_ID: &str = "assumeRoleExternalId";
}

/// The request's attributes: a JSON object whose values are all strings.
#[derive(Clone, Default)]
pub struct Attributes(BTreeMap<String, String>);

impl std::fmt::Debug for Attributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the keys: the tokens attribute is a credential.
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Attributes {
    /// Parses the request's `attributes` string.
    ///
    /// Errors quote positions and key names, never values: the tokens
    /// attribute is a credential.
    pub fn parse(json: &str) -> Result<Self, Error> {
        if json.len() > MAX_ATTRIBUTES_BYTES {
            return Err(Error::Attributes {
                reason: format!(
                    "{} bytes, more than the limit of {MAX_ATTRIBUTES_BYTES}",
                    json.len()
                ),
            });
        }
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| Error::Attributes {
                reason: format!("not valid JSON (line {}, column {})", e.line(), e.column()),
            })?;
        let serde_json::Value::Object(map) = value else {
            return Err(Error::Attributes {
                reason: "not a JSON object".into(),
            });
        };
        let mut out = BTreeMap::new();
        let mut bad = Vec::new();
        for (key, value) in map {
            match value {
                serde_json::Value::String(s) => {
                    out.insert(key, s);
                }
                _ => bad.push(key),
            }
        }
        if !bad.is_empty() {
            return Err(Error::Attributes {
                reason: format!("values must be strings; not a string: {}", quote_list(&bad)),
            });
        }
        Ok(Self(out))
    }

    /// Builds attributes from pairs (tests and the `mount` tool).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// A value, with empty treated as absent, as ASCP does.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The attributes as a JSON string.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".into())
    }
}

/// What a mount needs from its attributes, parsed and checked.
#[derive(Debug, Clone)]
pub struct MountParams {
    /// The pod and how it authenticates.
    pub pod: PodIdentity,
    /// The SecretProviderClass name, for logs.
    pub secret_provider_class: String,
    /// `region`, if set.
    pub region: Option<String>,
    /// `failoverRegion`, if set.
    pub failover_region: Option<String>,
    /// `pathTranslation`.
    pub translation: PathTranslation,
    /// The validated objects.
    pub objects: Vec<ObjectSpec>,
}

impl MountParams {
    /// Parses and checks everything the attributes carry that does not need
    /// the network. Object ARN regions are checked later, once the primary
    /// region is known ([`objects::check_regions`]).
    pub fn from_attributes(attrs: &Attributes) -> Result<Self, Error> {
        let region = attrs
            .get(keys::REGION)
            .map(|r| check_region(keys::REGION, r))
            .transpose()?;
        let failover_region = attrs
            .get(keys::FAILOVER_REGION)
            .map(|r| check_region(keys::FAILOVER_REGION, r))
            .transpose()?;
        if let (Some(p), Some(f)) = (&region, &failover_region)
            && p == f
        {
            return Err(Error::Parameter {
                key: keys::FAILOVER_REGION,
                reason: format!("{f} is also the primary region; the failover region must differ"),
            });
        }
        let translation = PathTranslation::parse(attrs.get(keys::PATH_TRANSLATION))?;
        let use_pod_identity = match attrs.get(keys::USE_POD_IDENTITY) {
            None => false,
            Some(v) => parse_go_bool(v).ok_or_else(|| Error::Parameter {
                key: keys::USE_POD_IDENTITY,
                reason: format!("{v:?} is not a boolean (true, false, 1, 0, t, f)"),
            })?,
        };
        let preferred_address = parse_address_preference(attrs.get(keys::PREFERRED_ADDRESS_TYPE))?;
        let assume_role_arn = attrs.get(keys::ASSUME_ROLE_ARN).map(str::to_owned);
        if let Some(arn) = &assume_role_arn
            && !objects::is_iam_role_arn(arn)
        {
            return Err(Error::Parameter {
                key: keys::ASSUME_ROLE_ARN,
                reason: format!(
                    "{arn:?} is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)"
                ),
            });
        }
        let objects_yaml = attrs.get(keys::OBJECTS).ok_or_else(|| Error::Parameter {
            key: keys::OBJECTS,
            reason: "missing: the SecretProviderClass must list the objects to mount".into(),
        })?;
        let objects = objects::parse(objects_yaml, &translation, failover_region.is_some())
            .map_err(Error::Objects)?;

        let pod = PodIdentity {
            pod_name: attrs.get(keys::POD_NAME).unwrap_or_default().to_owned(),
            namespace: attrs
                .get(keys::POD_NAMESPACE)
                .unwrap_or_default()
                .to_owned(),
            pod_uid: attrs.get(keys::POD_UID).unwrap_or_default().to_owned(),
            service_account: attrs
                .get(keys::SERVICE_ACCOUNT)
                .unwrap_or_default()
                .to_owned(),
            tokens: attrs.get(keys::TOKENS).map(Token::new),
            use_pod_identity,
            preferred_address,
            assume_role_arn,
            assume_role_external_id: attrs.get(keys::ASSUME_ROLE_EXTERNAL_ID).map(str::to_owned),
        };
        Ok(Self {
            pod,
            secret_provider_class: attrs.get(keys::SPC).unwrap_or_default().to_owned(),
            region,
            failover_region,
            translation,
            objects,
        })
    }
}

/// Parses the request's `permission`: a decimal JSON number, 0 to 0o777.
pub fn parse_permission(value: &str) -> Result<u32, Error> {
    let err = |reason| Error::Permission {
        value: value.chars().take(32).collect(),
        reason,
    };
    let n: u64 = serde_json::from_str(value.trim())
        .map_err(|_| err("not a decimal number (the driver sends e.g. \"420\" for 0644)"))?;
    if n > 0o777 {
        return Err(err("out of range: a file mode is at most 511 (0777)"));
    }
    Ok(n as u32)
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn parse_address_preference(v: Option<&str>) -> Result<AddressPreference, Error> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None | Some("auto") => Ok(AddressPreference::Auto),
        Some("ipv4") => Ok(AddressPreference::Ipv4),
        Some("ipv6") => Ok(AddressPreference::Ipv6),
        Some(_) => Err(Error::Parameter {
            key: keys::PREFERRED_ADDRESS_TYPE,
            reason: format!("{:?} is not one of ipv4, ipv6, auto", v.unwrap_or_default()),
        }),
    }
}

/// Checks a region name is a plain host label.
pub fn check_region(key: &'static str, region: &str) -> Result<String, Error> {
    let ok = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if ok {
        Ok(region.to_owned())
    } else {
        Err(Error::Parameter {
            key,
            reason: format!(
                "{:?} is not a region name (lowercase letters, digits and '-', e.g. us-east-1)",
                region.chars().take(80).collect::<String>()
            ),
        })
    }
}

fn quote_list(items: &[String]) -> String {
    let mut shown: Vec<String> = items
        .iter()
        .take(10)
        .map(|k| format!("{:?}", k.chars().take(100).collect::<String>()))
        .collect();
    if items.len() > 10 {
        shown.push(format!("and {} more", items.len() - 10));
    }
    shown.join(", ")
}
