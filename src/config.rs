//! The command line: `ascp` (serve), `ascp validate`, `ascp mount`,
//! `ascp doctor`.
//!
//! The serve flags are ASCP's, with its defaults, and accept the forms ASCP's
//! Helm chart passes (`--flag=value`, `--driver-writes-secrets=true`); flags
//! this project adds have defaults under which a SecretProviderClass, Helm
//! values and IAM policies written for ASCP keep working unchanged. Everything is
//! parsed and checked here, before the runtime starts: a bad value exits
//! non-zero with one clear line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::aws::FetchOptions;
use crate::identity::pod_identity::AgentConfig;
use crate::identity::setup::{PodIdentitySettings, Settings};

/// The AWS Secrets and Configuration Provider for the Secrets Store CSI driver.
#[derive(Debug, Parser)]
#[command(name = "ascp", version, about, long_about = None)]
pub struct Cli {
    /// What to do; without a command, serve the driver.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Serve flags.
    #[command(flatten)]
    pub serve: ServeArgs,

    /// Log format: human-readable text or one JSON object per line. The level
    /// comes from RUST_LOG (default info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

pub use crate::telemetry::LogFormat;

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a SecretProviderClass manifest offline and show the files a
    /// mount would produce.
    Validate(ValidateArgs),
    /// Play the CSI driver: send a Mount for a SecretProviderClass to a
    /// running provider and write the files it returns.
    Mount(MountArgs),
    /// Explain why a pod's secrets do not mount: check the driver, the
    /// provider, the SecretProviderClass, the identity and the IAM
    /// permissions, in the order a mount walks them. Metadata calls only:
    /// it never reads a secret or parameter value (DescribeSecret and
    /// DescribeParameters, never GetSecretValue or GetParameters).
    Doctor(DoctorArgs),
}

/// Flags of the server, as ASCP's plus this project's.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Rendezvous directory for the provider socket (`<dir>/aws.sock`).
    #[arg(long, default_value = "/var/run/secrets-store-csi-providers")]
    pub provider_volume: PathBuf,

    /// Return the files to the driver instead of writing them.
    #[arg(long, default_value = "false", default_missing_value = "true", num_args = 0..=1, require_equals = true, value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub driver_writes_secrets: bool,

    /// Queries per second to the Kubernetes API server (client-side limit).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub qps: u32,

    /// Burst above --qps to the Kubernetes API server.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub burst: u32,

    /// The EKS add-on version, reported in the AWS user agent instead of ours.
    #[arg(long, default_value = "")]
    pub eks_addon_version: String,

    /// HTTP timeout for the Pod Identity Agent, in Go duration syntax (250ms, 2s).
    #[arg(long, value_parser = parse_go_duration)]
    pub pod_identity_http_timeout: Option<Duration>,

    /// The Pod Identity Agent's IPv4 endpoint.
    #[arg(long, default_value = crate::identity::pod_identity::DEFAULT_IPV4_ENDPOINT)]
    pub pod_identity_endpoint_ipv4: String,

    /// The Pod Identity Agent's IPv6 endpoint.
    #[arg(long, default_value = crate::identity::pod_identity::DEFAULT_IPV6_ENDPOINT)]
    pub pod_identity_endpoint_ipv6: String,

    /// Time allowed for retrying one Pod Identity Agent endpoint (timeouts,
    /// 429 and 5xx answers are retried with jittered backoff within it).
    #[arg(long, default_value = "20s", value_parser = parse_go_duration)]
    pub pod_identity_retry_budget: Duration,

    /// Where EKS Pod Identity credentials come from: the node's Pod Identity
    /// Agent, or EKS Auth called by the provider with its own (node) credentials.
    #[arg(long, value_enum, default_value_t = PodIdentityMode::Agent)]
    pub pod_identity_mode: PodIdentityMode,

    /// The EKS cluster's name, for --pod-identity-mode=eks-auth.
    #[arg(long, required_if_eq("pod_identity_mode", "eks-auth"))]
    pub cluster_name: Option<String>,

    /// Credentials kept in the cache (one per pod, method and region); 0
    /// disables the cache.
    #[arg(long, default_value_t = crate::identity::cache::DEFAULT_CAPACITY)]
    pub credential_cache_size: u64,

    /// Deadline of one mount (kubelet gives up after about two minutes).
    #[arg(long, default_value = "100s", value_parser = parse_go_duration)]
    pub mount_timeout: Duration,

    /// How long in-flight mounts may run after SIGTERM.
    #[arg(long, default_value = "20s", value_parser = parse_go_duration)]
    pub shutdown_grace: Duration,

    /// AWS calls in flight at once for one mount in one region (both stores).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_concurrent_fetches_per_mount: u32,

    /// AWS calls in flight at once in the whole process: the stores', STS's
    /// and EKS Auth's together.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_concurrent_fetches: u32,

    /// Most bytes of file content one mount may hold (fetched values, decoded
    /// values, jmesPath results, path matches), in bytes or with a Ki, Mi or
    /// Gi suffix. Default 8Mi; with --driver-writes-secrets, 4Mi less 64Ki
    /// (what the driver reads in one response).
    #[arg(long, value_parser = parse_bytes)]
    pub max_mount_bytes: Option<usize>,

    /// Most bytes of file content all mounts in flight may hold together; a
    /// mount waits for room within its deadline. Bytes or Ki, Mi, Gi.
    #[arg(long, default_value = "32Mi", value_parser = parse_bytes)]
    pub max_inflight_bytes: usize,

    /// Address of the HTTP endpoints /metrics, /healthz and /readyz; empty
    /// disables them.
    #[arg(long, default_value = "0.0.0.0:8989", value_parser = check_metrics_addr)]
    pub metrics_addr: String,

    /// Read unpinned Secrets Manager objects with BatchGetSecretValue (needs
    /// secretsmanager:BatchGetSecretValue on the pod's role).
    #[arg(long, default_value = "false", default_missing_value = "true", num_args = 0..=1, require_equals = true, value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub batch_get_secret_value: bool,

    /// How long one version check of a secret (DescribeSecret) or of a
    /// parameter (GetParameters), by full ARN, serves every pod of the node
    /// on rotation remounts; 0 checks on every remount.
    #[arg(long, default_value = "60s", value_parser = parse_go_duration)]
    pub rotation_check_window: Duration,
}

