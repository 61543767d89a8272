//! Load benchmark of the real provider: what a node's start-up burst of
//! mounts costs in latency, CPU and memory.
//!
//! Three processes, as in production:
//! - the `ascp` release binary, serving on a temporary socket;
//! - a fast AWS endpoint and stub Kubernetes API (this program again, with
//!   the hidden `--serve-endpoint` flag): STS AssumeRoleWithWebIdentity,
//!   Secrets Manager GetSecretValue (each after an added delay) and the
//!   ServiceAccount GET, on one loopback port, hyper on two threads;
//! - the driver (this program): K concurrent Mounts over ONE gRPC connection
//!   (authority `localhost`, as the driver's grpc-go dials the socket).
//!
//! Every mount is a first mount (no current versions) of S secrets
//! (default 5) for one of 10 IRSA service accounts; targets live on tmpfs
//! (`/dev/shm`) as the driver's do. Modes:
//! - `burst`: for each K, a fresh provider, one warm-up mount per service
//!   account (credentials cached, so a mount is S GetSecretValue calls and
//!   nothing else), then `--runs` bursts of K concurrent mounts: p50/p99 (the
//!   median over the runs), failures, the provider's CPU per mount from
//!   `/proc/<pid>/stat` (utime and stime), its idle VmRSS, VmHWM after the
//!   bursts and VmRSS after `--idle-secs` of idleness; also VmRSS and VmHWM
//!   right after each burst (each run mounts new targets that stay mounted,
//!   so `--runs 6` shows what 1 to 6 bursts of new pods leave);
//! - `cold`: mounts whose token the provider has never seen, so each also
//!   calls STS (cold credentials): CPU per mount and latency;
//! - `wide`: one mount of `--wide-secrets` (50) secrets at `--wide-delay-ms`
//!   (50) per call, one after another: median latency and round trips
//!   (latency / delay);
//! - `sdk`: no provider; this process makes the same GetSecretValue calls
//!   through the AWS SDK alone (the last K × S per run, 200 in flight, one
//!   thread) and reads its own CPU: the SDK's floor under a mount's cost.
//!
//! The endpoint counts the calls it answers; each section checks them, so a
//! figure never silently includes STS calls or retries it should not.
//!
//! Run (release builds only; figures depend on the machine, so quote them
//! with its load):
//!
//! ```sh
//! cargo build --release --bin ascp --example load_bench
//! target/release/examples/load_bench                       # all modes
//! target/release/examples/load_bench --mode burst --k 500 --idle-secs 120
//! target/release/examples/load_bench --mode wide -- --max-concurrent-fetches-per-mount=50
//! target/release/examples/load_bench --env MALLOC_ARENA_MAX=2 --mode burst
//! ```
//!
//! Arguments after `--` go to `ascp`. `--wrap "valgrind --tool=callgrind"`
//! runs the provider under a tool (the process keeps its pid); with
//! `--callgrind` the counters are zeroed after the warm-up and dumped after
//! the measured mounts (`callgrind_control`), so a dump holds mounts only.

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ascp::proto::MountRequest;
use ascp::proto::csi_driver_provider_client::CsiDriverProviderClient;
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixStream};
use tonic::transport::{Channel, Endpoint};

