//! STS calls: `AssumeRoleWithWebIdentity` for IRSA (the pod's token of
//! audience `sts.amazonaws.com` and the role in its ServiceAccount's
//! annotation) and `AssumeRole` for `assumeRoleArn` chaining (beyond ASCP).
//!
//! Each call goes to the regional STS endpoint of the region being mounted,
//! as ASCP does, through an SDK client built from the process's base
//! `SdkConfig`, so endpoint overrides (`AWS_ENDPOINT_URL`, FIPS), retries,
//! timeouts and the user agent's app id apply.
//!
//! This module must never log or format a token or credentials: errors carry
//! the role, the service account and STS's error code and message only.

use std::sync::Arc;
use std::time::SystemTime;

use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

use crate::aws::CallBound;
use crate::aws::classify;
use crate::aws::clients::ByRegion;
use crate::aws::throttle::{NoSdkThrottleRetry, Service};
use crate::error::Error;
use crate::secret::Token;
use crate::store::{FailureKind, PodRef};

/// STS session names: 2 to 64 characters of `[\w+=,.@-]`.
const MAX_SESSION_NAME: usize = 64;

/// The STS side of identity. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Sts {
    base: SdkConfig,
    /// Clients without credentials of their own (AssumeRoleWithWebIdentity
    /// is not signed), one per region, built once.
    unsigned: Arc<ByRegion<aws_sdk_sts::Client>>,
    /// The process-wide bound on AWS calls in flight, shared with the stores.
    bound: CallBound,
}

impl Sts {
    /// STS clients built from `base`, each call under `bound`.
    pub fn new(base: &SdkConfig, bound: CallBound) -> Self {
        Self {
            base: base.clone(),
            unsigned: Arc::new(ByRegion::new()),
            bound,
        }
    }

    /// The client for `region`: a kept one without `credentials`, a new one
    /// with them (role chaining, whose credentials differ per pod).
    fn client(
        &self,
        region: &str,
        credentials: Option<SharedCredentialsProvider>,
    ) -> aws_sdk_sts::Client {
        let build = |region: Region, credentials: Option<SharedCredentialsProvider>| {
            let mut builder = aws_sdk_sts::config::Builder::from(&self.base)
                .region(region)
                .interceptor(crate::metrics::AwsCallMetrics)
                .retry_classifier(NoSdkThrottleRetry);
            if let Some(credentials) = credentials {
                builder = builder.credentials_provider(credentials);
            }
            aws_sdk_sts::Client::from_conf(builder.build())
        };
        match credentials {
            None => self.unsigned.get(region, |region| build(region, None)),
            Some(credentials) => build(Region::new(region.to_owned()), Some(credentials)),
        }
    }

    /// IRSA: exchanges the pod's web identity `token` for credentials of
    /// `role_arn` in `region`. `who` names the service account for messages.
    pub async fn assume_role_with_web_identity(
        &self,
        region: &str,
        role_arn: &str,
        token: &Token,
        session_name: &str,
        who: &str,
    ) -> Result<Credentials, Error> {
        let what = || {
            format!(
                "IRSA: STS AssumeRoleWithWebIdentity into {role_arn} for {who} in {region} failed"
            )
        };
        let client = self.client(region, None);
        let out = self
            .bound
            .call(Service::Sts, region, || {
                client
                    .assume_role_with_web_identity()
                    .role_arn(role_arn)
                    .role_session_name(session_name)
                    .web_identity_token(token.expose())
                    .send()
            })
            .await
            .map_err(|e| sts_error("AssumeRoleWithWebIdentity", &e, what()))?;
        tracing::debug!(role = role_arn, region, "assumed role with web identity");
        answered(out.credentials, what, "ascp-irsa")
    }