impl ServeArgs {
    /// The identity backend's settings.
    pub fn identity_settings(&self) -> Result<Settings, String> {
        let pod_identity = match self.pod_identity_mode {
            PodIdentityMode::Agent => {
                let attempt_timeout = match self.pod_identity_http_timeout {
                    // Go's http.Client reads 0 as "no timeout": the budget bounds it.
                    Some(t) if t.is_zero() => self.pod_identity_retry_budget,
                    Some(t) => t,
                    None => AgentConfig::DEFAULT_ATTEMPT_TIMEOUT,
                };
                PodIdentitySettings::Agent(AgentConfig {
                    ipv4_endpoint: self.pod_identity_endpoint_ipv4.clone(),
                    ipv6_endpoint: self.pod_identity_endpoint_ipv6.clone(),
                    attempt_timeout,
                    retry_budget: self.pod_identity_retry_budget,
                    ..AgentConfig::default()
                })
            }
            PodIdentityMode::EksAuth => PodIdentitySettings::EksAuth {
                cluster: self
                    .cluster_name
                    .clone()
                    .filter(|c| !c.is_empty())
                    .ok_or("ascp: --pod-identity-mode=eks-auth needs --cluster-name")?,
            },
        };
        Ok(Settings {
            qps: self.qps,
            burst: self.burst,
            pod_identity,
            cache_capacity: self.credential_cache_size,
        })
    }

    /// The AWS store factory's options.
    pub fn fetch_options(&self) -> FetchOptions {
        FetchOptions {
            max_concurrent_per_mount: self.max_concurrent_fetches_per_mount as usize,
            max_concurrent_global: self.max_concurrent_fetches as usize,
            batch_get_secret_value: self.batch_get_secret_value,
            rotation_check_window: self.rotation_check_window,
        }
    }
}

/// Where EKS Pod Identity credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PodIdentityMode {
    /// The node's EKS Pod Identity Agent (as ASCP).
    Agent,
    /// EKS Auth AssumeRoleForPodIdentity, signed with the provider's own
    /// credentials; for clusters without the agent add-on.
    EksAuth,
}

/// `ascp validate`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// A YAML file holding a SecretProviderClass (other documents are skipped).
    pub file: PathBuf,
    /// The primary region, to check ARN regions when the class names none.
    #[arg(long)]
    pub region: Option<String>,
    /// The default file mode, octal.
    #[arg(long, default_value = "0644", value_parser = parse_octal_mode)]
    pub permission: u32,
}

