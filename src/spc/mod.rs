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
//! | `attributes` JSON | [`MAX_ATTRIBUTES_BYTES`], [`MAX_ATTRIBUTE_KEYS`] keys, depth 128 (serde_json), non-string values skipped unbuilt |
//! | `objects` YAML | [`objects::MAX_OBJECTS_YAML_BYTES`], nesting depth [`objects::MAX_YAML_DEPTH`], [`objects::MAX_YAML_NODES`] nodes, [`objects::MAX_YAML_ALIASES`] aliases |
//! | objects per mount | [`objects::MAX_OBJECTS`] |
//! | files per mount (objects, jmesPath entries, matches of paths as listed) | [`objects::MAX_FILES`] |
//! | matches of one path object | [`objects::MAX_PATH_MATCHES`] |
//!
//! Parameters (`spec.parameters`), as ASCP reads them:
//!
//! - `region`: the primary region; when empty the pod's node decides.
//! - `failoverRegion`: a second region; must differ from the primary.
//! - `pathTranslation`: empty → `_`; `false` in any case → off; one ASCII
//!   character other than NUL → that character; anything else is an error.
//! - `usePodIdentity`: Go `strconv.ParseBool` syntax; empty → IRSA.
//! - `preferredAddressType`: read under Pod Identity only (ignored entirely
//!   under IRSA, as ASCP): `ipv4`, `ipv6`, `auto` or empty, any case; any
//!   other value behaves as `auto`, as in ASCP, with a [`Warning`].
//! - `assumeRoleArn`, `assumeRoleExternalId` (beyond ASCP): a role to chain
//!   into after the pod's own.
//!
//! Region names are checked to be plain host labels (lowercase letters,
//! digits, `-`), because the SDK builds endpoint host names from them.
//!
//! Every problem at once: [`MountParams::check`] runs every rule on the
//! whole class (parameters, each object's fields, duplicates, and ARN
//! regions when the primary region is known without the network) and
//! returns every [`Problem`], each naming its parameter, or its object and
//! field. [`MountParams::from_attributes`] is that check for a Mount: the
//! problems become one bounded [`Error::Class`], and each warning is logged
//! once. When the region comes from elsewhere (`AWS_REGION`, the pod's
//! node), ARN regions can only be checked once it is known:
//! [`MountParams::check_resolved_region`] gives every problem it brings in
//! one error. A class that already failed offline causes no lookup, so its
//! ARN regions wait for the next attempt.

pub mod objects;

use std::collections::BTreeMap;

use std::fmt;
use std::sync::Arc;

use crate::bounded_text::{Escaped, escape_bounded};
use crate::error::Error;
use crate::secret::Token;
use crate::store::{AddressPreference, PodRef};

pub use objects::{FailoverSpec, JmesSpec, ObjectSpec, PathSpec, PathTranslation};

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

/// Most keys in `attributes`. The driver sets eight and copies the class's
/// `spec.parameters`, which hold a dozen at most; each key costs about
/// 100 bytes once parsed, whatever its size in the JSON.
pub const MAX_ATTRIBUTE_KEYS: usize = 256;

/// The attributes object, refused past [`MAX_ATTRIBUTE_KEYS`] keys while it
/// is read.
struct AttributeMap(BTreeMap<String, AttributeValue>);