const REGION: &str = "us-east-1";
const NAMESPACE: &str = "bench";
const SERVICE_ACCOUNTS: usize = 10;
/// Linux reports utime and stime in USER_HZ ticks, 100 a second on every
/// architecture the provider ships for.
const TICKS_PER_SECOND: f64 = 100.0;
/// Longer than any mount should take here; a slower one is a failure.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(120);
/// A provider under valgrind takes tens of seconds to start.
const START_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Parser, Debug)]
#[command(about = "Load benchmark of the ascp binary (see the source's header)")]
struct Args {
    /// The provider binary; default: `ascp` in the directory above this
    /// example's (target/release/ascp).
    #[arg(long)]
    ascp: Option<PathBuf>,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// Concurrent mounts per burst (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [50, 200, 500])]
    k: Vec<usize>,
    /// Bursts per K (the median of their p50s and p99s is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Delay added to every AWS answer, in milliseconds.
    #[arg(long, default_value_t = 20)]
    delay_ms: u64,
    /// Secrets per mount in `burst` and `cold`.
    #[arg(long, default_value_t = 5)]
    secrets: usize,
    /// Bytes of each secret's value.
    #[arg(long, default_value_t = 128)]
    value_bytes: usize,
    /// Idle seconds after the bursts before the final VmRSS is read.
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    /// Concurrent mounts per run in `cold`.
    #[arg(long, default_value_t = 50)]
    cold_k: usize,
    /// Secrets of the `wide` mount.
    #[arg(long, default_value_t = 50)]
    wide_secrets: usize,
    /// Delay per AWS call in `wide`, in milliseconds.
    #[arg(long, default_value_t = 50)]
    wide_delay_ms: u64,
    /// Mounts measured in `wide` (one after another).
    #[arg(long, default_value_t = 5)]
    wide_runs: usize,
    /// Command line to run the provider under (split at spaces), e.g.
    /// "valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p".
    #[arg(long)]
    wrap: Option<String>,
    /// With a callgrind `--wrap`: zero the counters after the warm-up and
    /// dump them after the measured mounts.
    #[arg(long)]
    callgrind: bool,
    /// KEY=VALUE added to the provider's environment (repeatable).
    #[arg(long)]
    env: Vec<String>,
    /// In `sdk`: without stalled-stream protection and identity cache.
    #[arg(long)]
    sdk_lean: bool,
    /// Print the provider's log at the end.
    #[arg(long)]
    show_log: bool,
    /// Serve the AWS endpoint and Kubernetes stub (internal).
    #[arg(long, hide = true)]
    serve_endpoint: bool,
    /// Flags for `ascp`.
    #[arg(last = true)]
    ascp_args: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    All,
    Burst,
    Cold,
    Wide,
    Sdk,
}

fn main() {
    let args = Args::parse();
    if args.serve_endpoint {
        serve_endpoint();
        return;
    }
    // The driver's side is one task juggling many streams; one thread keeps
    // it from competing with the provider for the machine's cores.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(drive(args));
}

// ---------------------------------------------------------------------------
// The driver's side.

async fn drive(args: Args) {
    let ascp = common::provider_binary(args.ascp.clone(), "cargo build --release --bin ascp");
    let endpoint = EndpointProcess::start();
    let scratch = scratch_dir();
    let kubeconfig = scratch.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kubeconfig_text(&endpoint.url)).expect("write the kubeconfig");
    endpoint.set_value_bytes(args.value_bytes).await;
    let bench = Bench {
        ascp,
        endpoint,
        kubeconfig,
        targets: scratch.path().join("targets"),
        args,
    };
    println!(
        "ascp load benchmark: {}; {} cores; load average {}",
        bench.ascp.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    if !bench.args.ascp_args.is_empty() {
        println!("provider flags: {}", bench.args.ascp_args.join(" "));
    }
    if !bench.args.env.is_empty() {
        println!("provider environment: {}", bench.args.env.join(" "));
    }
    let mode = bench.args.mode;
    if matches!(mode, Mode::All | Mode::Burst) {
        bench.bursts().await;
    }
    if matches!(mode, Mode::All | Mode::Cold) {
        bench.cold().await;
    }
    if matches!(mode, Mode::All | Mode::Wide) {
        bench.wide().await;
    }
    if matches!(mode, Mode::All | Mode::Sdk) {
        bench.sdk_floor().await;
    }
    drop(scratch);
}

struct Bench {
    ascp: PathBuf,
    endpoint: EndpointProcess,
    kubeconfig: PathBuf,
    targets: PathBuf,
    args: Args,
}

/// What a set of mounts cost, from the provider's and the endpoint's side.
struct Measured {
    runs: Vec<RunFigures>,
    /// User and system time.
    cpu_ms_per_mount: (f64, f64),
    calls: Calls,
}

struct RunFigures {
    p50: Duration,
    p99: Duration,
    failures: usize,
    first_error: Option<String>,
    /// The provider's memory right after the run's burst.
    memory: Memory,
}

impl Bench {
    async fn bursts(&self) {
        println!(
            "\n## burst: K concurrent {}-secret IRSA mounts, credentials cached, {} ms per AWS call, median of {} runs",
            self.args.secrets, self.args.delay_ms, self.args.runs
        );
        println!(
            "| K | p50 | p99 | failures | CPU per mount (user + system) | idle VmRSS | VmHWM | VmRSS {} s after | calls per mount | load avg |",
            self.args.idle_secs
        );
        println!("|---|---|---|---|---|---|---|---|---|---|");
        for &k in &self.args.k {
            let (provider, idle, measured) = self.run_bursts(k, |_, i| warm_token(i)).await;
            let after = provider.memory();
            tokio::time::sleep(Duration::from_secs(self.args.idle_secs)).await;
            let rested = provider.memory();
            let memory = [
                format!("{} ({} anon)", mib(idle.rss_kib), mib(idle.anon_kib)),
                mib(after.hwm_kib),
                format!("{} ({} anon)", mib(rested.rss_kib), mib(rested.anon_kib)),
            ];
            self.report(k, &measured, &memory, provider).await;
        }
    }

