//! Soak benchmark (issue 20): does the provider stay flat and correct when
//! it runs for a long time under a node's steady remounts and AWS faults
//! that come and go?
//!
//! One node against moto, behind the fault proxy and the Kubernetes stub
//! (`tests/support/rotation.rs`'s `Node`):
//! - `--pods` (30) pods over three IRSA roles, each role with its own
//!   ServiceAccount, IAM role and policy (created in moto; moto does not
//!   enforce them) and its own 3 secrets + 2 parameters;
//! - every pod remounts every `--remount-secs` (6), staggered, as driver
//!   v1.6 does (no `current_object_version`), on one gRPC connection; the
//!   provider runs with `--rotation-check-window` = `--window-secs` (5), so
//!   the node checks its objects again between a pod's remounts;
//! - every `--change-secs` (20) one object changes (a secret, then a
//!   parameter, round robin over the roles), written to moto directly;
//! - each pod's projected token is renewed every `--token-secs` (120),
//!   staggered, as kubelet renews tokens, so STS is called throughout;
//! - faults through the proxy, one at a time, each on for `--fault-secs`
//!   (20) then off for as long: Secrets Manager 503, STS throttling
//!   (`AssumeRoleWithWebIdentity` 400 `Throttling`), SSM 500;
//! - every `--sample-secs` (10) the provider's VmRSS, VmHWM, open fds and
//!   threads are written to `--csv`.
//!
//! At the end the faults stop, one check window passes, every pod remounts
//! once more, and each pod's files (read from its target on /dev/shm) must
//! hold the values moto holds now. It prints the RSS slope (least squares
//! over the second half), peak VmHWM, fd and thread ranges, the count of
//! each gRPC outcome, and freshness, and exits 1 when a criterion fails:
//! slope ≤ 5 MiB/h, VmHWM ≤ 64 MiB, fds and threads flat (the second
//! half's maximum no higher than the first half's plus a small slack), no
//! `UNAVAILABLE` or `INTERNAL`, every pod fresh.
//!
//! ```sh
//! scripts/install-moto.sh
//! benchmarks/soak.sh                # 30 minutes, release provider
//! benchmarks/soak.sh --minutes 5    # a trial
//! ```
//!
//! The script builds `cargo build --release --bin ascp --example soak` and
//! runs `target/release/examples/soak`. A debug build of the harness
//! drives the release provider as well
//! (`target/debug/examples/soak --ascp target/release/ascp`).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use ascp::proto::csi_driver_provider_client::CsiDriverProviderClient;
use clap::Parser;
use futures::future::join_all;
use http_body_util::Full;
use hyper::body::Bytes;
use support::Rule;
use support::ascp_process::AscpProcess;
use support::rotation::{NS, Node, Pod, REGION, request};
use tokio::time::{Instant, MissedTickBehavior, sleep, sleep_until};
use tonic::Code;
use tonic::transport::Channel;

/// (service account, role ARN, tag of its objects).
const ROLES: [(&str, &str, &str); 3] = [
    (
        "sa-orders",
        "arn:aws:iam::123456789012:role/soak-orders",
        "soak-orders",
    ),
    (
        "sa-billing",
        "arn:aws:iam::123456789012:role/soak-billing",
        "soak-billing",
    ),
    (
        "sa-search",
        "arn:aws:iam::123456789012:role/soak-search",
        "soak-search",
    ),
];
const SECRETS_PER_ROLE: usize = 3;
const PARAMETERS_PER_ROLE: usize = 2;
/// Criteria.
const MAX_SLOPE_MIB_PER_HOUR: f64 = 5.0;
const MAX_HWM_MIB: f64 = 64.0;
/// How far the second half's maximum may exceed the first half's: a
/// connection or a blocking-pool thread more at the moment of a sample is
/// noise, a leak is not.
const FD_SLACK: u64 = 4;
const THREAD_SLACK: u64 = 2;

