//! The one error type of a mount, and its mapping to gRPC status codes.
//!
//! Every variant names what failed (the object, the parameter, the file) and
//! the rule broken, so the message reaching `kubectl describe pod` is enough
//! to act on. No variant holds a secret value or a token: values travel in
//! [`crate::secret`] types, which these messages never format.
//!
//! Codes: everything the user must fix maps to a code that says so. No
//! failure maps to `UNAVAILABLE`: the driver's client retries that code up to
//! three times at once (it means "the provider is not listening yet"), so a
//! Mount failing on a struggling AWS, agent or API server would be run three
//! times per driver attempt. The service's trouble is `UNKNOWN`, throttling
//! `RESOURCE_EXHAUSTED`; the driver and kubelet retry the mount later, with
//! their own backoff.

use std::path::PathBuf;
use std::time::Duration;

use tonic::Code;

use crate::failure::{FailureKind, StoreError};

/// Why a mount failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request's `attributes` are not a JSON object of strings, or too big.
    #[error("invalid mount attributes: {reason}")]
    Attributes {
        /// What is wrong.
        reason: String,
    },

    /// The request's `permission` is not a decimal file mode from 0 to 0777.
    #[error("invalid default file permission {value:?}: {reason}")]
    Permission {
        /// The value received (a mode, never secret).
        value: String,
        /// What is wrong.
        reason: &'static str,
    },

    /// A SecretProviderClass parameter has a value we cannot use.
    #[error("invalid SecretProviderClass parameter {key}: {reason}")]
    Parameter {
        /// The parameter's name, e.g. `pathTranslation`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// The SecretProviderClass breaks one or more rules: every problem found
    /// (parameters, object fields, duplicates, ARN regions), each naming its
    /// parameter or its object and field. The message lists the first ten
    /// and is bounded in length; `ascp validate` prints them all.
    #[error(
        "invalid SecretProviderClass: {} problem(s): {}",
        problems.len(),
        join_bounded(problems, 10)
    )]
    Class {
        /// One line per problem.
        problems: Vec<String>,
    },

    /// The `objects` of the SecretProviderClass break one or more rules.
    #[error("invalid objects in SecretProviderClass: {}", join_bounded(.0, 10))]
    Objects(Vec<String>),

    /// The target path is missing, not a directory, or not usable.
    #[error("invalid target path {path:?}: {reason}")]
    TargetPath {
        /// The path the driver sent.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// No region in the SecretProviderClass, the environment or the node.
    #[error(
        "no AWS region: set `region` in the SecretProviderClass, AWS_REGION on the provider, or the label topology.kubernetes.io/region on the node ({reason})"
    )]
    Region {
        /// Why the node lookup found none.
        reason: String,
    },

    /// The driver sent no usable token for the audience the pod needs.
    #[error(
        "no service account token for audience {audience}: {reason}; configure tokenRequests with audiences sts.amazonaws.com and pods.eks.amazonaws.com on the CSIDriver object"
    )]
    Token {
        /// The audience needed.
        audience: &'static str,
        /// What is wrong (never the token).
        reason: String,
    },

    /// The pod's identity could not be turned into AWS credentials.
    #[error("{what}")]
    Identity {
        /// What was attempted, for whom (service account, namespace, role).
        what: String,
        /// How to treat it.
        kind: FailureKind,
        /// A precondition the operator must fix (e.g. a missing annotation).
        precondition: bool,
        /// The underlying failure.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// An object could not be fetched.
    #[error("failed to fetch {store} object {object} in {region}")]
    Fetch {
        /// `secretsmanager` or `ssmparameter`.
        store: &'static str,
        /// The object's name or ARN.
        object: String,
        /// The region asked.
        region: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },

    /// A jmesPath entry could not be applied to its object's value.
    #[error("object {object}: jmesPath {path:?}: {reason}")]
    Jmes {
        /// The object's name.
        object: String,
        /// The JMESPath expression.
        path: String,
        /// What is wrong (never the value).
        reason: String,
    },

    /// A value could not be decoded per its `objectEncoding`.
    #[error("object {object}: {field}: {reason}")]
    Decode {
        /// The object's name.
        object: String,
        /// `objectEncoding`, or the jmesPath entry's (naming its alias).
        field: String,
        /// What is wrong and at which byte offset (never the value).
        reason: String,
    },

    /// A path object's matches cannot all become files: two of them, or one
    /// and another object, give one file name, a name is not a safe file
    /// name, or the mount would hold more files than allowed.
    #[error("object {object}: {reason}")]
    PathFiles {
        /// The path object's name (`prod/web/*`).
        object: String,
        /// Which matches, and what is wrong.
        reason: String,
    },

    /// Every object is a path, and nothing lies under any of them: the
    /// driver refuses a mount without a file.
    #[error("nothing to mount: no object lies under {paths}")]
    NothingToMount {
        /// The paths, as written.
        paths: String,
    },

    /// Writing the files failed; nothing of this mount was left behind.
    #[error("failed to write {path:?} in the target directory")]
    Write {
        /// The file name inside the target directory.
        path: String,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },

    /// The files do not fit in one driver response.
    #[error(
        "the mount's files take {bytes} bytes, more than the {limit} bytes the driver reads in one response; let the provider write the files (drop --driver-writes-secrets)"
    )]
    ResponseTooLarge {
        /// Bytes the files take.
        bytes: usize,
        /// The limit.
        limit: usize,
    },

    /// The mount's file content passed the per-mount bound
    /// (`--max-mount-bytes`); nothing was written.
    #[error(
        "the mount's files take more than {limit} bytes, the bound per mount (--max-mount-bytes); crossed at {at}"
    )]
    MountBytes {
        /// The bound.
        limit: usize,
        /// The object (and the part of it) whose bytes crossed it.
        at: String,
    },

    /// The mount's file content does not fit the bytes all mounts in flight
    /// may hold together (`--max-inflight-bytes`): never (more than all of
    /// it), or not now (more than it reserved, and the rest is taken).
    #[error("{}", inflight_message(*capacity, at, *busy))]
    InflightBytes {
        /// The process-wide bound.
        capacity: usize,
        /// The object (and the part of it) whose bytes crossed it.
        at: String,
        /// Whether other mounts hold the rest (a retry may fit).
        busy: bool,
    },

    /// The mount took longer than its deadline.
    #[error("mount did not finish within {after:?}")]
    Timeout {
        /// The deadline.
        after: Duration,
    },

    /// A later mount of the same target made its files visible first; this
    /// one made nothing visible.
    #[error("a newer mount of target {path:?} finished first; this one changed nothing")]
    Superseded {
        /// The target directory.
        path: PathBuf,
    },

    /// The caller gave up (its request was dropped) before the mount
    /// finished; nothing of it becomes visible afterwards.
    #[error("the caller gave up before the mount finished")]
    Cancelled,

    /// A bug or an unexpected state; the message says where.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The gRPC status code the driver receives.
    pub fn code(&self) -> Code {
        match self {
            Error::Attributes { .. }
            | Error::Permission { .. }
            | Error::Parameter { .. }
            | Error::Objects(_)
            | Error::Class { .. }
            | Error::TargetPath { .. }
            | Error::Jmes { .. }
            | Error::Decode { .. }
            | Error::PathFiles { .. }
            | Error::MountBytes { .. } => Code::InvalidArgument,
            Error::InflightBytes { .. } => Code::ResourceExhausted,
            Error::NothingToMount { .. } => Code::NotFound,
            Error::Region { .. } | Error::Token { .. } => Code::FailedPrecondition,
            Error::Identity {
                kind, precondition, ..
            } => {
                if *precondition {
                    Code::FailedPrecondition
                } else {
                    kind_code(*kind)
                }
            }
            Error::Fetch { source, .. } => kind_code(source.kind),
            Error::ResponseTooLarge { .. } => Code::ResourceExhausted,
            Error::Timeout { .. } => Code::DeadlineExceeded,
            Error::Superseded { .. } => Code::Aborted,
            Error::Cancelled => Code::Cancelled,
            Error::Write { .. } | Error::Internal(_) => Code::Internal,
        }
    }

    /// The message with its chain of causes, for the gRPC status and logs.
    pub fn full_message(&self) -> String {
        let mut msg = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !msg.contains(&text) {
                msg.push_str(": ");
                msg.push_str(&text);
            }
            source = cause.source();
        }
        msg
    }

    /// The status returned to the driver.
    pub fn to_status(&self) -> tonic::Status {
        tonic::Status::new(self.code(), self.full_message())
    }
}

