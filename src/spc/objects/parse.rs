//! The `objects` YAML read into raw descriptors ([`RawObject`]), within the
//! bounds of [`super`]: the document's size, depth, node count, aliases and
//! number of objects. Keys are matched as ASCP matches them (any case); no
//! rule is checked here beyond the document's shape.

use serde::Deserialize;

use super::{
    MAX_OBJECTS, MAX_OBJECTS_YAML_BYTES, MAX_YAML_ALIASES, MAX_YAML_DEPTH, MAX_YAML_NODES,
};
use super::{Problem, shorten_to};

/// A YAML scalar read as its text, whether written as a string, a number or
/// a boolean (`objectVersion: 3` is `"3"`).
#[derive(Debug, Clone, Default)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::default())
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::default())
            }
        }
        d.deserialize_str(V)
    }
}

pub(super) fn text(s: &Option<Scalar>) -> Option<String> {
    s.as_ref().map(|s| s.0.clone()).filter(|s| !s.is_empty())
}

#[derive(Debug, Default)]
pub(super) struct RawObject {
    pub(super) object_name: Option<Scalar>,
    pub(super) object_type: Option<Scalar>,
    pub(super) object_alias: Option<Scalar>,
    pub(super) object_version: Option<Scalar>,
    pub(super) object_version_label: Option<Scalar>,
    pub(super) file_permission: Option<Scalar>,
    pub(super) jmes_path: Option<Vec<Option<RawJmes>>>,
    pub(super) failover_object: Option<RawFailover>,
    pub(super) object_encoding: Option<Scalar>,
}

#[derive(Debug, Default)]
pub(super) struct RawJmes {
    pub(super) path: Option<Scalar>,
    pub(super) object_alias: Option<Scalar>,
    pub(super) file_permission: Option<Scalar>,
    pub(super) object_encoding: Option<Scalar>,
}

#[derive(Debug, Default)]
pub(super) struct RawFailover {
    pub(super) object_name: Option<Scalar>,
    pub(super) object_version: Option<Scalar>,
    pub(super) object_version_label: Option<Scalar>,
}

/// Deserializes a descriptor mapping with its keys matched as ASCP matches
/// them. ASCP decodes the YAML through Go's `encoding/json`, which finds a
/// struct field whatever the key's case (`objectname`, `JMESPath`), so a
/// class written that way works there and must work here. Unknown keys are
/// skipped, as there; a repeated key keeps its last value.
macro_rules! case_insensitive_fields {
    ($ty:ident, $expecting:literal, { $($key:literal => $field:ident),+ $(,)? }) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$ty, A::Error> {
                        let mut out = $ty::default();
                        while let Some(Scalar(key)) = map.next_key::<Scalar>()? {
                            $(
                                if key.eq_ignore_ascii_case($key) {
                                    out.$field = map.next_value()?;
                                    continue;
                                }
                            )+
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

case_insensitive_fields!(RawObject, "an object descriptor (a mapping with objectName)", {
    "objectName" => object_name,
    "objectType" => object_type,
    "objectAlias" => object_alias,
    "objectVersion" => object_version,
    "objectVersionLabel" => object_version_label,
    "filePermission" => file_permission,
    "jmesPath" => jmes_path,
    "failoverObject" => failover_object,
    "objectEncoding" => object_encoding,
});

case_insensitive_fields!(RawJmes, "a jmesPath entry (a mapping with path and objectAlias)", {
    "path" => path,
    "objectAlias" => object_alias,
    "filePermission" => file_permission,
    "objectEncoding" => object_encoding,
});

case_insensitive_fields!(RawFailover, "a failoverObject (a mapping with objectName)", {
    "objectName" => object_name,
    "objectVersion" => object_version,
    "objectVersionLabel" => object_version_label,
});

/// The top-level list, read entry by entry so that a list longer than
/// [`MAX_OBJECTS`] is refused as soon as the limit is passed, not after the
/// whole document has been parsed. `over_limit` tells the caller why the
/// parse stopped.
struct BoundedList<'a> {
    over_limit: &'a std::cell::Cell<bool>,
}

impl<'de> serde::de::DeserializeSeed<'de> for BoundedList<'_> {
    type Value = Vec<Option<RawObject>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BoundedList<'_> {
    type Value = Vec<Option<RawObject>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of object descriptors")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(entry) = seq.next_element()? {
            if out.len() == MAX_OBJECTS {
                self.over_limit.set(true);
                return Err(serde::de::Error::custom("too many objects"));
            }
            out.push(entry);
        }
        Ok(out)
    }
}

fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_reader_input_bytes = Some(MAX_OBJECTS_YAML_BYTES);
    budget.max_depth = MAX_YAML_DEPTH;
    budget.max_aliases = MAX_YAML_ALIASES;
    budget.max_anchors = MAX_YAML_ALIASES;
    // Every node is at most two events (start and end).
    budget.max_events = 2 * MAX_YAML_NODES + 16;
    budget.max_nodes = MAX_YAML_NODES;
    budget.max_documents = 1;
    budget.max_total_scalar_bytes = MAX_OBJECTS_YAML_BYTES;
    budget.max_recorded_anchor_events = 20_000;
    budget.max_recorded_anchor_bytes = MAX_OBJECTS_YAML_BYTES;
    budget.max_merge_keys = 256;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // ASCP's YAML reader keeps the last value of a repeated key; a class
    // relying on that must keep working.
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::LastWins;
    options
}

/// Reads the `objects` YAML into one raw entry per list item (`None` for a
/// null item); a document too large, malformed, or over a bound is one
/// problem.
pub(super) fn read(yaml: &str) -> Result<Vec<Option<RawObject>>, Problem> {
    if yaml.len() > MAX_OBJECTS_YAML_BYTES {
        let rule = format!(
            "the YAML has {} bytes, more than the limit of {MAX_OBJECTS_YAML_BYTES}",
            yaml.len()
        );
        return Err(Problem::objects(rule));
    }
    let over_limit = std::cell::Cell::new(false);
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(yaml, yaml_options(), |d| {
        serde::de::DeserializeSeed::deserialize(
            BoundedList {
                over_limit: &over_limit,
            },
            d,
        )
    });
    let raw = match parsed {
        Ok(raw) => raw,
        Err(e) => {
            let rule = if over_limit.get() {
                format!("more than {MAX_OBJECTS} objects, the limit per mount")
            } else {
                format!(
                    "the objects parameter is not a YAML list of objects: {}",
                    yaml_error(&e)
                )
            };
            return Err(Problem::objects(rule));
        }
    };
    Ok(raw)
}

fn yaml_error(e: &serde_saphyr::Error) -> String {
    // The parser's message may quote the document; keep it short, one line
    // and escaped.
    let msg = e.to_string();
    let line = msg
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("parse error");
    shorten_to(line, 300)
}