/// `ascp mount`.
#[derive(Debug, Clone, Args)]
pub struct MountArgs {
    /// The provider's socket.
    #[arg(long, default_value = "/var/run/secrets-store-csi-providers/aws.sock")]
    pub socket: PathBuf,
    /// A YAML file holding the SecretProviderClass.
    #[arg(long)]
    pub spc: PathBuf,
    /// The directory to mount into (created if missing).
    #[arg(long)]
    pub target: PathBuf,
    /// The pod's namespace.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// The pod's service account.
    #[arg(long, default_value = "default")]
    pub service_account: String,
    /// The pod's name.
    #[arg(long, default_value = "ascp-mount")]
    pub pod_name: String,
    /// A service-account token for an audience, read from a file
    /// (`sts.amazonaws.com=/path/token`); repeatable.
    #[arg(long = "token", value_parser = parse_token_arg)]
    pub tokens: Vec<(String, PathBuf)>,
    /// The default file mode, octal.
    #[arg(long, default_value = "0644", value_parser = parse_octal_mode)]
    pub permission: u32,
    /// What is mounted now (`file=version`), as a rotation remount sends; repeatable.
    #[arg(long = "current-version", value_parser = parse_pair)]
    pub current_versions: Vec<(String, String)>,
    /// How long to wait for the provider.
    #[arg(long, default_value = "120s", value_parser = parse_go_duration)]
    pub timeout: Duration,
}

/// `ascp doctor`.
#[derive(Debug, Clone, Args)]
#[command(
    after_help = "It reads Kubernetes objects with the kubeconfig (KUBECONFIG, else the in-cluster \
service account) and AWS metadata with the standard AWS credentials chain: IAM GetRole and \
SimulatePrincipalPolicy, EKS ListPodIdentityAssociations, Secrets Manager DescribeSecret, SSM \
DescribeParameters. It never reads a secret or parameter value. Exit code 0 only when no check FAILs."
)]
pub struct DoctorArgs {
    /// The pod's namespace (or the class's and the ServiceAccount's).
    #[arg(long)]
    pub namespace: String,
    /// The pod whose secrets do not mount.
    #[arg(long, conflicts_with = "service_account")]
    pub pod: Option<String>,
    /// The SecretProviderClass to check: without --pod, with
    /// --service-account; with --pod, which of its classes (default: its
    /// first).
    #[arg(long, required_unless_present = "pod")]
    pub spc: Option<String>,
    /// Without --pod: the ServiceAccount the pods will run as.
    #[arg(long, required_unless_present = "pod")]
    pub service_account: Option<String>,
    /// The EKS cluster's name, to look up EKS Pod Identity associations.
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// The cluster's OIDC issuer URL, for IRSA trust policies; default: the
    /// API server's /.well-known/openid-configuration.
    #[arg(long)]
    pub oidc_issuer: Option<String>,
    /// Report format.
    #[arg(long, value_enum, default_value_t = DoctorOutput::Table)]
    pub output: DoctorOutput,
}

/// `ascp doctor --output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorOutput {
    /// One line per check.
    Table,
    /// One JSON document.
    Json,
}

/// Go's `strconv.ParseBool`, as ASCP's flags accept.
pub fn parse_go_bool(v: &str) -> Result<bool, String> {
    crate::spc::parse_go_bool(v)
        .ok_or_else(|| format!("{v:?} is not a boolean (true, false, 1, 0, t, f)"))
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers with units
/// `ns`, `us`, `µs`, `ms`, `s`, `m`, `h` (`300ms`, `1.5h`, `2h45m`); `0`
/// alone is zero. Negative durations are refused.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration (e.g. 250ms, 2s, 1m30s)");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// A size in bytes: digits, optionally followed by `Ki`, `Mi` or `Gi`
/// (powers of 1024, as Kubernetes quantities); from 1 byte to 4Gi less one.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let bad = || format!("{s:?} is not a size in bytes from 1 to 4Gi (e.g. 1048576, 512Ki, 8Mi)");
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let scale: u64 = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return Err(bad()),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(scale)
        .filter(|b| (1..=u64::from(u32::MAX)).contains(b))
        .map(|b| b as usize)
        .ok_or_else(bad)
}

fn check_metrics_addr(s: &str) -> Result<String, String> {
    if s.is_empty() || s.parse::<std::net::SocketAddr>().is_ok() {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not IP:PORT (e.g. 0.0.0.0:8989), or empty to disable"
        ))
    }
}

fn parse_octal_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{s:?} is not an octal file mode (e.g. 0644)"))
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

