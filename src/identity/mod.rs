//! The pod's identity: turns the driver's service-account token into AWS
//! credentials acting as the pod, and finds the pod's region when nothing
//! else names one. [`IdentityBackend`] is the production
//! [`crate::store::Backend`].
//!
//! For each mount and region:
//! 1. the token of the needed audience is taken from
//!    `csi.storage.k8s.io/serviceAccount.tokens` ([`tokens`]); no token, no
//!    network call;
//! 2. IRSA (default): the ServiceAccount's `eks.amazonaws.com/role-arn`
//!    annotation ([`kube`]), then STS AssumeRoleWithWebIdentity in the region
//!    ([`sts`]). EKS Pod Identity (`usePodIdentity`): the node's Pod
//!    Identity Agent ([`pod_identity`]), or EKS Auth directly in `eks-auth`
//!    mode ([`eks_auth`]);
//! 3. with `assumeRoleArn`, STS AssumeRole into that role with the pod's
//!    credentials (beyond ASCP);
//! 4. the stores are built for the region with the result
//!    ([`crate::aws::StoreFactory`]).
//!
//! Steps 2 and 3 go through the credential cache ([`cache`]), keyed by
//! method, principal, region and the token's SHA-256, so the driver's
//! rotation remounts cost no STS or agent call while the token is unchanged.
//! Agent credentials do not depend on the region and are cached once for
//! both regions of a failover mount.
//!
//! This module and its children never read the environment (the binary's
//! `main` builds the clients and hands them in) and never put a token or
//! credentials into a log line, an error or a `Debug` string.

pub mod cache;
pub mod eks_auth;
pub mod kube;
pub mod pod_identity;
pub mod setup;
pub mod sts;
pub mod tokens;

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use futures::future::BoxFuture;

use crate::aws::StoreFactory;
use crate::error::Error;
use crate::secret::Token;
use crate::store::{Backend, FailureKind, PodIdentity, Stores};

use cache::{CacheKey, CredentialCache, Method, Resolved};
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

/// The production backend: pod identity → credentials → stores.
pub struct IdentityBackend {
    factory: StoreFactory,
    sts: Sts,
    kube: KubeLookups,
    pod_identity: PodIdentitySource,
    cache: CredentialCache,
}

impl IdentityBackend {
    /// A backend building stores with `factory`, calling STS with `base`'s
    /// settings, reading the Kubernetes API through `kube`, and caching at
    /// most `cache_capacity` credentials.
    pub fn new(
        factory: StoreFactory,
        base: &SdkConfig,
        kube: KubeLookups,
        pod_identity: PodIdentitySource,
        cache_capacity: u64,
    ) -> Self {
        Self {
            factory,
            sts: Sts::new(base),
            kube,
            pod_identity,
            cache: CredentialCache::new(cache_capacity),
        }
    }

    /// The credential cache (for tests and metrics).
    pub fn cache(&self) -> &CredentialCache {
        &self.cache
    }

    /// The credentials acting as `pod` in `region`, role chaining included.
    pub async fn credentials(&self, pod: &PodIdentity, region: &str) -> Result<Resolved, Error> {
        let (own, token) = self.pod_credentials(pod, region).await?;
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
        let who = format!(
            "service account {} in namespace {} ({})",
            pod.service_account, pod.namespace, own.principal
        );
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
                Ok(Resolved {
                    credentials,
                    principal: role.to_owned(),
                })
            })
            .await
    }

    /// The pod's own credentials (IRSA or Pod Identity) and the token that
    /// obtained them.
    async fn pod_credentials(
        &self,
        pod: &PodIdentity,
        region: &str,
    ) -> Result<(Resolved, Token), Error> {
        let who = format!(
            "service account {} in namespace {}",
            pod.service_account, pod.namespace
        );
        if !pod.use_pod_identity {
            let token = tokens::token_for(pod.tokens.as_ref(), IRSA_AUDIENCE)?.token;
            let role = self
                .kube
                .role_arn(&pod.namespace, &pod.service_account)
                .await?;
            let key = CacheKey::new(Method::Irsa, &role, region, &token);
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
                    Ok(Resolved {
                        credentials,
                        principal: role.clone(),
                    })
                })
                .await?;
            return Ok((resolved, token));
        }

        let token = tokens::token_for(pod.tokens.as_ref(), POD_IDENTITY_AUDIENCE)?.token;
        let fallback_principal = format!("pod-identity:{}/{}", pod.namespace, pod.service_account);
        let resolved = match &self.pod_identity {
            PodIdentitySource::Agent(agent) => {
                // Agent credentials do not depend on the region: one entry
                // serves both regions of a failover mount.
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
                        Ok(Resolved {
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
                        Ok(Resolved {
                            credentials: got.credentials,
                            principal: got.role.unwrap_or_else(|| fallback_principal.clone()),
                        })
                    })
                    .await?
            }
        };
        Ok((resolved, token))
    }

    /// The cluster's region for EKS Auth when the base config has none: the
    /// region of the pod's node.
    async fn cluster_region(&self, pod: &PodIdentity) -> Result<String, Error> {
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

    async fn node_region(&self, pod: &PodIdentity) -> Result<String, Error> {
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

impl Backend for IdentityBackend {
    fn default_region<'a>(&'a self, pod: &'a PodIdentity) -> BoxFuture<'a, Result<String, Error>> {
        Box::pin(self.node_region(pod))
    }

    fn stores<'a>(
        &'a self,
        pod: &'a PodIdentity,
        region: &'a str,
    ) -> BoxFuture<'a, Result<Stores, Error>> {
        Box::pin(async move {
            let resolved = self.credentials(pod, region).await?;
            Ok(self.factory.stores(
                region,
                SharedCredentialsProvider::new(resolved.credentials),
                &resolved.principal,
            ))
        })
    }
}