#[derive(Parser)]
#[command(about = "Soak benchmark of the ascp binary against moto (see the source's header)")]
struct Args {
    /// The provider binary (a release build); default: `ascp` in the
    /// directory above this example's.
    #[arg(long)]
    ascp: Option<PathBuf>,
    /// How long the pods remount.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    #[arg(long, default_value_t = 30)]
    pods: usize,
    /// Each pod's remount period.
    #[arg(long, default_value_t = 6.0)]
    remount_secs: f64,
    /// The provider's `--rotation-check-window`, shorter than the period.
    #[arg(long, default_value_t = 5)]
    window_secs: u64,
    /// One object changes this often.
    #[arg(long, default_value_t = 20)]
    change_secs: u64,
    /// Each pod's token is renewed this often.
    #[arg(long, default_value_t = 120)]
    token_secs: u64,
    /// Each fault is on this long, then off this long.
    #[arg(long, default_value_t = 20)]
    fault_secs: u64,
    #[arg(long, default_value_t = 10)]
    sample_secs: u64,
    /// Where the samples go.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/soak.csv"))]
    csv: PathBuf,
}

/// One pod of the soak: which role, and where its target is.
struct SoakPod {
    name: String,
    role: usize,
    target: PathBuf,
    /// Where in the remount period this pod's first mount is.
    remount_offset: Duration,
    /// Where in the token period this pod starts, so renewals spread.
    token_offset: Duration,
}

impl SoakPod {
    /// The driver's view of this pod at `elapsed`: its token changes every
    /// `token_period`, at its own offset.
    fn at(&self, elapsed: Duration, token_period: Duration) -> Pod {
        let generation = (elapsed + self.token_offset).as_secs() / token_period.as_secs().max(1);
        Pod::new(
            self.name.clone(),
            ROLES[self.role].0,
            self.target.clone(),
            format!("eyJhbGciOiJSUzI1NiJ9.SOAK-{}-g{generation}.sig", self.name),
        )
    }
}

/// Outcomes of every mount, by gRPC code, with the first message of each.
#[derive(Default)]
struct Outcomes {
    counts: BTreeMap<String, u64>,
    first_message: BTreeMap<String, String>,
}

impl Outcomes {
    fn record(&mut self, result: &Result<ascp::proto::MountResponse, tonic::Status>) {
        let (code, message) = match result {
            Ok(response) => match &response.error {
                Some(error) if !error.code.is_empty() => {
                    (format!("Ok with error.code {}", error.code), String::new())
                }
                _ => (format!("{:?}", Code::Ok), String::new()),
            },
            Err(status) => (format!("{:?}", status.code()), status.message().to_owned()),
        };
        *self.counts.entry(code.clone()).or_default() += 1;
        self.first_message.entry(code).or_insert(message);
    }

    fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Whether a mount was answered with a code no Mount may answer:
    /// `UNAVAILABLE` (the driver would retry it, tripling AWS calls) or
    /// `INTERNAL` (a bug).
    fn any_forbidden(&self) -> bool {
        [Code::Unavailable, Code::Internal]
            .iter()
            .any(|c| self.counts.contains_key(&format!("{c:?}")))
    }
}

/// A reading of the provider's `/proc/<pid>`.
#[derive(Clone, Copy)]
struct Sample {
    elapsed: f64,
    rss_kib: u64,
    hwm_kib: u64,
    fds: u64,
    threads: u64,
}

fn sample(provider: &AscpProcess, elapsed: Duration) -> Sample {
    let memory = provider.memory();
    Sample {
        elapsed: elapsed.as_secs_f64(),
        rss_kib: memory.rss_kib,
        hwm_kib: memory.hwm_kib,
        fds: provider.open_fds(),
        threads: provider.status_field("Threads:"),
    }
}