    async fn cold(&self) {
        let k = self.args.cold_k;
        println!(
            "\n## cold: {k} concurrent first mounts with tokens never seen (STS + {} GetSecretValue each), {} ms per AWS call, median of {} runs",
            self.args.secrets, self.args.delay_ms, self.args.runs
        );
        let (provider, _, measured) = self
            .run_bursts(k, |run, i| format!("bench-token-cold-{run}-{i}"))
            .await;
        println!(
            "| K | p50 | p99 | failures | CPU per mount (user + system) | calls per mount | load avg |"
        );
        println!("|---|---|---|---|---|---|---|");
        self.report(k, &measured, &[], provider).await;
    }

    async fn wide(&self) {
        let n = self.args.wide_secrets;
        let delay = self.args.wide_delay_ms;
        println!(
            "\n## wide: one {n}-secret mount at {delay} ms per AWS call, {} mounts one after another",
            self.args.wide_runs
        );
        self.endpoint.set_delay(delay).await;
        let provider = self.provider().await;
        self.warm_up(&provider, n).await;
        let mut times = Vec::new();
        let mut failures = 0;
        for run in 0..self.args.wide_runs {
            let (elapsed, result) = timed_mount(
                provider.client(),
                self.request(0, n, &warm_token(0), &format!("run-{run}")),
            )
            .await;
            match result {
                Ok(()) => times.push(elapsed),
                Err(e) => {
                    failures += 1;
                    println!("  mount failed: {e}");
                }
            }
        }
        times.sort();
        let median = percentile(&times, 50.0);
        println!(
            "| secrets | delay | median latency | round trips (median / delay) | failures | load avg |"
        );
        println!("|---|---|---|---|---|---|");
        println!(
            "| {n} | {delay} ms | {} | {:.2} | {failures} | {} |",
            ms(median),
            median.as_secs_f64() * 1000.0 / delay.max(1) as f64,
            load_average()
        );
        provider.stop(self.args.show_log).await;
        self.endpoint.set_delay(self.args.delay_ms).await;
    }