fn parse_token_arg(s: &str) -> Result<(String, PathBuf), String> {
    parse_pair(s).map(|(a, p)| (a, PathBuf::from(p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(
            parse_go_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_go_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "2", "s", "-1s", "2x", "1..5s", "ms"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn doctor_needs_a_pod_or_a_class_and_service_account() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from([&["ascp", "doctor", "--namespace", "app"], args].concat())
        };
        let Some(Command::Doctor(d)) = parse(&["--pod", "web"]).unwrap().command else {
            panic!("not doctor");
        };
        assert_eq!(
            (d.pod.as_deref(), d.output),
            (Some("web"), DoctorOutput::Table)
        );
        let Some(Command::Doctor(d)) =
            parse(&["--spc", "c", "--service-account", "sa", "--output", "json"])
                .unwrap()
                .command
        else {
            panic!("not doctor");
        };
        assert_eq!(d.service_account.as_deref(), Some("sa"));
        assert_eq!(d.output, DoctorOutput::Json);
        assert!(parse(&["--pod", "web", "--spc", "other"]).is_ok());
        for bad in [
            &[][..],
            &["--spc", "c"],
            &["--service-account", "sa"],
            &["--pod", "web", "--service-account", "sa"],
            &["--pod", "web", "--output", "yaml"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn helm_chart_forms_parse() {
        let cli = Cli::try_parse_from([
            "ascp",
            "--provider-volume=/etc/kubernetes/secrets-store-csi-providers",
            "--driver-writes-secrets=true",
            "--qps=20",
            "--burst=40",
            "--eks-addon-version=v1.2.3-eksbuild.1",
            "--pod-identity-http-timeout=250ms",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert!(cli.serve.driver_writes_secrets);
        assert_eq!(cli.serve.qps, 20);
        assert_eq!(cli.serve.burst, 40);
        assert_eq!(
            cli.serve.pod_identity_http_timeout,
            Some(Duration::from_millis(250))
        );
        let cli = Cli::try_parse_from(["ascp", "--driver-writes-secrets"]).unwrap();
        assert!(cli.serve.driver_writes_secrets);
        let cli = Cli::try_parse_from(["ascp", "--driver-writes-secrets=false"]).unwrap();
        assert!(!cli.serve.driver_writes_secrets);
        let cli = Cli::try_parse_from(["ascp"]).unwrap();
        assert!(!cli.serve.driver_writes_secrets);
        assert_eq!(cli.serve.qps, 5);
        assert_eq!(cli.serve.burst, 10);
        assert!(Cli::try_parse_from(["ascp", "--driver-writes-secrets=maybe"]).is_err());
        assert!(Cli::try_parse_from(["ascp", "--pod-identity-http-timeout=soon"]).is_err());
    }

    #[test]
    fn byte_sizes_parse() {
        assert_eq!(parse_bytes("1048576"), Ok(1 << 20));
        assert_eq!(parse_bytes("512Ki"), Ok(512 << 10));
        assert_eq!(parse_bytes("8Mi"), Ok(8 << 20));
        assert_eq!(parse_bytes("3Gi"), Ok(3 << 30));
        for bad in [
            "",
            "0",
            "Mi",
            "8M",
            "8 Mi",
            "-1",
            "4Gi",
            "1.5Mi",
            "99999999999999999999",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        let cli = Cli::try_parse_from(["ascp"]).unwrap();
        assert_eq!(cli.serve.max_mount_bytes, None);
        assert_eq!(cli.serve.max_inflight_bytes, 32 << 20);
        let cli =
            Cli::try_parse_from(["ascp", "--max-mount-bytes=2Mi", "--max-inflight-bytes=16Mi"])
                .unwrap();
        assert_eq!(cli.serve.max_mount_bytes, Some(2 << 20));
        assert_eq!(cli.serve.max_inflight_bytes, 16 << 20);
        assert!(Cli::try_parse_from(["ascp", "--max-inflight-bytes=lots"]).is_err());
    }

    #[test]
    fn identity_flags_parse() {
        let cli = Cli::try_parse_from(["ascp"]).unwrap();
        assert_eq!(cli.serve.pod_identity_mode, PodIdentityMode::Agent);
        assert_eq!(
            cli.serve.pod_identity_endpoint_ipv4,
            "http://169.254.170.23/v1/credentials"
        );
        assert_eq!(
            cli.serve.pod_identity_endpoint_ipv6,
            "http://[fd00:ec2::23]/v1/credentials"
        );
        assert_eq!(cli.serve.credential_cache_size, 10_000);
        let cli = Cli::try_parse_from([
            "ascp",
            "--pod-identity-mode=eks-auth",
            "--cluster-name=prod",
            "--pod-identity-endpoint-ipv4=http://127.0.0.1:1/v1/credentials",
            "--pod-identity-retry-budget=2s",
            "--credential-cache-size=5",
        ])
        .unwrap();
        assert_eq!(cli.serve.pod_identity_mode, PodIdentityMode::EksAuth);
        assert_eq!(cli.serve.cluster_name.as_deref(), Some("prod"));
        assert_eq!(cli.serve.pod_identity_retry_budget, Duration::from_secs(2));
        assert_eq!(cli.serve.credential_cache_size, 5);
        assert!(Cli::try_parse_from(["ascp", "--pod-identity-mode=eks-auth"]).is_err());
        assert!(Cli::try_parse_from(["ascp", "--pod-identity-mode=imds"]).is_err());
    }
}