/// The faults, one at a time, in this order.
fn faults() -> [(&'static str, Rule); 3] {
    [
        (
            "Secrets Manager 503",
            Rule::new()
                .service("secretsmanager")
                .respond(503, "ServiceUnavailable"),
        ),
        (
            "STS throttling",
            // Unsigned: matched by operation, the proxy sees no service.
            Rule::new()
                .operation("AssumeRoleWithWebIdentity")
                .respond(400, "Throttling"),
        ),
        (
            "SSM 500",
            Rule::new()
                .service("ssm")
                .respond(500, "InternalServerError"),
        ),
    ]
}

/// The objects of role `tag` as `Node::seed` names them, with the file
/// each lands in: (is a secret, object name, file name).
fn objects_of(tag: &str) -> Vec<(bool, String, String)> {
    let secrets = (0..SECRETS_PER_ROLE).map(|i| {
        let name = format!("{tag}/s{i:02}");
        (true, name.clone(), name.replace('/', "_"))
    });
    let parameters = (0..PARAMETERS_PER_ROLE).map(|i| {
        let name = format!("/{tag}/p{i:02}");
        (false, name.clone(), name.replace('/', "_"))
    });
    secrets.chain(parameters).collect()
}

/// Percent-encodes a form value.
fn form_value(value: &str) -> String {
    value.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

/// One IAM query call to moto (which checks no signature, so a credential
/// scope naming `iam` is enough to route it).
async fn iam(moto: &str, params: &[(&str, &str)]) {
    let authority = support::http::authority(moto).expect("moto's endpoint");
    let body: Vec<String> = params
        .iter()
        .chain(&[("Version", "2010-05-08")])
        .map(|(k, v)| format!("{k}={}", form_value(v)))
        .collect();
    let request = hyper::Request::builder()
        .method("POST")
        .uri("/")
        .header(hyper::header::HOST, &authority)
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            hyper::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00",
        )
        .body(Full::new(Bytes::from(body.join("&"))))
        .expect("an IAM request");
    let response = support::http::send(&authority, request, Duration::from_secs(30), 1 << 20)
        .await
        .unwrap_or_else(|e| panic!("IAM {:?}: {e}", params.first()));
    assert!(
        response.status().is_success(),
        "IAM {:?}: HTTP {}: {}",
        params.first(),
        response.status(),
        String::from_utf8_lossy(response.body())
    );
}

/// Each role with a trust policy for its ServiceAccount and a policy that
/// reads its own objects only.
async fn create_roles(moto: &str) {
    for (sa, arn, tag) in ROLES {
        let name = arn.rsplit('/').next().expect("a role name");
        let trust = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/SOAK"},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    "oidc.eks.us-east-1.amazonaws.com/id/SOAK:sub": format!("system:serviceaccount:{NS}:{sa}"),
                }},
            }],
        });
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                    "Resource": format!("arn:aws:secretsmanager:{REGION}:123456789012:secret:{tag}/*"),
                },
                {
                    "Effect": "Allow",
                    "Action": ["ssm:GetParameters"],
                    "Resource": format!("arn:aws:ssm:{REGION}:123456789012:parameter/{tag}/*"),
                },
            ],
        });
        iam(
            moto,
            &[
                ("Action", "CreateRole"),
                ("RoleName", name),
                ("AssumeRolePolicyDocument", &trust.to_string()),
            ],
        )
        .await;
        iam(
            moto,
            &[
                ("Action", "PutRolePolicy"),
                ("RoleName", name),
                ("PolicyName", "read-own-objects"),
                ("PolicyDocument", &policy.to_string()),
            ],
        )
        .await;
    }
}

/// What moto holds now for object `name`.
async fn current_value(node: &Node, is_secret: bool, name: &str) -> String {
    if is_secret {
        node.sm
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetSecretValue {name}: {e}"))
            .secret_string
            .unwrap_or_default()
    } else {
        node.ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetParameter {name}: {e}"))
            .parameter
            .and_then(|p| p.value)
            .unwrap_or_default()
    }
}

/// Least-squares slope of `points` (x, y).
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Everything the concurrent loops share.
struct Soak<'a> {
    args: &'a Args,
    node: &'a Node,
    client: CsiDriverProviderClient<Channel>,
    objects: Vec<String>,
    start: Instant,
    end: Instant,
    outcomes: Mutex<Outcomes>,
    /// The fault on now, for the samples.
    fault: Mutex<&'static str>,
    /// Per fault: windows it was on, requests it failed.
    fired: Mutex<BTreeMap<&'static str, (usize, usize)>>,
    changes: Mutex<usize>,
    samples: Mutex<Vec<Sample>>,
}