    /// The SDK's own cost, without the provider: this process makes the
    /// calls of `--runs` bursts of K=`--k`'s last value × `--secrets`
    /// GetSecretValue through one SDK client (static credentials, the
    /// provider's retry, timeout and connection pool settings), as many in
    /// flight as the provider's default process-wide bound, on one thread,
    /// and reads its own CPU.
    async fn sdk_floor(&self) {
        use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
        const IN_FLIGHT: usize = 200;
        let k = self.args.k.last().copied().unwrap_or(500);
        let calls_per_run = k * self.args.secrets;
        println!(
            "\n## sdk: the SDK alone, {calls_per_run} GetSecretValue per run ({IN_FLIGHT} in flight), {} ms per AWS call, {} runs, one thread",
            self.args.delay_ms, self.args.runs
        );
        self.endpoint.set_delay(self.args.delay_ms).await;
        let http = aws_smithy_http_client::Builder::new()
            .pool_max_idle_per_host(IN_FLIGHT)
            .pool_idle_timeout(Duration::from_secs(20))
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .build_https();
        // The provider's settings: standard retries, its three timeouts.
        let mut config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::standard())
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .operation_timeout(Duration::from_secs(30))
                    .build(),
            )
            .region(aws_config::Region::new(REGION))
            .endpoint_url(&self.endpoint.url)
            .credentials_provider(aws_credential_types::Credentials::new(
                "AKIDBENCH",
                "bench-secret",
                Some("bench-session".into()),
                None,
                "bench",
            ))
            .http_client(http);
        if self.args.sdk_lean {
            config = config
                .stalled_stream_protection(
                    aws_sdk_secretsmanager::config::StalledStreamProtectionConfig::disabled(),
                )
                .identity_cache(aws_sdk_secretsmanager::config::IdentityCache::no_cache());
        }
        let client = aws_sdk_secretsmanager::Client::from_conf(config.build());
        let one = |i: usize| {
            let client = client.clone();
            async move {
                client
                    .get_secret_value()
                    .secret_id(format!("bench/secret-{}", i % 50))
                    .send()
                    .await
                    .is_ok()
            }
        };
        // Warm: connections open, identity cached.
        let warm: Vec<bool> = futures::stream::iter(0..IN_FLIGHT)
            .map(one)
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        assert!(warm.iter().all(|ok| *ok), "the SDK's warm-up calls failed");
        let before_calls = self.endpoint.calls().await;
        let before = own_cpu();
        let mut failures = 0;
        for _ in 0..self.args.runs {
            let results: Vec<bool> = futures::stream::iter(0..calls_per_run)
                .map(one)
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
            failures += results.iter().filter(|ok| !**ok).count();
        }
        let (user, system) = own_cpu().minus(before);
        let calls = self.endpoint.calls().await.minus(&before_calls);
        let n = (calls_per_run * self.args.runs) as f64;
        println!(
            "| calls | failures | CPU per call (user + system) | CPU per {} calls | load avg |",
            self.args.secrets
        );
        println!("|---|---|---|---|---|");
        println!(
            "| {} | {failures} | {:.3} ms ({:.3} + {:.3}) | {:.2} ms | {} |",
            calls.get_secret_value,
            (user + system) / n,
            user / n,
            system / n,
            (user + system) / n * self.args.secrets as f64,
            load_average()
        );
    }

    /// One mount per service account with its warm token, so that the
    /// measured mounts find credentials (and the ServiceAccount) cached.
    async fn warm_up(&self, provider: &Provider, secrets: usize) {
        let requests = (0..SERVICE_ACCOUNTS)
            .map(|i| self.request(i, secrets, &warm_token(i), "warm-up"))
            .collect();
        let (_, failures) = burst(provider.client(), requests).await;
        if let Some(e) = failures.first() {
            panic!(
                "warm-up mount failed: {e}; the provider's log:\n{}",
                provider.log()
            );
        }
    }

    /// A fresh provider, warmed up, then `--runs` bursts of `k` mounts,
    /// mount `i` of run `run` with token `token(run, i)`. Returns the
    /// provider (still running), its memory before the warm-up, and the
    /// figures.
    async fn run_bursts(
        &self,
        k: usize,
        token: impl Fn(usize, usize) -> String,
    ) -> (Provider, Memory, Measured) {
        self.endpoint.set_delay(self.args.delay_ms).await;
        let provider = self.provider().await;
        let idle = provider.memory();
        self.warm_up(&provider, self.args.secrets).await;
        let measured = self
            .measure(&provider, self.args.runs, |run| {
                (0..k)
                    .map(|i| {
                        let dir = format!("run-{run}");
                        self.request(i, self.args.secrets, &token(run, i), &dir)
                    })
                    .collect()
            })
            .await;
        (provider, idle, measured)
    }

    /// Runs `runs` bursts of `requests(run)`, reading the provider's CPU
    /// and the endpoint's call counts around them.
    async fn measure(
        &self,
        provider: &Provider,
        runs: usize,
        requests: impl Fn(usize) -> Vec<MountRequest>,
    ) -> Measured {
        if self.args.callgrind {
            callgrind_control("-z", provider.pid);
        }
        let calls_before = self.endpoint.calls().await;
        let cpu_before = provider.cpu();
        let mut figures = Vec::new();
        let mut mounts = 0;
        for run in 0..runs {
            let batch = requests(run);
            mounts += batch.len();
            let (mut times, failures) = burst(provider.client(), batch).await;
            times.sort();
            figures.push(RunFigures {
                p50: percentile(&times, 50.0),
                p99: percentile(&times, 99.0),
                failures: failures.len(),
                first_error: failures.into_iter().next(),
                memory: provider.memory(),
            });
        }
        let (user_ms, system_ms) = provider.cpu().minus(cpu_before);
        let calls = self.endpoint.calls().await.minus(&calls_before);
        if self.args.callgrind {
            callgrind_control("-d", provider.pid);
        }
        Measured {
            runs: figures,
            cpu_ms_per_mount: (
                user_ms / mounts.max(1) as f64,
                system_ms / mounts.max(1) as f64,
            ),
            calls,
        }
    }

    /// Prints a table row (K, latency, failures, CPU, then `middle`, calls
    /// per mount and the load) and each run's figures; stops the provider.
    async fn report(&self, k: usize, measured: &Measured, middle: &[String], provider: Provider) {
        let mut row = measured.head(k);
        for cell in middle {
            row.push_str(&format!(" {cell} |"));
        }
        let mounts = (k * self.args.runs) as f64;
        println!(
            "{row} {} | {} |",
            measured.calls.per_mount(mounts),
            load_average()
        );
        self.details(measured);
        provider.stop(self.args.show_log).await;
    }

    fn details(&self, measured: &Measured) {
        let runs: Vec<String> = measured
            .runs
            .iter()
            .map(|r| format!("{}/{}", ms(r.p50), ms(r.p99)))
            .collect();
        println!("  runs (p50/p99): {}", runs.join(", "));
        // Each run mounts new targets, so this is the memory after 1, 2, ...
        // bursts of new pods whose targets stay mounted.
        let memory: Vec<String> = measured
            .runs
            .iter()
            .map(|r| {
                format!(
                    "{} ({} anon) / {}",
                    mib(r.memory.rss_kib),
                    mib(r.memory.anon_kib),
                    mib(r.memory.hwm_kib)
                )
            })
            .collect();
        println!(
            "  after each run, VmRSS (anonymous) / VmHWM: {}",
            memory.join(", ")
        );
        if let Some(e) = measured.runs.iter().find_map(|r| r.first_error.as_ref()) {
            println!("  first failure: {e}");
        }
    }

    /// The Mount the driver sends for pod `i` (service account `i % 10`).
    fn request(&self, i: usize, secrets: usize, token: &str, dir: &str) -> MountRequest {
        let sa = format!("sa-{}", i % SERVICE_ACCOUNTS);
        let objects: String = (0..secrets)
            .map(|s| {
                format!(
                    "- objectName: \"app-{}/secret-{s}\"\n  objectType: secretsmanager\n",
                    i % SERVICE_ACCOUNTS
                )
            })
            .collect();
        let expires =
            humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600))
                .to_string();
        let tokens = serde_json::json!({
            "sts.amazonaws.com": {"token": token, "expirationTimestamp": expires},
        });
        let attributes: BTreeMap<&str, String> = [
            ("csi.storage.k8s.io/pod.name", format!("pod-{i}")),
            ("csi.storage.k8s.io/pod.namespace", NAMESPACE.to_owned()),
            (
                "csi.storage.k8s.io/pod.uid",
                format!("00000000-0000-4000-8000-{i:012}"),
            ),
            ("csi.storage.k8s.io/serviceAccount.name", sa),
            (
                "csi.storage.k8s.io/serviceAccount.tokens",
                tokens.to_string(),
            ),
            ("csi.storage.k8s.io/ephemeral", "false".to_owned()),
            (
                "secretProviderClass",
                format!("bench-{}", i % SERVICE_ACCOUNTS),
            ),
            ("region", REGION.to_owned()),
            ("objects", objects),
        ]
        .into_iter()
        .collect();
        // Each run (and the warm-up) mounts into fresh directories, as new
        // pods do: a directory mounted before would make the mount a
        // rotation remount with records (shared version checks).
        let target = self.targets.join(dir).join(format!("pod-{i}"));
        std::fs::create_dir_all(&target).expect("create a target directory");
        MountRequest {
            attributes: serde_json::to_string(&attributes).expect("attributes as JSON"),
            secrets: "{}".into(),
            target_path: target.display().to_string(),
            permission: "420".into(),
            current_object_version: Vec::new(),
        }
    }

    /// A fresh provider on a temporary socket.
    async fn provider(&self) -> Provider {
        // Old targets go: they hold nothing worth keeping and the tmpfs is RAM.
        let _ = std::fs::remove_dir_all(&self.targets);
        Provider::start(self).await
    }
}

