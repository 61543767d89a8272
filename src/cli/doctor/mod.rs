//! `ascp doctor`: explains why a pod's secrets do not mount.
//!
//! Given a pod (or a SecretProviderClass and a ServiceAccount), it checks
//! the chain in the order a mount walks it and prints one line per check,
//! PASS, WARN or FAIL, with what to change when it is not PASS:
//! - the pod: it exists and mounts a volume of the driver;
//! - the driver: the CSIDriver exists, its `tokenRequests` carry the
//!   audience the identity needs, `requiresRepublish` is set;
//! - the provider: ascp's DaemonSet exists, has a ready pod on the pod's
//!   node, and listens in a host directory the driver's DaemonSet dials;
//! - the class: it exists in the pod's namespace with `provider: aws`,
//!   passes `ascp validate`'s checks, and a region resolves;
//! - the identity: IRSA's annotation, role and trust policy (through the
//!   cluster's OIDC issuer), or the EKS Pod Identity association; the
//!   `assumeRoleArn` role's trust of the first role;
//! - the permissions: per object and region, IAM's simulation of what the
//!   mount will call on it, and `kms:Decrypt` on a customer-managed key.
//!
//! Facts are gathered first ([`facts`]), then pure rules turn them into
//! checks ([`rules`]), then the report is printed ([`report`]). It reads
//! metadata only (DescribeSecret, DescribeParameters): never a secret value.

mod facts;
mod report;
mod rules;

use aws_config::SdkConfig;
use serde::Serialize;

use crate::config::{DoctorArgs, DoctorOutput};

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Outcome {
    /// Fine.
    Pass,
    /// Works, or could not be checked, but deserves a look.
    Warn,
    /// The mount fails (or will) because of this.
    Fail,
}

impl Outcome {
    /// Its word in the report.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Warn => "WARN",
            Outcome::Fail => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Which link of the chain (`driver.audience`, `identity.trust`, ...).
    pub name: String,
    /// The verdict.
    pub outcome: Outcome,
    /// What was found.
    pub detail: String,
    /// What to change, when not PASS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A PASS.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(name, Outcome::Pass, detail, None)
    }

    /// A WARN and what to do about it.
    pub fn warn(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(name, Outcome::Warn, detail, Some(fix.into()))
    }

    /// A FAIL and its fix.
    pub fn fail(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(name, Outcome::Fail, detail, Some(fix.into()))
    }

    fn new(
        name: impl Into<String>,
        outcome: Outcome,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Check {
            name: name.into(),
            outcome,
            detail: detail.into(),
            fix,
        }
    }
}

/// The printed report and how many checks failed.
#[derive(Debug, Clone)]
pub struct Report {
    /// The table or the JSON document.
    pub text: String,
    /// FAILs.
    pub failed: usize,
}

/// Runs every check with a Kubernetes client configured from `kube_config`
/// and AWS clients from `aws` (the operator's credentials).
pub async fn run(
    args: &DoctorArgs,
    kube_config: kube::Config,
    aws: &SdkConfig,
) -> Result<Report, String> {
    let client = crate::identity::setup::kube_client(kube_config)?;
    let subject = facts::Subject {
        namespace: args.namespace.clone(),
        pod: args.pod.clone(),
        spc: args.spc.clone(),
        service_account: args.service_account.clone(),
        cluster_name: args.cluster_name.clone(),
        oidc_issuer: args.oidc_issuer.clone(),
    };
    let facts = facts::gather(subject, client, aws).await;
    let checks = rules::all(&facts);
    let text = match args.output {
        DoctorOutput::Table => report::table(&facts.subject, &checks),
        DoctorOutput::Json => report::json(&facts.subject, &checks),
    };
    Ok(Report {
        text,
        failed: report::Summary::of(&checks).fail,
    })
}