impl Soak<'_> {
    async fn mount(&self, pod: &SoakPod) {
        let request = request(
            &pod.at(
                self.start.elapsed(),
                Duration::from_secs(self.args.token_secs),
            ),
            &self.objects[pod.role],
        );
        let result = self
            .client
            .clone()
            .mount(request)
            .await
            .map(tonic::Response::into_inner);
        self.outcomes.lock().unwrap().record(&result);
    }

    /// A pod remounting every period until the end.
    async fn pod(&self, pod: &SoakPod) {
        let period = Duration::from_secs_f64(self.args.remount_secs);
        let mut ticks = tokio::time::interval_at(self.start + pod.remount_offset, period);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let tick = ticks.tick().await;
            if tick >= self.end {
                return;
            }
            self.mount(pod).await;
        }
    }

    /// One object changes every `--change-secs`: a secret, then a
    /// parameter, round robin over the roles and their objects.
    async fn changes(&self) {
        let mut ticks = tokio::time::interval_at(
            self.start + Duration::from_secs(self.args.change_secs),
            Duration::from_secs(self.args.change_secs),
        );
        for k in 0.. {
            if ticks.tick().await >= self.end {
                return;
            }
            let tag = ROLES[k % ROLES.len()].2;
            let round = k / ROLES.len();
            if round.is_multiple_of(2) {
                let i = (round / 2) % SECRETS_PER_ROLE;
                let name = format!("{tag}/s{i:02}");
                support::put_secret_string(&self.node.sm, &name, &format!("s{i}-c{k}"), &[]).await;
            } else {
                let i = (round / 2) % PARAMETERS_PER_ROLE;
                let name = format!("/{tag}/p{i:02}");
                support::put_parameter(
                    &self.node.ssm,
                    &name,
                    &format!("p{i}-c{k}"),
                    aws_sdk_ssm::types::ParameterType::String,
                )
                .await;
            }
            *self.changes.lock().unwrap() += 1;
        }
    }

    /// Each fault on for `--fault-secs`, then off as long, in turn.
    async fn faults(&self) {
        let span = Duration::from_secs(self.args.fault_secs);
        let proxy = &self.node.net.proxy;
        for (name, rule) in faults().into_iter().cycle() {
            if Instant::now() + span >= self.end {
                return;
            }
            sleep(span).await;
            let handle = proxy.add_rule(rule);
            *self.fault.lock().unwrap() = name;
            sleep_until((Instant::now() + span).min(self.end)).await;
            let fired = proxy.fired(handle);
            proxy.clear_rules();
            *self.fault.lock().unwrap() = "none";
            let mut all = self.fired.lock().unwrap();
            let entry = all.entry(name).or_default();
            entry.0 += 1;
            entry.1 += fired;
        }
    }

    /// A sample every `--sample-secs`, to the CSV as it comes.
    async fn sampler(&self, csv: &mut std::fs::File) {
        use std::io::Write as _;
        let mut ticks = tokio::time::interval(Duration::from_secs(self.args.sample_secs));
        loop {
            let tick = ticks.tick().await;
            let s = sample(&self.node.ascp, self.start.elapsed());
            let (mounts, failed) = {
                let outcomes = self.outcomes.lock().unwrap();
                let ok = outcomes.counts.get("Ok").copied().unwrap_or(0);
                (outcomes.total(), outcomes.total() - ok)
            };
            let fault = *self.fault.lock().unwrap();
            writeln!(
                csv,
                "{:.1},{},{},{},{},{mounts},{failed},{fault}",
                s.elapsed, s.rss_kib, s.hwm_kib, s.fds, s.threads
            )
            .expect("write a sample");
            self.samples.lock().unwrap().push(s);
            if tick >= self.end {
                return;
            }
        }
    }
}