    /// Role chaining: assumes `role_arn` (with `external_id`) in `region`
    /// acting with the pod's `credentials`.
    pub async fn assume_role(
        &self,
        region: &str,
        credentials: Credentials,
        role_arn: &str,
        external_id: Option<&str>,
        session_name: &str,
        who: &str,
    ) -> Result<Credentials, Error> {
        let what = || {
            format!(
                "assumeRoleArn: STS AssumeRole into {role_arn} with the credentials of {who} in {region} failed"
            )
        };
        let client = self.client(region, Some(SharedCredentialsProvider::new(credentials)));
        let out = self
            .bound
            .call(Service::Sts, region, || {
                client
                    .assume_role()
                    .role_arn(role_arn)
                    .role_session_name(session_name)
                    .set_external_id(external_id.map(str::to_owned))
                    .send()
            })
            .await
            .map_err(|e| sts_error("AssumeRole", &e, what()))?;
        tracing::debug!(role = role_arn, region, "assumed chained role");
        answered(out.credentials, what, "ascp-assume-role")
    }
}

/// The credentials of an STS answer, which must carry some.
fn answered(
    credentials: Option<aws_sdk_sts::types::Credentials>,
    what: impl Fn() -> String,
    provider: &'static str,
) -> Result<Credentials, Error> {
    let credentials = credentials.ok_or_else(|| Error::Identity {
        what: format!("{}: STS answered without credentials", what()),
        kind: FailureKind::Internal,
        precondition: false,
        source: None,
    })?;
    Ok(convert(credentials, provider))
}

/// SDK credentials from STS's answer.
fn convert(c: aws_sdk_sts::types::Credentials, provider: &'static str) -> Credentials {
    let expiry = SystemTime::try_from(c.expiration).ok();
    Credentials::new(
        c.access_key_id,
        c.secret_access_key,
        Some(c.session_token),
        expiry,
        provider,
    )
}

/// The error for a failed STS call. STS's own codes decide: a token STS
/// rejects, or a role whose trust policy refuses the caller, is
/// PermissionDenied; an identity provider STS cannot reach is Unavailable.
fn sts_error<E>(operation: &str, err: &SdkError<E, HttpResponse>, what: String) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let cause = classify::sdk_error(operation, err);
    let (kind, precondition) = match cause.code.as_deref() {
        Some(
            "AccessDenied"
            | "InvalidIdentityToken"
            | "IDPRejectedClaim"
            | "ExpiredTokenException"
            | "InvalidClientTokenId",
        ) => (FailureKind::PermissionDenied, false),
        Some("IDPCommunicationError") => (FailureKind::Unavailable, false),
        // STS is off in this region for the account: an operator's fix.
        Some("RegionDisabledException") => (FailureKind::InvalidArgument, true),
        _ => (cause.kind, false),
    };
    Error::Identity {
        what,
        kind,
        precondition,
        source: Some(Box::new(cause)),
    }
}

/// The STS session name for a pod: `ascp-<namespace>-<pod>`, characters STS
/// does not allow replaced by `-`, at most 64 characters. It shows up in
/// CloudTrail, which makes a pod's calls easy to find.
pub fn session_name(pod: &PodRef) -> String {
    let raw = format!("ascp-{}-{}", pod.namespace, pod.pod_name);
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    // Only ASCII is left, so any byte index is a character boundary.
    name.truncate(MAX_SESSION_NAME);
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AddressPreference;

    fn pod(namespace: &str, name: &str) -> PodRef {
        PodRef {
            pod_name: name.into(),
            namespace: namespace.into(),
            pod_uid: String::new(),
            service_account: "default".into(),
            tokens: None,
            use_pod_identity: false,
            preferred_address: AddressPreference::Auto,
            assume_role_arn: None,
            assume_role_external_id: None,
        }
    }

    #[test]
    fn session_names_are_valid() {
        assert_eq!(session_name(&pod("default", "web-1")), "ascp-default-web-1");
        assert_eq!(session_name(&pod("a b", "p/ü")), "ascp-a-b-p--");
        let long = session_name(&pod(&"n".repeat(63), &"p".repeat(253)));
        assert_eq!(long.len(), 64);
        assert_eq!(session_name(&pod("", "")), "ascp--");
    }
}