/// The token of service account `i % 10` for its warm (cached) mounts.
fn warm_token(i: usize) -> String {
    format!("bench-token-sa-{}", i % SERVICE_ACCOUNTS)
}

impl Measured {
    /// The first cells of a table row: K, then the median over runs of each
    /// run's p50 and p99, all failures and the CPU per mount.
    fn head(&self, k: usize) -> String {
        let row = Row::from(self);
        let (user, system) = self.cpu_ms_per_mount;
        format!(
            "| {k} | {} | {} | {} | {:.2} ms ({user:.2} + {system:.2}) |",
            ms(row.p50),
            ms(row.p99),
            row.failures,
            user + system,
        )
    }
}

/// The median over runs of each run's p50 and p99, and all failures.
struct Row {
    p50: Duration,
    p99: Duration,
    failures: usize,
}

impl From<&Measured> for Row {
    fn from(m: &Measured) -> Self {
        let mut p50: Vec<Duration> = m.runs.iter().map(|r| r.p50).collect();
        let mut p99: Vec<Duration> = m.runs.iter().map(|r| r.p99).collect();
        p50.sort();
        p99.sort();
        Row {
            p50: percentile(&p50, 50.0),
            p99: percentile(&p99, 50.0),
            failures: m.runs.iter().map(|r| r.failures).sum(),
        }
    }
}

