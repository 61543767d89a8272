//! Prometheus metrics: what operators watch instead of logs.
//!
//! One process-wide registry ([`global`]), encoded in the Prometheus text
//! format by the crate `prometheus-client`. Every label is low-cardinality
//! by construction: outcomes, gRPC codes, store kinds, AWS services and
//! operations (names compiled into the AWS SDK), known AWS regions (anything
//! else is `other`, see [`region_label`]), credential methods and Kubernetes
//! resources. Never a pod name, a secret name, a role, a value or any other
//! text taken from a request.
//!
//! AWS calls are counted by an SDK interceptor ([`AwsCallMetrics`]) attached
//! to every client the serving provider builds (Secrets Manager, SSM, STS,
//! EKS Auth), so no store code has to remember to count. The CLI's tools
//! (`ascp doctor`'s IAM, EKS and Secrets Manager clients) are not counted:
//! they run in a process of their own that serves no metrics.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a finished mount.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MountLabels {
    /// `success` or `failure`.
    pub outcome: &'static str,
    /// The gRPC code, e.g. `Ok`, `NotFound`.
    pub code: String,
}

/// Labels naming a store.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    /// `secretsmanager` or `ssmparameter`.
    pub store: &'static str,
}

/// Labels of an AWS call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsCallLabels {
    /// e.g. `secretsmanager`, `ssm`, `sts`.
    pub service: String,
    /// e.g. `GetSecretValue`.
    pub operation: String,
    /// One of [`KNOWN_REGIONS`], or `other`.
    pub region: &'static str,
    /// `success`, `client_error`, `server_error` or `transport_error`.
    pub outcome: &'static str,
}

/// Labels of an AWS call's duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsOperationLabels {
    /// e.g. `secretsmanager`.
    pub service: String,
    /// e.g. `GetSecretValue`.
    pub operation: String,
}

/// Labels of a credential cache event.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `irsa`, `pod_identity_agent`, `eks_auth`, `assume_role`.
    pub method: &'static str,
    /// `hit`, `miss` or `load_error`.
    pub result: &'static str,
}

/// Labels of a Kubernetes API call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KubeLabels {
    /// `serviceaccounts`, `pods` or `nodes`.
    pub resource: &'static str,
    /// `success`, `not_found` or `error`.
    pub outcome: &'static str,
}

/// Labels of a shared version check (rotation remounts).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionCheckLabels {
    /// `hit` (answered within the check window, no call), `miss` (this
    /// mount made the DescribeSecret call), `failed` (no answer: the mount
    /// fetched the secret itself) or `skipped` (the role was denied
    /// DescribeSecret lately).
    pub result: &'static str,
}

/// Labels of the node's backoff from throttling, per service and region.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThrottleLabels {
    /// `secretsmanager`, `ssm`, `sts` or `eks-auth`.
    pub service: &'static str,
    /// One of [`KNOWN_REGIONS`], or `other`.
    pub region: &'static str,
}

/// Labels of the build info gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// This build's version.
    pub version: &'static str,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Mount requests by outcome and code.
    pub mounts: Family<MountLabels, Counter>,
    /// Mount duration in seconds, by outcome.
    pub mount_duration: Family<StoreOutcome, Histogram>,
    /// Mounts in progress.
    pub mounts_in_flight: Gauge,
    /// Objects mounted, by store.
    pub objects: Family<StoreLabels, Counter>,
    /// AWS calls (executions, after the SDK's retries).
    pub aws_calls: Family<AwsCallLabels, Counter>,
    /// AWS call duration in seconds.
    pub aws_call_duration: Family<AwsOperationLabels, Histogram>,
    /// Credential cache events.
    pub credential_cache: Family<CacheLabels, Counter>,
    /// Kubernetes API calls.
    pub kube_calls: Family<KubeLabels, Counter>,
    /// Shared version checks of mounted secrets.
    pub version_checks: Family<VersionCheckLabels, Counter>,
    /// Bytes of `--max-inflight-bytes` reserved by mounts in flight.
    pub budget_bytes_in_use: Gauge,
    /// Mounts that waited for room in `--max-inflight-bytes`.
    pub budget_waits: Counter,
    /// AWS calls waiting for a permit of `--max-concurrent-fetches`.
    pub aws_calls_waiting: Gauge,
    /// The allowed rate of AWS calls while the node backs off from
    /// throttling, in calls per second; 0 when calm.
    pub throttle_rate: Family<ThrottleLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    /// AWS calls not sent because the node backs off from throttling.
    pub throttle_held_back: Family<ThrottleLabels, Counter>,
}

