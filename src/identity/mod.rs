//! The pod's identity: turns the driver's service-account token into AWS
//! credentials acting as the pod, and finds the pod's region when nothing
//! else names one. [`IdentityBackend`] is the production
//! [`crate::store::Identity`]; it builds no store (the mount hands its
//! credentials to `aws`'s factory).
//!
//! For each mount:
//! 1. the token of the needed audience is taken from
//!    `csi.storage.k8s.io/serviceAccount.tokens` ([`tokens`]); no token, no
//!    network call;
//! 2. once per mount, the credentials that do not depend on the mounted
//!    region: with EKS Pod Identity (`usePodIdentity`), the node's Pod
//!    Identity Agent ([`pod_identity`]), or EKS Auth in the cluster's region
//!    in `eks-auth` mode ([`eks_auth`]). Both regions of a failover mount
//!    share them, so a failure here fails the mount;
//! 3. per region, as part of that region's answer: IRSA (default) reads the
//!    ServiceAccount's `eks.amazonaws.com/role-arn` annotation ([`kube`]) and
//!    calls STS AssumeRoleWithWebIdentity in the region ([`sts`]); with
//!    `assumeRoleArn`, STS AssumeRole into that role with the credentials so
//!    far (beyond ASCP). A failure here is that region's failure, and the
//!    mount may fail over from it like from a failed fetch.
//!
//! Steps 2 and 3 go through the credential cache ([`cache`]), keyed by
//! method, principal, region and the token's SHA-256, so the driver's
//! rotation remounts cost no STS or agent call while the token is unchanged.
//!
//! This module and its children never read the environment (the binary's
//! `main` builds the clients and hands them in) and never put a token or
//! credentials into a log line, an error or a `Debug` string.

pub(crate) mod cache;
mod eks_auth;
pub mod kube;
pub mod pod_identity;
pub mod setup;
mod sts;
mod tokens;

use aws_config::SdkConfig;
use futures::future::BoxFuture;

use crate::error::Error;
use crate::secret::Token;
use crate::store::{FailureKind, Identity, PodCredentials, PodRef};

use cache::{CacheKey, CredentialCache, Method};
use eks_auth::EksAuth;
use kube::KubeLookups;
use pod_identity::AgentClient;
use sts::Sts;
use tokens::{IRSA_AUDIENCE, POD_IDENTITY_AUDIENCE};

/// Where EKS Pod Identity credentials come from.
#[derive(Clone, Debug)]
pub enum PodIdentitySource {
    /// The node's EKS Pod Identity Agent (as ASCP).
    Agent(AgentClient),
    /// EKS Auth AssumeRoleForPodIdentity, called by the provider itself.
    EksAuth(EksAuth),
}

/// The production identity: pod identity → credentials.
pub struct IdentityBackend {
    sts: Sts,
    kube: KubeLookups,
    pod_identity: PodIdentitySource,
    cache: CredentialCache,
}

impl IdentityBackend {
    /// A backend calling STS with `base`'s settings (each call under
    /// `bound`, the stores' process-wide bound), reading the Kubernetes API
    /// through `kube`, and caching at most `cache_capacity` credentials.
    pub fn new(
        base: &SdkConfig,
        kube: KubeLookups,
        pod_identity: PodIdentitySource,
        cache_capacity: u64,
        bound: crate::aws::CallBound,
    ) -> Self {
        Self {
            sts: Sts::new(base, bound),
            kube,
            pod_identity,
            cache: CredentialCache::new(cache_capacity),
        }
    }

    /// The credential cache (for tests and metrics).
    pub fn cache(&self) -> &CredentialCache {
        &self.cache
    }

    /// Step 2: the credentials that do not depend on the mounted region
    /// (EKS Pod Identity through the agent or EKS Auth); `None` for IRSA.
    pub async fn pod_credentials(&self, pod: &PodRef) -> Result<Option<PodCredentials>, Error> {
        if !pod.use_pod_identity {
            return Ok(None);
        }
        let token = tokens::token_for(pod.tokens.as_ref(), POD_IDENTITY_AUDIENCE)?.token;
        let who = who(pod);
        let fallback_principal = format!("pod-identity:{}/{}", pod.namespace, pod.service_account);
        let resolved = match &self.pod_identity {
            PodIdentitySource::Agent(agent) => {
                let key = CacheKey::new(
                    Method::Agent,
                    &agent.describe(pod.preferred_address),
                    "",
                    &token,
                );
                self.cache
                    .get_or_load(key, async {
                        let credentials = agent
                            .fetch(&token, pod.preferred_address)
                            .await
                            .map_err(|e| Error::Identity {
                                what: format!("EKS Pod Identity for {who} failed"),
                                kind: e.kind,
                                precondition: e.precondition,
                                source: Some(Box::new(e)),
                            })?;
                        tracing::debug!(%who, "loaded Pod Identity Agent credentials");
                        Ok(PodCredentials {
                            credentials,
                            principal: fallback_principal.clone(),
                        })
                    })
                    .await?
            }
            PodIdentitySource::EksAuth(eks) => {
                let eks_region = match eks.configured_region() {
                    Some(r) => r,
                    None => self.cluster_region(pod).await?,
                };
                let key = CacheKey::new(Method::EksAuth, eks.cluster(), &eks_region, &token);
                self.cache
                    .get_or_load(key, async {
                        let got = eks
                            .assume_role_for_pod_identity(&eks_region, &token, &who)
                            .await?;
                        tracing::debug!(%who, "loaded EKS Auth credentials");
                        Ok(PodCredentials {
                            credentials: got.credentials,
                            principal: got.role.unwrap_or_else(|| fallback_principal.clone()),
                        })
                    })
                    .await?
            }
        };
        Ok(Some(resolved))
    }

