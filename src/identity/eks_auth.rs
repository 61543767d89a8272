//! EKS Pod Identity without the agent (beyond ASCP;
//! `--pod-identity-mode eks-auth`): the provider itself calls EKS Auth
//! `AssumeRoleForPodIdentity(clusterName, token)`, as the agent would, signed
//! with the provider's own credentials from the default chain (on EKS, the
//! node role through instance metadata, which a pod reaches only with
//! `hostNetwork: true` or an IMDS hop limit of 2).
//!
//! The call goes to the cluster's region: the base config's region when it
//! has one (`AWS_REGION`, the profile, instance metadata), else the region the
//! backend passes (the pod's node's region).
//!
//! This module must never log or format the token or the credentials.

use std::sync::Arc;
use std::time::SystemTime;

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;

use crate::aws::CallBound;
use crate::aws::classify;
use crate::aws::clients::ByRegion;
use crate::aws::throttle::{NoSdkThrottleRetry, Service};
use crate::error::Error;
use crate::secret::Token;
use crate::store::FailureKind;

/// EKS Auth's side of identity. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EksAuth {
    base: Arc<SdkConfig>,
    cluster: String,
    /// One client per region, built once.
    clients: Arc<ByRegion<aws_sdk_eksauth::Client>>,
    /// The process-wide bound on AWS calls in flight, shared with the stores.
    bound: CallBound,
}

/// Credentials and the role they act as.
pub struct PodCredentials {
    /// The credentials.
    pub credentials: Credentials,
    /// The assumed role's ARN, when EKS Auth said.
    pub role: Option<String>,
}

impl EksAuth {
    /// Calls for cluster `cluster`, signed with `base`'s credentials, each
    /// under `bound`.
    pub fn new(base: &SdkConfig, cluster: &str, bound: CallBound) -> Self {
        Self {
            base: Arc::new(base.clone()),
            cluster: cluster.to_owned(),
            clients: Arc::new(ByRegion::new()),
            bound,
        }
    }

    /// The cluster name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The base config's region, if it has one.
    pub fn configured_region(&self) -> Option<String> {
        self.base.region().map(|r| r.to_string())
    }

    /// Credentials for the pod whose Pod Identity token is `token`, from EKS
    /// Auth in `region`. `who` names the service account for messages.
    pub async fn assume_role_for_pod_identity(
        &self,
        region: &str,
        token: &Token,
        who: &str,
    ) -> Result<PodCredentials, Error> {
        let cluster = &self.cluster;
        let what = || {
            format!(
                "EKS Pod Identity: EKS Auth AssumeRoleForPodIdentity for {who} in cluster {cluster} ({region}) failed"
            )
        };
        let client = self.clients.get(region, |region| {
            let config = aws_sdk_eksauth::config::Builder::from(&*self.base)
                .region(region)
                .interceptor(crate::metrics::AwsCallMetrics)
                .retry_classifier(NoSdkThrottleRetry)
                .build();
            aws_sdk_eksauth::Client::from_conf(config)
        });
        let out = self
            .bound
            .call(Service::EksAuth, region, || {
                client
                    .assume_role_for_pod_identity()
                    .cluster_name(cluster)
                    .token(token.expose())
                    .send()
            })
            .await
            .map_err(|e| {
                let cause = classify::sdk_error("AssumeRoleForPodIdentity", &e);
                let code = e.code().map(str::to_owned);
                let (kind, precondition) = match code.as_deref() {
                    Some("InvalidTokenException" | "ExpiredTokenException") => {
                        (FailureKind::PermissionDenied, false)
                    }
                    // No such cluster, no association for the service
                    // account, or a malformed request: the operator's fix.
                    Some(
                        "ResourceNotFoundException"
                        | "InvalidRequestException"
                        | "InvalidParameterException",
                    ) => (FailureKind::InvalidArgument, true),
                    _ => (cause.kind, false),
                };
                Error::Identity {
                    what: what(),
                    kind,
                    precondition,
                    source: Some(Box::new(cause)),
                }
            })?;
        let role = out.assumed_role_user().map(|u| u.arn().to_owned());
        let c = out.credentials.ok_or_else(|| Error::Identity {
            what: format!("{}: EKS Auth answered without credentials", what()),
            kind: FailureKind::Internal,
            precondition: false,
            source: None,
        })?;
        tracing::debug!(cluster = %cluster, region, role = role.as_deref().unwrap_or(""), "assumed role for pod identity");
        Ok(PodCredentials {
            credentials: Credentials::new(
                c.access_key_id,
                c.secret_access_key,
                Some(c.session_token),
                SystemTime::try_from(c.expiration).ok(),
                "ascp-eks-auth",
            ),
            role,
        })
    }
}