/// Labels of the mount duration: the outcome only.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreOutcome {
    /// `success` or `failure`.
    pub outcome: &'static str,
}

fn seconds_histogram() -> Histogram {
    // 5 ms to about 82 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("ascp");
        let mounts = Family::<MountLabels, Counter>::default();
        registry.register(
            "mount_requests",
            "Mount requests by outcome and gRPC code",
            mounts.clone(),
        );
        let mount_duration = Family::<StoreOutcome, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        registry.register(
            "mount_duration_seconds",
            "Mount duration",
            mount_duration.clone(),
        );
        let mounts_in_flight = Gauge::default();
        registry.register(
            "mounts_in_flight",
            "Mounts in progress",
            mounts_in_flight.clone(),
        );
        let objects = Family::<StoreLabels, Counter>::default();
        registry.register(
            "objects_mounted",
            "Objects mounted, by store",
            objects.clone(),
        );
        let aws_calls = Family::<AwsCallLabels, Counter>::default();
        registry.register(
            "aws_calls",
            "AWS API calls by service, operation, region and outcome",
            aws_calls.clone(),
        );
        let aws_call_duration = Family::<AwsOperationLabels, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        registry.register(
            "aws_call_duration_seconds",
            "AWS API call duration, retries included",
            aws_call_duration.clone(),
        );
        let credential_cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "credential_cache",
            "Credential cache hits, misses and failed loads by method",
            credential_cache.clone(),
        );
        let kube_calls = Family::<KubeLabels, Counter>::default();
        registry.register(
            "kubernetes_api_calls",
            "Kubernetes API calls by resource and outcome",
            kube_calls.clone(),
        );
        let version_checks = Family::<VersionCheckLabels, Counter>::default();
        registry.register(
            "version_checks",
            "Shared version checks of mounted secrets by result (hit, miss, failed, skipped, batched)",
            version_checks.clone(),
        );
        let throttle_rate =
            Family::<ThrottleLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register(
            "aws_allowed_calls_per_second",
            "Calls per second the node allows itself while AWS throttles it, per service and region (0: calm, not paced), as of the last call",
            throttle_rate.clone(),
        );
        let throttle_held_back = Family::<ThrottleLabels, Counter>::default();
        registry.register(
            "aws_calls_held_back",
            "AWS calls not sent because the node backs off from throttling, per service and region",
            throttle_held_back.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: crate::VERSION,
            })
            .set(1);
        registry.register("build_info", "Build information", build_info);
        let budget_bytes_in_use = Gauge::default();
        registry.register(
            "budget_bytes_in_use",
            "Bytes of --max-inflight-bytes reserved by mounts in flight",
            budget_bytes_in_use.clone(),
        );
        let budget_waits = Counter::default();
        registry.register(
            "budget_waits",
            "Mounts that waited for room in --max-inflight-bytes",
            budget_waits.clone(),
        );
        let aws_calls_waiting = Gauge::default();
        registry.register(
            "aws_calls_waiting",
            "AWS calls waiting for a permit of --max-concurrent-fetches",
            aws_calls_waiting.clone(),
        );
        Self {
            registry,
            mounts,
            mount_duration,
            mounts_in_flight,
            objects,
            aws_calls,
            aws_call_duration,
            credential_cache,
            kube_calls,
            version_checks,
            budget_bytes_in_use,
            budget_waits,
            aws_calls_waiting,
            throttle_rate,
            throttle_held_back,
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Records a finished mount.
    pub fn mount_finished(&self, code: tonic::Code, seconds: f64) {
        let outcome = if code == tonic::Code::Ok {
            "success"
        } else {
            "failure"
        };
        self.mounts
            .get_or_create(&MountLabels {
                outcome,
                code: format!("{code:?}"),
            })
            .inc();
        self.mount_duration
            .get_or_create(&StoreOutcome { outcome })
            .observe(seconds);
    }

    /// Records a credential cache event.
    pub fn cache_event(&self, method: &'static str, result: &'static str) {
        self.credential_cache
            .get_or_create(&CacheLabels { method, result })
            .inc();
    }

    /// Records a shared version check.
    pub fn version_check(&self, result: &'static str) {
        self.version_checks
            .get_or_create(&VersionCheckLabels { result })
            .inc();
    }

    /// Sets the allowed rate of `service` in `region` (a label).
    pub fn throttle_rate(&self, service: &'static str, region: &'static str, rate: f64) {
        self.throttle_rate
            .get_or_create(&ThrottleLabels { service, region })
            .set(rate);
    }

    /// Counts a call of `service` in `region` (a label) not sent.
    pub fn throttle_held_back(&self, service: &'static str, region: &'static str) {
        self.throttle_held_back
            .get_or_create(&ThrottleLabels { service, region })
            .inc();
    }

    /// Records a Kubernetes API call.
    pub fn kube_call(&self, resource: &'static str, outcome: &'static str) {
        self.kube_calls
            .get_or_create(&KubeLabels { resource, outcome })
            .inc();
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// The regions a region label may name: every AWS region (commercial,
/// GovCloud, China, European Sovereign Cloud, ISO) known when this list was
/// last updated. A newer region is labelled `other` until it is added here;
/// it still works, since the list is for labels only.
pub const KNOWN_REGIONS: &[&str] = &[
    // Commercial.
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    // GovCloud.
    "us-gov-east-1",
    "us-gov-west-1",
    // China.
    "cn-north-1",
    "cn-northwest-1",
    // European Sovereign Cloud.
    "eusc-de-east-1",
    // ISO partitions.
    "eu-isoe-west-1",
    "us-iso-east-1",
    "us-iso-west-1",
    "us-isob-east-1",
    "us-isob-west-1",
    "us-isof-east-1",
    "us-isof-south-1",
];

/// A region label: the region itself when it is one of [`KNOWN_REGIONS`],
/// else `other`. The label set is therefore fixed at build time, whatever
/// regions SecretProviderClasses name.
pub fn region_label(region: &str) -> &'static str {
    KNOWN_REGIONS
        .iter()
        .find(|known| **known == region)
        .copied()
        .unwrap_or("other")
}

/// Counts every call of an AWS SDK client: attach it with
/// `.interceptor(AwsCallMetrics)` when building a client's config.
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsCallMetrics;

#[derive(Debug, Clone, Copy)]
struct CallStarted(Instant);

impl aws_smithy_types::config_bag::Storable for CallStarted {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for AwsCallMetrics {
    fn name(&self) -> &'static str {
        "AwsCallMetrics"
    }

    fn read_before_execution(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        cfg.interceptor_state()
            .store_put(CallStarted(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef<'_>,
        _runtime_components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let (service, operation) = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|m| (m.service().to_ascii_lowercase(), m.name().to_owned()))
            .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
        let region = cfg
            .load::<aws_types::region::Region>()
            .map_or("other", |r| region_label(r.as_ref()));
        let outcome = match (context.output_or_error(), context.response()) {
            (Some(Ok(_)), _) => "success",
            (_, Some(resp)) if resp.status().is_client_error() => "client_error",
            (_, Some(resp)) if resp.status().is_server_error() => "server_error",
            _ => "transport_error",
        };
        let m = global();
        m.aws_calls
            .get_or_create(&AwsCallLabels {
                service: service.clone(),
                operation: operation.clone(),
                region,
                outcome,
            })
            .inc();
        if let Some(started) = cfg.load::<CallStarted>() {
            m.aws_call_duration
                .get_or_create(&AwsOperationLabels { service, operation })
                .observe(started.0.elapsed().as_secs_f64());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_regions_are_labels() {
        assert_eq!(region_label("us-east-1"), "us-east-1");
        assert_eq!(region_label("us-gov-west-1"), "us-gov-west-1");
        assert_eq!(region_label("cn-northwest-1"), "cn-northwest-1");
        assert_eq!(region_label("ap-southeast-4"), "ap-southeast-4");
        // Region-shaped but made up: what a hostile class would send.
        assert_eq!(region_label("aa-a-1"), "other");
        assert_eq!(region_label("us-east-99"), "other");
        assert_eq!(region_label("attacker-controlled"), "other");
        assert_eq!(region_label(""), "other");
    }

    #[test]
    fn encodes_prometheus_text() {
        global().mount_finished(tonic::Code::NotFound, 0.01);
        let text = global().encode();
        assert!(
            text.contains("ascp_mount_requests_total{outcome=\"failure\",code=\"NotFound\"}"),
            "{text}"
        );
        assert!(text.contains("ascp_build_info"));
    }
}