    /// Step 3: the credentials acting as `pod` in `region`, from `shared`
    /// (step 2's answer) or IRSA, role chaining included.
    pub async fn region_credentials(
        &self,
        pod: &PodRef,
        region: &str,
        shared: Option<&PodCredentials>,
    ) -> Result<PodCredentials, Error> {
        let (own, token) = match shared {
            Some(shared) => {
                let token = tokens::token_for(pod.tokens.as_ref(), POD_IDENTITY_AUDIENCE)?.token;
                (shared.clone(), token)
            }
            None => self.irsa(pod, region).await?,
        };
        let Some(role) = pod.assume_role_arn.as_deref() else {
            return Ok(own);
        };
        let external_id = pod
            .assume_role_external_id
            .as_deref()
            .filter(|e| !e.is_empty());
        // The chained role's credentials are reused only for the same pod
        // credentials (same token and role) and the same external id.
        let principal = format!(
            "{} -> {role} ({})",
            own.principal,
            external_id.map_or("no external id", |_| "external id")
        );
        let key_principal = format!("{principal}|{}", external_id.unwrap_or_default());
        let key = CacheKey::new(Method::AssumeRole, &key_principal, region, &token);
        let who = format!("{} ({})", who(pod), own.principal);
        self.cache
            .get_or_load(key, async {
                let credentials = self
                    .sts
                    .assume_role(
                        region,
                        own.credentials.clone(),
                        role,
                        external_id,
                        &sts::session_name(pod),
                        &who,
                    )
                    .await?;
                tracing::debug!(role, region, "loaded chained credentials");
                Ok(PodCredentials {
                    credentials,
                    principal: role.to_owned(),
                })
            })
            .await
    }

    /// IRSA in `region`: the role in the ServiceAccount's annotation, assumed
    /// with the pod's token. Returns the token too (it keys the chained
    /// role's cache entry).
    async fn irsa(&self, pod: &PodRef, region: &str) -> Result<(PodCredentials, Token), Error> {
        let token = tokens::token_for(pod.tokens.as_ref(), IRSA_AUDIENCE)?.token;
        let role = self
            .kube
            .role_arn(&pod.namespace, &pod.service_account)
            .await?;
        let key = CacheKey::new(Method::Irsa, &role, region, &token);
        let who = who(pod);
        let resolved = self
            .cache
            .get_or_load(key, async {
                let credentials = self
                    .sts
                    .assume_role_with_web_identity(
                        region,
                        &role,
                        &token,
                        &sts::session_name(pod),
                        &who,
                    )
                    .await?;
                tracing::debug!(role = %role, region, "loaded IRSA credentials");
                Ok(PodCredentials {
                    credentials,
                    principal: role.clone(),
                })
            })
            .await?;
        Ok((resolved, token))
    }

    /// The cluster's region for EKS Auth when the base config has none: the
    /// region of the pod's node.
    async fn cluster_region(&self, pod: &PodRef) -> Result<String, Error> {
        self.node_region(pod).await.map_err(|e| Error::Identity {
            what: format!(
                "EKS Pod Identity (eks-auth mode) needs the cluster's region: set AWS_REGION on the provider or the {} label on the node",
                kube::REGION_LABEL
            ),
            kind: match &e {
                Error::Identity { kind, .. } => *kind,
                _ => FailureKind::InvalidArgument,
            },
            precondition: !matches!(
                &e,
                Error::Identity {
                    kind: FailureKind::Unavailable | FailureKind::Throttled,
                    ..
                }
            ),
            source: Some(Box::new(e)),
        })
    }

    async fn node_region(&self, pod: &PodRef) -> Result<String, Error> {
        if pod.pod_name.is_empty() || pod.namespace.is_empty() {
            return Err(Error::Region {
                reason: "the mount request names no pod, so its node cannot be asked".into(),
            });
        }
        self.kube
            .pod_region(&pod.namespace, &pod.pod_name, &pod.pod_uid)
            .await
    }
}

/// The service account, for messages.
fn who(pod: &PodRef) -> String {
    format!(
        "service account {} in namespace {}",
        pod.service_account, pod.namespace
    )
}

impl Identity for IdentityBackend {
    fn default_region<'a>(&'a self, pod: &'a PodRef) -> BoxFuture<'a, Result<String, Error>> {
        Box::pin(self.node_region(pod))
    }

    fn pod_credentials<'a>(
        &'a self,
        pod: &'a PodRef,
    ) -> BoxFuture<'a, Result<Option<PodCredentials>, Error>> {
        Box::pin(self.pod_credentials(pod))
    }

    fn region_credentials<'a>(
        &'a self,
        pod: &'a PodRef,
        region: &'a str,
        shared: Option<&'a PodCredentials>,
    ) -> BoxFuture<'a, Result<PodCredentials, Error>> {
        Box::pin(self.region_credentials(pod, region, shared))
    }
}