/// Pass or fail, printed.
fn verdict(ok: bool) -> &'static str {
    if ok { "pass" } else { "FAIL" }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let binary = common::provider_binary(args.ascp.clone(), "cargo build --release --bin ascp");
    let window = Duration::from_secs(args.window_secs);
    assert!(
        args.remount_secs > args.window_secs as f64,
        "--remount-secs must exceed --window-secs, or remounts are answered from one check"
    );
    let flag = format!("--rotation-check-window={}s", args.window_secs);
    let roles: Vec<(&str, &str)> = ROLES.iter().map(|(sa, arn, _)| (*sa, *arn)).collect();
    let node = Node::start_with_roles(&binary, &[flag.as_str()], &roles).await;
    create_roles(&node.net.moto.endpoint()).await;
    let mut objects = Vec::new();
    for (_, _, tag) in ROLES {
        objects.push(
            node.seed(tag, SECRETS_PER_ROLE, PARAMETERS_PER_ROLE, false)
                .await,
        );
    }
    let shm = tempfile::Builder::new()
        .prefix("ascp-soak-")
        .tempdir_in("/dev/shm")
        .expect("a directory on /dev/shm (tmpfs, as the driver's targets)");
    let period = Duration::from_secs_f64(args.remount_secs);
    let token_period = Duration::from_secs(args.token_secs);
    let pods: Vec<SoakPod> = (0..args.pods)
        .map(|i| {
            let name = format!("soak-{i:02}");
            let target = shm.path().join(&name);
            std::fs::create_dir_all(&target).expect("create a target directory");
            let share = i as f64 / args.pods as f64;
            SoakPod {
                name,
                role: i % ROLES.len(),
                target,
                remount_offset: period.mul_f64(share),
                token_offset: token_period.mul_f64(share),
            }
        })
        .collect();
    println!(
        "soak: {} ({} pods over {} roles, {} min, each pod every {} s, check window {} s, a change every {} s, tokens renewed every {} s, faults {} s on / {} s off)",
        binary.display(),
        args.pods,
        ROLES.len(),
        args.minutes,
        args.remount_secs,
        args.window_secs,
        args.change_secs,
        args.token_secs,
        args.fault_secs,
        args.fault_secs,
    );

    let start = Instant::now();
    let soak = Soak {
        args: &args,
        node: &node,
        client: node.ascp.client().await,
        objects,
        start,
        end: start + Duration::from_secs_f64(args.minutes * 60.0),
        outcomes: Mutex::default(),
        fault: Mutex::new("none"),
        fired: Mutex::default(),
        changes: Mutex::default(),
        samples: Mutex::default(),
    };
    if let Some(dir) = args.csv.parent() {
        std::fs::create_dir_all(dir).expect("create the CSV's directory");
    }
    let mut csv = std::fs::File::create(&args.csv)
        .unwrap_or_else(|e| panic!("create {}: {e}", args.csv.display()));
    {
        use std::io::Write as _;
        writeln!(
            csv,
            "elapsed_s,vmrss_kib,vmhwm_kib,fds,threads,mounts,failed_mounts,fault"
        )
        .expect("write the CSV header");
    }
    let calls_before = node.counts();
    tokio::join!(
        join_all(pods.iter().map(|pod| soak.pod(pod))),
        soak.changes(),
        soak.faults(),
        soak.sampler(&mut csv),
    );

    // Faults are off; one check window passes; every pod remounts once.
    node.net.proxy.clear_rules();
    sleep(window + Duration::from_secs(1)).await;
    join_all(pods.iter().map(|pod| soak.mount(pod))).await;
    let mut stale = Vec::new();
    for pod in &pods {
        for (is_secret, name, file) in objects_of(ROLES[pod.role].2) {
            let want = current_value(&node, is_secret, &name).await;
            let have = std::fs::read_to_string(pod.target.join(&file)).unwrap_or_default();
            if have != want {
                stale.push(format!("{}/{file}", pod.name));
            }
        }
    }
    let stale_pods: BTreeSet<&str> = stale.iter().filter_map(|s| s.split('/').next()).collect();
    let last = sample(&node.ascp, start.elapsed());
    let calls = node.counts();
    let aws_calls = calls.aws_total - calls_before.aws_total;
    let elapsed = start.elapsed().as_secs_f64();
    let samples = soak.samples.into_inner().unwrap();
    let outcomes = soak.outcomes.into_inner().unwrap();

    // The report.
    let half = elapsed / 2.0;
    let (first, second): (Vec<Sample>, Vec<Sample>) =
        samples.iter().partition(|s| s.elapsed < half);
    let rss_points: Vec<(f64, f64)> = second
        .iter()
        .map(|s| (s.elapsed / 3600.0, mib(s.rss_kib)))
        .collect();
    let rss_slope = slope(&rss_points);
    let hwm = mib(last.hwm_kib);
    let range = |of: &dyn Fn(&Sample) -> u64, part: &[Sample]| {
        (
            part.iter().map(of).min().unwrap_or(0),
            part.iter().map(of).max().unwrap_or(0),
        )
    };
    let fds = (range(&|s| s.fds, &first), range(&|s| s.fds, &second));
    let threads = (
        range(&|s| s.threads, &first),
        range(&|s| s.threads, &second),
    );
    let fds_flat = fds.1.1 <= fds.0.1 + FD_SLACK;
    let threads_flat = threads.1.1 <= threads.0.1 + THREAD_SLACK;
    let checks = [
        rss_slope <= MAX_SLOPE_MIB_PER_HOUR,
        hwm <= MAX_HWM_MIB,
        fds_flat,
        threads_flat,
        !outcomes.any_forbidden(),
        stale.is_empty(),
    ];

    println!(
        "samples: {} every {} s, in {}",
        samples.len(),
        args.sample_secs,
        args.csv.display()
    );
    println!(
        "VmRSS: {:.1} MiB at the first sample, {:.1} MiB at the end; slope over the second half {rss_slope:+.2} MiB/h (<= {MAX_SLOPE_MIB_PER_HOUR}): {}",
        samples.first().map_or(0.0, |s| mib(s.rss_kib)),
        mib(last.rss_kib),
        verdict(checks[0])
    );
    println!(
        "VmHWM: {hwm:.1} MiB (<= {MAX_HWM_MIB}): {}",
        verdict(checks[1])
    );
    println!(
        "open fds: {}-{} in the first half, {}-{} in the second (flat: max within +{FD_SLACK}): {}",
        fds.0.0,
        fds.0.1,
        fds.1.0,
        fds.1.1,
        verdict(checks[2])
    );
    println!(
        "threads: {}-{} in the first half, {}-{} in the second (flat: max within +{THREAD_SLACK}): {}",
        threads.0.0,
        threads.0.1,
        threads.1.0,
        threads.1.1,
        verdict(checks[3])
    );
    println!(
        "mounts: {} ({:.1}/s); gRPC outcomes (no Unavailable or Internal): {}",
        outcomes.total(),
        outcomes.total() as f64 / elapsed,
        verdict(checks[4])
    );
    for (code, n) in &outcomes.counts {
        let message = &outcomes.first_message[code];
        if message.is_empty() {
            println!("  {code}: {n}");
        } else {
            println!("  {code}: {n} (first: {message})");
        }
    }
    let fired = soak.fired.into_inner().unwrap();
    let fired: Vec<String> = fired
        .iter()
        .map(|(name, (windows, n))| format!("{name}: {windows} windows, {n} requests failed"))
        .collect();
    println!("faults: {}", fired.join("; "));
    println!(
        "changes: {}; AWS calls through the proxy: {aws_calls} ({:.1}/s)",
        soak.changes.into_inner().unwrap(),
        aws_calls as f64 / elapsed
    );
    println!(
        "freshness after the faults stopped and one {} s window: {}/{} pods hold moto's values: {}",
        args.window_secs,
        pods.len() - stale_pods.len(),
        pods.len(),
        verdict(checks[5])
    );
    for file in &stale {
        println!("  stale: {file}");
    }
    let failed = checks.iter().filter(|ok| !**ok).count();
    println!(
        "soak: {}",
        if failed == 0 {
            "every criterion met".to_owned()
        } else {
            format!("{failed} criteria failed; the provider's log is in {}", {
                let log = args.csv.with_extension("log");
                std::fs::write(&log, node.ascp.log()).expect("write the provider's log");
                log.display().to_string()
            })
        }
    );
    drop(shm);
    // Destructors stop moto and the provider; `exit` would skip them.
    drop(soak.client);
    drop(node);
    if failed > 0 {
        std::process::exit(1);
    }
}
