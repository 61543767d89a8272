//! Builds the production identity backend from the serve flags, a base AWS
//! configuration and a Kubernetes client configuration, both loaded by the
//! binary's `main` (the only place that reads the environment).

use std::time::Duration;

use aws_config::SdkConfig;

use crate::config::{PodIdentityMode, ServeArgs};
use crate::identity::{self, IdentityBackend, PodIdentitySource};

/// The backend: stores from `base`, Kubernetes lookups through
/// `kube_config`, Pod Identity from `--pod-identity-mode`. Errors are one
/// line for the operator.
pub fn backend(
    args: &ServeArgs,
    base: &SdkConfig,
    mut kube_config: kube::Config,
) -> Result<IdentityBackend, String> {
    let factory = crate::aws::StoreFactory::new(
        base,
        crate::aws::FetchOptions {
            max_concurrent_per_mount: args.max_concurrent_fetches_per_mount as usize,
            max_concurrent_global: args.max_concurrent_fetches as usize,
            batch_get_secret_value: args.batch_get_secret_value,
        },
    );
    // The defaults suit watches (minutes); our calls are single GETs.
    kube_config.connect_timeout = Some(Duration::from_secs(5));
    kube_config.read_timeout = Some(identity::kube::DEFAULT_CALL_TIMEOUT);
    // kube retries 429/503/504 with a backoff longer than our per-call
    // deadline, which would turn a clear "503" into a timeout; kubelet
    // retries a failed mount anyway.
    kube_config.default_retry = false;
    let cluster_url = kube_config.cluster_url.to_string();
    let kube_client = kube::Client::try_from(kube_config)
        .map_err(|e| format!("ascp: cannot build the Kubernetes client: {e}"))?;
    let lookups = identity::kube::KubeLookups::new(
        kube_client,
        args.qps,
        args.burst,
        identity::kube::DEFAULT_CALL_TIMEOUT,
    );

    let pod_identity = match args.pod_identity_mode {
        PodIdentityMode::Agent => {
            let defaults = identity::pod_identity::AgentConfig::default();
            let attempt_timeout = match args.pod_identity_http_timeout {
                // Go's http.Client reads 0 as "no timeout": the budget bounds it.
                Some(t) if t.is_zero() => args.pod_identity_retry_budget,
                Some(t) => t,
                None => identity::pod_identity::AgentConfig::DEFAULT_ATTEMPT_TIMEOUT,
            };
            let agent =
                identity::pod_identity::AgentClient::new(identity::pod_identity::AgentConfig {
                    ipv4_endpoint: args.pod_identity_endpoint_ipv4.clone(),
                    ipv6_endpoint: args.pod_identity_endpoint_ipv6.clone(),
                    attempt_timeout,
                    retry_budget: args.pod_identity_retry_budget,
                    ..defaults
                })
                .map_err(|e| format!("ascp: invalid Pod Identity Agent endpoint: {e}"))?;
            PodIdentitySource::Agent(agent)
        }
        PodIdentityMode::EksAuth => {
            let cluster = args
                .cluster_name
                .as_deref()
                .filter(|c| !c.is_empty())
                .ok_or("ascp: --pod-identity-mode=eks-auth needs --cluster-name")?;
            PodIdentitySource::EksAuth(identity::eks_auth::EksAuth::new(base, cluster))
        }
    };
    tracing::info!(
        kubernetes = %cluster_url,
        pod_identity_mode = ?args.pod_identity_mode,
        credential_cache_size = args.credential_cache_size,
        "identity backend ready"
    );
    Ok(IdentityBackend::new(
        factory,
        base,
        lookups,
        pod_identity,
        args.credential_cache_size,
    ))
}