/// Sends every request at once on one connection; returns the latencies of
/// the successful mounts and the failures' messages.
async fn burst(
    client: CsiDriverProviderClient<Channel>,
    requests: Vec<MountRequest>,
) -> (Vec<Duration>, Vec<String>) {
    let answers = futures::future::join_all(
        requests
            .into_iter()
            .map(|request| timed_mount(client.clone(), request)),
    )
    .await;
    let mut times = Vec::new();
    let mut failures = Vec::new();
    for (elapsed, result) in answers {
        match result {
            Ok(()) => times.push(elapsed),
            Err(e) => failures.push(e),
        }
    }
    (times, failures)
}

async fn timed_mount(
    mut client: CsiDriverProviderClient<Channel>,
    request: MountRequest,
) -> (Duration, Result<(), String>) {
    let started = Instant::now();
    let result = client
        .mount(request)
        .await
        .map(|_| ())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()));
    (started.elapsed(), result)
}

/// A process's CPU time so far, in ticks.
#[derive(Clone, Copy)]
struct Cpu {
    user: u64,
    system: u64,
}

impl Cpu {
    fn of(stat_path: &str) -> Cpu {
        let stat =
            std::fs::read_to_string(stat_path).unwrap_or_else(|e| panic!("read {stat_path}: {e}"));
        // Fields after the command name, which is in parentheses and may
        // hold spaces: state is the first, utime the 12th, stime the 13th.
        let rest = &stat[stat.rfind(')').expect("a stat line") + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| fields[i].parse::<u64>().expect("a tick count");
        Cpu {
            user: field(11),
            system: field(12),
        }
    }

    /// Milliseconds of user and system time since `before`.
    fn minus(self, before: Cpu) -> (f64, f64) {
        let ms = |ticks: u64| ticks as f64 * 1000.0 / TICKS_PER_SECOND;
        (ms(self.user - before.user), ms(self.system - before.system))
    }
}

/// This process's CPU time.
fn own_cpu() -> Cpu {
    Cpu::of("/proc/self/stat")
}

/// The nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Where targets go: tmpfs when there is one (the driver mounts a tmpfs on
/// every target), else the temporary directory.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("ascp-load-bench-");
        b
    };
    if shm.is_dir()
        && let Ok(dir) = builder.tempdir_in(shm)
    {
        return dir;
    }
    builder.tempdir().expect("a temporary directory")
}

fn kubeconfig_text(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: bench\n  cluster:\n    server: {server}\ncontexts:\n- name: bench\n  context:\n    cluster: bench\n    user: bench\ncurrent-context: bench\nusers:\n- name: bench\n  user:\n    token: bench-kube-token\n"
    )
}

fn callgrind_control(action: &str, pid: u32) {
    let status = Command::new("callgrind_control")
        .args([action, &pid.to_string()])
        .stdout(Stdio::null())
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!("callgrind_control {action} {pid} failed: {status:?}");
    }
}

// ---------------------------------------------------------------------------
// The provider process.

struct Provider {
    child: Child,
    pid: u32,
    client: CsiDriverProviderClient<Channel>,
    dir: tempfile::TempDir,
}

/// Memory figures from `/proc/<pid>/status`, in KiB.
#[derive(Clone, Copy)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
    /// The anonymous part of `rss_kib`; the rest is mapped files (the
    /// binary's code, mostly).
    anon_kib: u64,
}