impl<'de> serde::Deserialize<'de> for AttributeMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = AttributeMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<AttributeMap, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((key, value)) = map.next_entry::<String, AttributeValue>()? {
                    out.insert(key, value);
                    if out.len() > MAX_ATTRIBUTE_KEYS {
                        return Err(serde::de::Error::custom(format_args!(
                            "more than {MAX_ATTRIBUTE_KEYS} keys"
                        )));
                    }
                }
                Ok(AttributeMap(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// One value of the attributes object: a string, or anything else, which
/// is skipped without being built.
enum AttributeValue {
    String(String),
    Other,
}

impl<'de> serde::Deserialize<'de> for AttributeValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = AttributeValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<AttributeValue, E> {
                Ok(AttributeValue::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<AttributeValue, E> {
                Ok(AttributeValue::String(v))
            }
            fn visit_bool<E>(self, _: bool) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Other)
            }
            fn visit_unit<E>(self) -> Result<AttributeValue, E> {
                Ok(AttributeValue::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<AttributeValue, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(AttributeValue::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<AttributeValue, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(AttributeValue::Other)
            }
        }
        d.deserialize_any(Visit)
    }
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
        // Straight into strings: a JSON tree of the whole text would cost
        // about 16 times its size (`[0,0,…]` is 2 bytes an element, 32 once
        // parsed), and values that are not strings are skipped unread.
        let invalid = |e: serde_json::Error| Error::Attributes {
            reason: format!("not valid JSON (line {}, column {})", e.line(), e.column()),
        };
        if !json.trim_start().starts_with('{') {
            // Read without building anything, to tell bad JSON from JSON
            // that is not an object.
            serde_json::from_str::<serde::de::IgnoredAny>(json).map_err(invalid)?;
            return Err(Error::Attributes {
                reason: "not a JSON object".into(),
            });
        }
        let AttributeMap(map) = serde_json::from_str(json).map_err(|e| match e.classify() {
            // Only the key count fails as data; its message quotes no input.
            serde_json::error::Category::Data => Error::Attributes {
                reason: e.to_string(),
            },
            _ => invalid(e),
        })?;
        let mut out = BTreeMap::new();
        let mut bad = Vec::new();
        for (key, value) in map {
            match value {
                AttributeValue::String(s) => {
                    out.insert(key, s);
                }
                AttributeValue::Other => bad.push(key),
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

/// Where a [`Problem`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// A `spec.parameters` key.
    Parameter(&'static str),
    /// The `objects` list as a whole (its YAML, its size).
    Objects,
    /// One entry of `objects`.
    Object {
        /// Position in the list, from 0.
        index: usize,
        /// Its objectName, shortened and escaped; `None` when it has none.
        name: Option<String>,
        /// The field at fault (`objectAlias`, `jmesPath entry #2 path`, …);
        /// empty when the entry as a whole is at fault.
        field: String,
    },
}

/// One broken rule of a SecretProviderClass.
///
/// Displayed as `parameter KEY: RULE`, `objects: RULE` or
/// `object NAME (#N): FIELD RULE`, which reads as a sentence. Names and the
/// values quoted in rules are bounded and escaped; a class holds names, never
/// secret values, so none can appear here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where.
    pub place: Place,
    /// What is wrong.
    pub rule: String,
}

impl Problem {
    /// A problem with a parameter.
    pub fn parameter(key: &'static str, rule: impl Into<String>) -> Self {
        Self {
            place: Place::Parameter(key),
            rule: rule.into(),
        }
    }

    /// A problem with the objects list as a whole.
    pub fn objects(rule: impl Into<String>) -> Self {
        Self {
            place: Place::Objects,
            rule: rule.into(),
        }
    }

    /// A problem with a field of the entry at `index`, named `name`.
    pub fn object(
        index: usize,
        name: Option<&str>,
        field: impl Into<String>,
        rule: impl Into<String>,
    ) -> Self {
        Self {
            place: Place::Object {
                index,
                name: name
                    .filter(|n| !n.is_empty())
                    .map(|n| escape_bounded(n, 200)),
                field: field.into(),
            },
            rule: rule.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::Parameter(key) => write!(f, "parameter {key}")?,
            Place::Objects => f.write_str("objects")?,
            Place::Object { index, name, field } => {
                match name {
                    Some(name) => write!(f, "object {name} (#{})", index + 1)?,
                    None => write!(f, "object #{}", index + 1)?,
                }
                if !field.is_empty() {
                    return write!(f, ": {field} {}", self.rule);
                }
            }
        }
        write!(f, ": {}", self.rule)
    }
}

/// Something a class does that works but is probably not meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// `preferredAddressType` under Pod Identity is none of ipv4, ipv6,
    /// auto: it behaves as `auto`, as in ASCP.
    UnknownAddressType {
        /// The value, shortened and escaped.
        value: String,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::UnknownAddressType { value } => write!(
                f,
                "parameter {}: \"{value}\" is not one of ipv4, ipv6, auto; using auto, as ASCP does",
                keys::PREFERRED_ADDRESS_TYPE
            ),
        }
    }
}

/// What a mount needs from its attributes, parsed and checked.
#[derive(Debug, Clone)]
pub struct MountParams {
    /// The pod and how it authenticates.
    pub pod: PodRef,
    /// The SecretProviderClass name, for logs.
    pub secret_provider_class: String,
    /// `region`, if set.
    pub region: Option<String>,
    /// `failoverRegion`, if set.
    pub failover_region: Option<String>,
    /// `pathTranslation`.
    pub translation: PathTranslation,
    /// The validated objects; shared by every mount of the same class.
    pub objects: Arc<[ObjectSpec]>,
    /// What the class does that works but is probably not meant.
    pub warnings: Vec<Warning>,
}

impl MountParams {
    /// A Mount's view of [`MountParams::check`]: every problem of the class
    /// in one [`Error::Class`] (its message bounded), and each warning
    /// logged once, at WARN, inside the caller's span. Object ARN regions
    /// are checked here when the class names its region, otherwise once the
    /// region is known ([`MountParams::check_resolved_region`]).
    pub fn from_attributes(attrs: &Attributes) -> Result<Self, Error> {
        let params = Self::check(attrs, None).map_err(class_error)?;
        for warning in &params.warnings {
            tracing::warn!(
                spc = %Escaped(&params.secret_provider_class),
                "{warning}"
            );
        }
        Ok(params)
    }

    /// Parses and checks everything the attributes carry that does not need
    /// the network, and returns every problem found.
    ///
    /// `region` is the primary region when the class names none and the
    /// caller knows it without the network (`--region` of `ascp validate`,
    /// the provider's `AWS_REGION`): it is checked as the class's own would
    /// be, and object ARN regions are checked against it. With neither, ARN
    /// regions are left to [`MountParams::check_resolved_region`].
    pub fn check(attrs: &Attributes, region: Option<&str>) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut keep = |r: Result<String, Problem>| r.map_err(|p| problems.push(p)).ok();
        let class_region = attrs
            .get(keys::REGION)
            .and_then(|r| keep(region_name(keys::REGION, r)));
        let failover_region = attrs
            .get(keys::FAILOVER_REGION)
            .and_then(|r| keep(region_name(keys::FAILOVER_REGION, r)));
        let translation =
            PathTranslation::parse(attrs.get(keys::PATH_TRANSLATION)).unwrap_or_else(|p| {
                // The rest is checked with the default, so its problems
                // still show.
                problems.push(p);
                PathTranslation::Replace('_')
            });
        let use_pod_identity = match attrs.get(keys::USE_POD_IDENTITY) {
            None => false,
            Some(v) => parse_go_bool(v).unwrap_or_else(|| {
                problems.push(Problem::parameter(
                    keys::USE_POD_IDENTITY,
                    format!(
                        "\"{}\" is not a boolean (true, false, 1, 0, t, f)",
                        escape_bounded(v, 32)
                    ),
                ));
                false
            }),
        };
        let mut warnings = Vec::new();
        let preferred_address = if use_pod_identity {
            let (preference, warning) =
                parse_address_preference(attrs.get(keys::PREFERRED_ADDRESS_TYPE));
            warnings.extend(warning);
            preference
        } else {
            // Never read under IRSA, as in ASCP: whatever it holds is fine.
            AddressPreference::Auto
        };
        let assume_role_arn = attrs.get(keys::ASSUME_ROLE_ARN).map(str::to_owned);
        if let Some(arn) = &assume_role_arn
            && !crate::arn::is_iam_role_arn(arn)
        {
            problems.push(Problem::parameter(
                keys::ASSUME_ROLE_ARN,
                format!(
                    "\"{}\" is not an IAM role ARN (arn:<partition>:iam::<account>:role/<name>)",
                    escape_bounded(arn, 200)
                ),
            ));
        }
        let objects = match attrs.get(keys::OBJECTS) {
            None => {
                problems.push(Problem::parameter(
                    keys::OBJECTS,
                    "missing: the SecretProviderClass must list the objects to mount",
                ));
                Arc::default()
            }
            Some(yaml) => {
                // Set but unusable still counts as set: a failoverObject is
                // then not blamed for its absence.
                let has_failover = attrs.get(keys::FAILOVER_REGION).is_some();
                let (objects, found) = objects::check_memoized(yaml, &translation, has_failover);
                problems.extend(found);
                objects
            }
        };
        match (attrs.get(keys::REGION), region) {
            (Some(_), _) => {
                if let Some(primary) = &class_region {
                    problems.extend(region_problems(
                        &objects,
                        primary,
                        failover_region.as_deref(),
                        false,
                    ));
                }
            }
            (None, Some(primary)) => problems.extend(region_problems(
                &objects,
                primary,
                failover_region.as_deref(),
                true,
            )),
            (None, None) => {}
        }
        if !problems.is_empty() {
            // Parameters first, then the list, then object by object.
            problems.sort_by_key(|p| match &p.place {
                Place::Parameter(_) => 0,
                Place::Objects => 1,
                Place::Object { index, .. } => 2 + index,
            });
            return Err(problems);
        }

        let pod = PodRef {
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
            region: class_region,
            failover_region,
            translation,
            objects,
            warnings,
        })
    }

    /// Every problem the primary region, once resolved (from `AWS_REGION`
    /// or the node), brings to light: a name that is not a region, a
    /// failover region equal to it, and object ARNs in other regions. One
    /// [`Error::Class`] lists them all.
    pub fn check_resolved_region(&self, primary: &str) -> Result<(), Error> {
        let from_elsewhere = self.region.as_deref() != Some(primary);
        let problems = region_problems(
            &self.objects,
            primary,
            self.failover_region.as_deref(),
            from_elsewhere,
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(class_error(problems))
        }
    }
}

