//! Builds the production identity backend from its [`Settings`] (derived
//! from the serve flags by `config`), a base AWS configuration and a
//! Kubernetes client configuration, both loaded by the binary's `main` (the
//! only place that reads the environment).

use std::time::Duration;

use aws_config::SdkConfig;

use crate::aws::{CallBound, OwnCredentials};
use crate::identity::pod_identity::{AgentClient, AgentConfig};
use crate::identity::{self, IdentityBackend, PodIdentitySource};

/// What the identity backend is built from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Queries per second to the Kubernetes API server (client-side limit).
    pub qps: u32,
    /// Burst above `qps`.
    pub burst: u32,
    /// Where EKS Pod Identity credentials come from.
    pub pod_identity: PodIdentitySettings,
    /// Credentials kept in the cache; 0 disables it.
    pub cache_capacity: u64,
}

/// Where EKS Pod Identity credentials come from, and how to reach it.
#[derive(Debug, Clone)]
pub enum PodIdentitySettings {
    /// The node's Pod Identity Agent.
    Agent(AgentConfig),
    /// EKS Auth AssumeRoleForPodIdentity for the named cluster.
    EksAuth {
        /// The EKS cluster's name.
        cluster: String,
    },
}

impl PodIdentitySettings {
    /// Whether a call is signed with the node's own credentials: EKS Auth's
    /// AssumeRoleForPodIdentity is; the agent takes the pod's token.
    pub fn own_credentials(&self) -> OwnCredentials {
        match self {
            Self::Agent(_) => OwnCredentials::Unused,
            Self::EksAuth { .. } => OwnCredentials::DefaultChain,
        }
    }
}

/// The backend: STS from `base`, Kubernetes lookups through `kube_config`,
/// Pod Identity as `settings` say; its AWS calls (STS, EKS Auth) under
/// `bound`, the stores' process-wide bound. Errors are one line for the operator.
pub fn backend(
    settings: &Settings,
    base: &SdkConfig,
    kube_config: kube::Config,
    bound: CallBound,
) -> Result<IdentityBackend, String> {
    let cluster_url = kube_config.cluster_url.to_string();
    let kube_client = kube_client(kube_config)?;
    let lookups = identity::kube::KubeLookups::new(
        kube_client,
        settings.qps,
        settings.burst,
        identity::kube::DEFAULT_CALL_TIMEOUT,
    );

    let (pod_identity, mode) = match &settings.pod_identity {
        PodIdentitySettings::Agent(config) => {
            let agent = AgentClient::new(config.clone())
                .map_err(|e| format!("ascp: invalid Pod Identity Agent endpoint: {e}"))?;
            (PodIdentitySource::Agent(agent), "agent")
        }
        PodIdentitySettings::EksAuth { cluster } => (
            PodIdentitySource::EksAuth(identity::eks_auth::EksAuth::new(
                base,
                cluster,
                bound.clone(),
            )),
            "eks-auth",
        ),
    };
    tracing::info!(
        kubernetes = %cluster_url,
        pod_identity_mode = mode,
        credential_cache_size = settings.cache_capacity,
        "identity backend ready"
    );
    Ok(IdentityBackend::new(
        base,
        lookups,
        pod_identity,
        settings.cache_capacity,
        bound,
    ))
}

/// The Kubernetes client of the provider and of `ascp doctor`: short
/// connect and read deadlines, no retries of its own.
pub fn kube_client(mut kube_config: kube::Config) -> Result<kube::Client, String> {
    // The defaults suit watches (minutes); our calls are single GETs.
    kube_config.connect_timeout = Some(Duration::from_secs(5));
    kube_config.read_timeout = Some(identity::kube::DEFAULT_CALL_TIMEOUT);
    // kube retries 429/503/504 with a backoff longer than our per-call
    // deadline, which would turn a clear "503" into a timeout; kubelet
    // retries a failed mount anyway.
    kube_config.default_retry = false;
    kube::Client::try_from(kube_config)
        .map_err(|e| format!("ascp: cannot build the Kubernetes client: {e}"))
}