fn inflight_message(capacity: usize, at: &str, busy: bool) -> String {
    if busy {
        format!(
            "the mount outgrew the bytes it reserved at {at}, and the rest of the {capacity} bytes all mounts in flight may hold (--max-inflight-bytes) is in use by other mounts; the driver retries later"
        )
    } else {
        format!(
            "the mount's files take more than the {capacity} bytes all mounts in flight may hold together (--max-inflight-bytes), so it can never fit; crossed at {at}"
        )
    }
}

/// The code for a failure of a store or identity call.
pub fn kind_code(kind: FailureKind) -> Code {
    match kind {
        FailureKind::NotFound => Code::NotFound,
        FailureKind::PermissionDenied => Code::PermissionDenied,
        FailureKind::InvalidArgument => Code::InvalidArgument,
        FailureKind::Throttled => Code::ResourceExhausted,
        FailureKind::Unavailable => Code::Unknown,
        FailureKind::Internal => Code::Internal,
    }
}

/// Longest list of problems in one message: the status reaches the pod's
/// events, where kubelet keeps a few kilobytes.
const MAX_LIST_BYTES: usize = 3000;

/// Joins at most `max` messages, within [`MAX_LIST_BYTES`], saying how many
/// more there were.
fn join_bounded(items: &[String], max: usize) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for item in items.iter().take(max) {
        if shown > 0 {
            if out.len() + 2 + item.len() > MAX_LIST_BYTES {
                break;
            }
            out.push_str("; ");
        }
        out.push_str(&crate::bounded_text::truncate(item, MAX_LIST_BYTES));
        shown += 1;
    }
    if items.len() > shown {
        out.push_str(&format!("; and {} more", items.len() - shown));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_kind_of_failure() {
        let fetch = |kind| Error::Fetch {
            store: "secretsmanager",
            object: "db".into(),
            region: "us-east-1".into(),
            source: StoreError::new(kind, Some("X"), "m"),
        };
        assert_eq!(fetch(FailureKind::NotFound).code(), Code::NotFound);
        assert_eq!(
            fetch(FailureKind::PermissionDenied).code(),
            Code::PermissionDenied
        );
        assert_eq!(fetch(FailureKind::Unavailable).code(), Code::Unknown);
        assert_eq!(
            fetch(FailureKind::Throttled).code(),
            Code::ResourceExhausted
        );
        assert_eq!(
            Error::Objects(vec!["x".into()]).code(),
            Code::InvalidArgument
        );
        assert_eq!(
            Error::Token {
                audience: "sts.amazonaws.com",
                reason: "missing".into()
            }
            .code(),
            Code::FailedPrecondition
        );
    }

    /// Every failure kind; the match below fails to compile when one is
    /// added without being listed here.
    const KINDS: [FailureKind; 6] = [
        FailureKind::NotFound,
        FailureKind::PermissionDenied,
        FailureKind::InvalidArgument,
        FailureKind::Throttled,
        FailureKind::Unavailable,
        FailureKind::Internal,
    ];

    /// One error of every variant, Identity and Fetch with every kind.
    fn every_error() -> Vec<Error> {
        let mut errors = vec![
            Error::Attributes { reason: "r".into() },
            Error::Permission {
                value: "9999".into(),
                reason: "r",
            },
            Error::Parameter {
                key: "region",
                reason: "r".into(),
            },
            Error::Objects(vec!["o".into()]),
            Error::TargetPath {
                path: "/t".into(),
                reason: "r".into(),
            },
            Error::Region { reason: "r".into() },
            Error::Token {
                audience: "sts.amazonaws.com",
                reason: "r".into(),
            },
            Error::Jmes {
                object: "o".into(),
                path: "p".into(),
                reason: "r".into(),
            },
            Error::Decode {
                object: "o".into(),
                field: "f".into(),
                reason: "r".into(),
            },
            Error::PathFiles {
                object: "o".into(),
                reason: "r".into(),
            },
            Error::NothingToMount { paths: "p".into() },
            Error::Write {
                path: "f".into(),
                source: std::io::Error::other("disk"),
            },
            Error::ResponseTooLarge { bytes: 2, limit: 1 },
            Error::MountBytes {
                limit: 1,
                at: "object o".into(),
            },
            Error::InflightBytes {
                capacity: 1,
                at: "object o".into(),
                busy: true,
            },
            Error::Timeout {
                after: Duration::from_secs(1),
            },
            Error::Class {
                problems: vec!["p".into()],
            },
            Error::Superseded { path: "/t".into() },
            Error::Cancelled,
            Error::Internal("i".into()),
        ];
        for kind in KINDS {
            for precondition in [false, true] {
                errors.push(Error::Identity {
                    what: "w".into(),
                    kind,
                    precondition,
                    source: None,
                });
            }
            errors.push(Error::Fetch {
                store: "ssmparameter",
                object: "o".into(),
                region: "r".into(),
                source: StoreError::new(kind, None, "m"),
            });
        }
        for e in &errors {
            // No wildcard: a new variant must be added above.
            match e {
                Error::Attributes { .. }
                | Error::Permission { .. }
                | Error::Parameter { .. }
                | Error::Objects(_)
                | Error::TargetPath { .. }
                | Error::Region { .. }
                | Error::Token { .. }
                | Error::Identity { .. }
                | Error::Fetch { .. }
                | Error::Jmes { .. }
                | Error::Decode { .. }
                | Error::PathFiles { .. }
                | Error::NothingToMount { .. }
                | Error::Write { .. }
                | Error::ResponseTooLarge { .. }
                | Error::MountBytes { .. }
                | Error::InflightBytes { .. }
                | Error::Timeout { .. }
                | Error::Class { .. }
                | Error::Superseded { .. }
                | Error::Cancelled
                | Error::Internal(_) => {}
            }
        }
        errors
    }

    #[test]
    fn no_failure_answers_unavailable() {
        for kind in KINDS {
            match kind {
                FailureKind::NotFound
                | FailureKind::PermissionDenied
                | FailureKind::InvalidArgument
                | FailureKind::Throttled
                | FailureKind::Unavailable
                | FailureKind::Internal => {}
            }
            assert_ne!(kind_code(kind), Code::Unavailable, "{kind:?}");
        }
        let errors = every_error();
        assert_eq!(errors.len(), 20 + KINDS.len() * 3);
        for e in &errors {
            assert_ne!(e.code(), Code::Unavailable, "{e:?}");
            assert_ne!(e.to_status().code(), Code::Unavailable, "{e:?}");
        }
        let timeout = Error::Timeout {
            after: Duration::from_secs(1),
        };
        assert_eq!(timeout.code(), Code::DeadlineExceeded);
    }

    #[test]
    fn full_message_names_object_region_and_aws_code() {
        let e = Error::Fetch {
            store: "secretsmanager",
            object: "db".into(),
            region: "eu-west-1".into(),
            source: StoreError::new(
                FailureKind::NotFound,
                Some("ResourceNotFoundException"),
                "Secrets Manager can't find the specified secret.",
            ),
        };
        let m = e.full_message();
        assert!(
            m.contains("db") && m.contains("eu-west-1") && m.contains("ResourceNotFoundException"),
            "{m}"
        );
    }

    #[test]
    fn object_errors_are_bounded() {
        let e = Error::Objects((0..25).map(|i| format!("e{i}")).collect());
        let m = e.to_string();
        assert!(
            m.contains("e9") && !m.contains("e10;") && m.contains("15 more"),
            "{m}"
        );
        let long = Error::Class {
            problems: (0..10)
                .map(|i| format!("p{i} {}", "x".repeat(2000)))
                .collect(),
        };
        let m = long.to_string();
        assert!(m.len() < 4096 && m.contains("10 problem(s)") && m.contains("p0 "));
        assert!(m.contains("and 9 more"), "{}", &m[m.len() - 40..]);
    }
}