/// The problems a primary region brings: its name when it does not come
/// from the class (`check_name`), the failover region equal to it, and ARN
/// regions of objects.
fn region_problems(
    objects: &[ObjectSpec],
    primary: &str,
    failover: Option<&str>,
    check_name: bool,
) -> Vec<Problem> {
    if check_name && let Err(p) = region_name(keys::REGION, primary) {
        return vec![p];
    }
    let mut problems = Vec::new();
    if failover == Some(primary) {
        problems.push(Problem::parameter(
            keys::FAILOVER_REGION,
            format!("{primary} is also the primary region; the failover region must differ"),
        ));
    }
    problems.extend(objects::region_problems(objects, primary, failover));
    problems
}

fn class_error(problems: Vec<Problem>) -> Error {
    Error::Class {
        problems: problems.iter().map(ToString::to_string).collect(),
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

/// `preferredAddressType` under Pod Identity; anything unknown is `auto`.
fn parse_address_preference(v: Option<&str>) -> (AddressPreference, Option<Warning>) {
    let Some(v) = v else {
        return (AddressPreference::Auto, None);
    };
    if v.eq_ignore_ascii_case("auto") {
        (AddressPreference::Auto, None)
    } else if v.eq_ignore_ascii_case("ipv4") {
        (AddressPreference::Ipv4, None)
    } else if v.eq_ignore_ascii_case("ipv6") {
        (AddressPreference::Ipv6, None)
    } else {
        let value = escape_bounded(v, 64);
        (
            AddressPreference::Auto,
            Some(Warning::UnknownAddressType { value }),
        )
    }
}

/// Checks a region name is a plain host label.
pub fn check_region(key: &'static str, region: &str) -> Result<String, Error> {
    region_name(key, region).map_err(|p| Error::Parameter {
        key,
        reason: p.rule,
    })
}

fn region_name(key: &'static str, region: &str) -> Result<String, Problem> {
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
        Err(Problem::parameter(
            key,
            format!(
                "\"{}\" is not a region name (lowercase letters, digits and '-', e.g. us-east-1)",
                escape_bounded(region, 80)
            ),
        ))
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