impl Provider {
    async fn start(bench: &Bench) -> Provider {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let volume = dir.path().join("provider");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&volume).expect("create the provider volume");
        std::fs::create_dir_all(&home).expect("create HOME");
        let log = std::fs::File::create(dir.path().join("ascp.log")).expect("create the log");
        let mut command = match &bench.args.wrap {
            Some(wrap) => {
                let mut words = wrap.split_whitespace();
                let mut c = Command::new(words.next().expect("a --wrap command"));
                c.args(words).arg(&bench.ascp);
                c
            }
            None => Command::new(&bench.ascp),
        };
        command
            .arg(format!("--provider-volume={}", volume.display()))
            .arg("--metrics-addr=")
            .args(&bench.args.ascp_args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("KUBECONFIG", &bench.kubeconfig)
            .env("AWS_ENDPOINT_URL", &bench.endpoint.url)
            .env("AWS_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        for pair in &bench.args.env {
            let (key, value) = pair.split_once('=').expect("--env KEY=VALUE");
            command.env(key, value);
        }
        let child = command.spawn().expect("start the provider");
        let pid = child.id();
        let socket = volume.join("aws.sock");
        let started = Instant::now();
        let client = loop {
            if socket.exists()
                && let Ok(channel) = connect(&socket).await
            {
                let mut client = CsiDriverProviderClient::new(channel);
                if client
                    .version(ascp::proto::VersionRequest {
                        version: "v1alpha1".into(),
                    })
                    .await
                    .is_ok()
                {
                    break client;
                }
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "the provider did not answer; its log:\n{}",
                std::fs::read_to_string(dir.path().join("ascp.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Provider {
            child,
            pid,
            client,
            dir,
        }
    }

    /// A client on the provider's one connection.
    fn client(&self) -> CsiDriverProviderClient<Channel> {
        self.client.clone()
    }

    /// utime and stime of every thread, live or gone.
    fn cpu(&self) -> Cpu {
        Cpu::of(&format!("/proc/{}/stat", self.pid))
    }

    fn memory(&self) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("read the provider's /proc/<pid>/status");
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Memory {
            rss_kib: kib("VmRSS:"),
            hwm_kib: kib("VmHWM:"),
            anon_kib: kib("RssAnon:"),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ascp.log")).unwrap_or_default()
    }

    /// SIGTERM (so a tool like callgrind writes its output), then waits.
    async fn stop(mut self, show_log: bool) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if show_log {
            println!("--- the provider's log ---\n{}", self.log());
        }
    }
}

/// One gRPC connection on the unix socket, with the authority the driver
/// uses.
async fn connect(socket: &Path) -> Result<Channel, tonic::transport::Error> {
    let socket = socket.to_owned();
    Endpoint::from_static("http://localhost")
        .timeout(MOUNT_TIMEOUT)
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move { UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
}

// ---------------------------------------------------------------------------
// The endpoint process: AWS and the Kubernetes API.

/// The endpoint child process; it exits when its stdin closes.
struct EndpointProcess {
    child: Child,
    url: String,
}

/// Calls the endpoint answered, by kind.
#[derive(Debug, Default, Clone)]
struct Calls {
    get_secret_value: u64,
    sts: u64,
    kube: u64,
    other: u64,
}

impl Calls {
    fn minus(&self, before: &Calls) -> Calls {
        Calls {
            get_secret_value: self.get_secret_value - before.get_secret_value,
            sts: self.sts - before.sts,
            kube: self.kube - before.kube,
            other: self.other - before.other,
        }
    }

    fn per_mount(&self, mounts: f64) -> String {
        let mut s = format!(
            "{:.2} GetSecretValue, {:.2} STS",
            self.get_secret_value as f64 / mounts,
            self.sts as f64 / mounts
        );
        if self.kube > 0 || self.other > 0 {
            s.push_str(&format!(
                ", {} Kubernetes, {} other in all",
                self.kube, self.other
            ));
        }
        s
    }
}

impl EndpointProcess {
    fn start() -> EndpointProcess {
        let exe = std::env::current_exe().expect("this program's path");
        let mut child = Command::new(exe)
            .arg("--serve-endpoint")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the endpoint process");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("the endpoint's stdout"))
            .read_line(&mut line)
            .expect("read the endpoint's port");
        let url = format!("http://{}", line.trim());
        EndpointProcess { child, url }
    }

    /// One control request (HTTP/1.1, connection closed after it); the
    /// answer's body.
    async fn control(&self, query: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to the endpoint");
        let request =
            format!("GET /__control?{query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("send a control request");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .await
            .expect("read the control answer");
        answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default()
    }

    async fn set_delay(&self, ms: u64) {
        self.control(&format!("delay_ms={ms}")).await;
    }

    async fn set_value_bytes(&self, n: usize) {
        self.control(&format!("value_bytes={n}")).await;
    }

    async fn calls(&self) -> Calls {
        let text = self.control("").await;
        let n: Vec<u64> = text
            .split_whitespace()
            .map(|w| w.parse().expect("a count"))
            .collect();
        Calls {
            get_secret_value: n[0],
            sts: n[1],
            kube: n[2],
            other: n[3],
        }
    }
}

impl Drop for EndpointProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct EndpointState {
    delay_ms: AtomicU64,
    get_secret_value: AtomicU64,
    sts: AtomicU64,
    kube: AtomicU64,
    other: AtomicU64,
    value_bytes: AtomicU64,
}

fn serve_endpoint() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    // The parent holds our stdin: when it goes, so do we.
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{addr}").expect("write the port");
        stdout.flush().expect("flush the port");
        let state = Arc::new(EndpointState {
            value_bytes: AtomicU64::new(128),
            ..EndpointState::default()
        });
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(answer(&state, request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn answer(state: &EndpointState, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    if path == "/__control" {
        return control(state, request.uri().query().unwrap_or(""));
    }
    if let Some(rest) = path.strip_prefix("/api/v1/namespaces/") {
        state.kube.fetch_add(1, Ordering::Relaxed);
        return service_account(rest);
    }
    let (head, body) = request.into_parts();
    let target = head.headers.get("x-amz-target").map(|v| v.as_bytes());
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return reply(400, "text/plain", "unreadable body".to_owned());
    };
    let delay = state.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    match target {
        Some(b"secretsmanager.GetSecretValue") => {
            state.get_secret_value.fetch_add(1, Ordering::Relaxed);
            get_secret_value(&body, state.value_bytes.load(Ordering::Relaxed) as usize)
        }
        None if body.starts_with(b"Action=AssumeRoleWithWebIdentity") => {
            let n = state.sts.fetch_add(1, Ordering::Relaxed);
            assume_role_with_web_identity(n)
        }
        _ => {
            state.other.fetch_add(1, Ordering::Relaxed);
            reply(
                400,
                "application/x-amz-json-1.1",
                r#"{"__type":"UnknownOperationException","message":"the benchmark endpoint answers GetSecretValue and AssumeRoleWithWebIdentity"}"#.to_owned(),
            )
        }
    }
}

/// `delay_ms=N` sets the delay; every control answer is the counts.
fn control(state: &EndpointState, query: &str) -> Response<Full<Bytes>> {
    for pair in query.split('&') {
        if let Some(ms) = pair
            .strip_prefix("delay_ms")
            .and_then(|v| v.strip_prefix('='))
            && let Ok(ms) = ms.parse()
        {
            state.delay_ms.store(ms, Ordering::Relaxed);
        }
        if let Some(n) = pair
            .strip_prefix("value_bytes=")
            .and_then(|v| v.parse().ok())
        {
            state.value_bytes.store(n, Ordering::Relaxed);
        }
    }
    let counts = [
        &state.get_secret_value,
        &state.sts,
        &state.kube,
        &state.other,
    ]
    .map(|c| c.load(Ordering::Relaxed).to_string())
    .join(" ");
    reply(200, "text/plain", counts)
}

fn reply(status: u16, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// `GET <ns>/serviceaccounts/<name>`: every service account exists, with an
/// IRSA role of its own.
fn service_account(rest: &str) -> Response<Full<Bytes>> {
    let mut parts = rest.split('/');
    let (Some(namespace), Some("serviceaccounts"), Some(name), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return reply(
            404,
            "application/json",
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#.to_owned(),
        );
    };
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": format!("sa-{namespace}-{name}"),
            "annotations": {"eks.amazonaws.com/role-arn": format!("arn:aws:iam::123456789012:role/bench-{name}")},
        },
    });
    reply(200, "application/json", body.to_string())
}

#[derive(serde::Deserialize)]
struct GetSecretValueInput<'a> {
    #[serde(rename = "SecretId", borrow)]
    secret_id: std::borrow::Cow<'a, str>,
}

fn get_secret_value(body: &[u8], value_bytes: usize) -> Response<Full<Bytes>> {
    let Ok(input) = serde_json::from_slice::<GetSecretValueInput>(body) else {
        return reply(
            400,
            "application/x-amz-json-1.1",
            r#"{"__type":"ValidationException","message":"no SecretId"}"#.to_owned(),
        );
    };
    let id = input.secret_id;
    let mut value = format!("value-of-{id}-");
    while value.len() < value_bytes {
        value.push('x');
    }
    let answer = serde_json::json!({
        "ARN": format!("arn:aws:secretsmanager:{REGION}:123456789012:secret:{id}-AbCdEf"),
        "Name": id,
        "VersionId": "00000000-0000-4000-8000-000000000001",
        "SecretString": value,
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1_700_000_000.0,
    });
    reply(200, "application/x-amz-json-1.1", answer.to_string())
}

fn assume_role_with_web_identity(n: u64) -> Response<Full<Bytes>> {
    let expires = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600));
    let body = format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:bench:sa</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/bench/session-{n}</Arn>
      <AssumedRoleId>AROABENCH:session-{n}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIABENCH{n:08}</AccessKeyId>
      <SecretAccessKey>bench-secret-access-key-{n}</SecretAccessKey>
      <SessionToken>bench-session-token-{n}</SessionToken>
      <Expiration>{expires}</Expiration>
    </Credentials>
    <Provider>bench</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>00000000-0000-4000-8000-{n:012}</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#
    );
    reply(200, "text/xml", body)
}
