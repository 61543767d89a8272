//! Rotation scenarios of issue 11, through the real `ascp` binary against
//! moto behind the counting proxy and the stub Kubernetes API, remounting
//! as driver v1.6 does (no `current_object_version`). Shared by
//! `tests/it/rotation.rs`, which asserts the exact counts, and
//! `examples/rotation_calls.rs`, which prints them.
//!
//! Counts come from the proxy (AWS, per operation) and the Kubernetes stub
//! (GETs per resource), read before and after each step.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ascp::proto::{MountRequest, MountResponse};
use aws_sdk_ssm::types::ParameterType;

use super::ascp_process::AscpProcess;
use super::loopback::Loopback;
use super::{create_secret_string, put_parameter, sdk_config};

pub const REGION: &str = "us-east-1";
pub const NS: &str = "shop";
/// Two ServiceAccounts annotated with two IAM roles.
pub const ROLES: [(&str, &str); 2] = [
    ("sa-a", "arn:aws:iam::123456789012:role/rotation-a"),
    ("sa-b", "arn:aws:iam::123456789012:role/rotation-b"),
];
/// The AWS operations a mount can make, in the order they are printed.
pub const OPERATIONS: [&str; 7] = [
    "GetSecretValue",
    "BatchGetSecretValue",
    "DescribeSecret",
    "GetParameters",
    "GetParameter",
    "AssumeRoleWithWebIdentity",
    "AssumeRole",
];
const KINDS: [&str; 3] = ["serviceaccounts", "pods", "nodes"];

/// Calls of one step: AWS per operation, Kubernetes GETs per resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub aws: BTreeMap<&'static str, usize>,
    /// Every AWS call, including operations not in [`OPERATIONS`].
    pub aws_total: usize,
    pub kube: BTreeMap<&'static str, usize>,
}

impl Counts {
    pub fn aws(&self, operation: &str) -> usize {
        self.aws.get(operation).copied().unwrap_or(0)
    }

    pub fn kube_total(&self) -> usize {
        self.kube.values().sum()
    }

    pub fn since(&self, before: &Counts) -> Counts {
        let diff = |now: &BTreeMap<&'static str, usize>, then: &BTreeMap<&'static str, usize>| {
            now.iter()
                .map(|(k, n)| (*k, n - then.get(k).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect()
        };
        Counts {
            aws: diff(&self.aws, &before.aws),
            aws_total: self.aws_total - before.aws_total,
            kube: diff(&self.kube, &before.kube),
        }
    }

    fn add(&mut self, other: &Counts) {
        for (k, n) in &other.aws {
            *self.aws.entry(k).or_default() += n;
        }
        for (k, n) in &other.kube {
            *self.kube.entry(k).or_default() += n;
        }
        self.aws_total += other.aws_total;
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AWS {}", self.aws_total)?;
        let ops: Vec<String> = self.aws.iter().map(|(k, n)| format!("{n} {k}")).collect();
        if !ops.is_empty() {
            write!(f, " ({})", ops.join(", "))?;
        }
        write!(f, "; Kubernetes {}", self.kube_total())?;
        let gets: Vec<String> = self.kube.iter().map(|(k, n)| format!("{n} {k}")).collect();
        if !gets.is_empty() {
            write!(f, " ({})", gets.join(", "))?;
        }
        Ok(())
    }
}

/// One pod of the node.
pub struct Pod {
    pub name: String,
    pub service_account: &'static str,
    pub target: PathBuf,
    /// Its own projected token: pods never share one.
    token: String,
}

impl Pod {
    /// Pod `name` of `service_account` in [`NS`], mounting into `target`
    /// with its projected `token`.
    pub fn new(name: String, service_account: &'static str, target: PathBuf, token: String) -> Pod {
        Pod {
            name,
            service_account,
            target,
            token,
        }
    }
}

/// moto, the proxy, the Kubernetes stub and one `ascp` process.
pub struct Node {
    pub net: Loopback,
    pub ascp: AscpProcess,
    pub sm: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
}

impl Node {
    /// Starts everything; `binary` with `flags`.
    pub async fn start(binary: &Path, flags: &[&str]) -> Node {
        Node::start_with_roles(binary, flags, &ROLES).await
    }

    /// Like [`Node::start`], with `roles` (service account in [`NS`], role
    /// ARN) known to the Kubernetes stub instead of [`ROLES`].
    pub async fn start_with_roles(binary: &Path, flags: &[&str], roles: &[(&str, &str)]) -> Node {
        let accounts: Vec<(&str, &str, &str)> =
            roles.iter().map(|(sa, role)| (NS, *sa, *role)).collect();
        let net = Loopback::start(&accounts).await;
        let env = net.env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDNODEROLE"),
            ("AWS_SECRET_ACCESS_KEY", "node-role-secret"),
        ]);
        let args: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        let ascp = AscpProcess::start(binary, &args, &env).await;
        let config = sdk_config(&net.moto.endpoint(), REGION).await;
        Node {
            sm: aws_sdk_secretsmanager::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
            net,
            ascp,
        }
    }

    /// Every call so far.
    pub fn counts(&self) -> Counts {
        Counts {
            aws: OPERATIONS
                .iter()
                .map(|op| (*op, self.net.proxy.calls(op)))
                .collect(),
            aws_total: self.net.proxy.total_calls(),
            kube: KINDS.iter().map(|k| (*k, self.net.kube.calls(k))).collect(),
        }
    }

    /// `n` pods, alternating between the two ServiceAccounts.
    pub fn pods(&self, n: usize) -> Vec<Pod> {
        self.pods_in_roles(n, ROLES.len())
    }

    /// `n` pods, alternating between the first `roles` ServiceAccounts.
    pub fn pods_in_roles(&self, n: usize, roles: usize) -> Vec<Pod> {
        let roles = roles.clamp(1, ROLES.len());
        (0..n)
            .map(|i| {
                let name = format!("pod-{i:02}");
                let target = self.ascp.dir().join("targets").join(&name);
                std::fs::create_dir_all(&target).expect("create a target directory");
                let token = format!("eyJhbGciOiJSUzI1NiJ9.ROTATION-{name}.sig");
                Pod::new(name, ROLES[i % roles].0, target, token)
            })
            .collect()
    }

    /// A driver v1.6 mount of `objects` for `pod` (no current versions);
    /// panics with the provider's log on failure.
    pub async fn mount(&self, pod: &Pod, objects: &str) -> MountResponse {
        match self.ascp.mount(request(pod, objects)).await {
            Ok(response) => response,
            Err(status) => panic!(
                "mount of {} failed: {:?}: {}\nascp log:\n{}",
                pod.name,
                status.code(),
                status.message(),
                self.ascp.log()
            ),
        }
    }

    /// Mounts every pod once, one after another, as kubelet republishes
    /// them; returns the calls.
    pub async fn round(&self, pods: &[Pod], objects: &str) -> Counts {
        let before = self.counts();
        for pod in pods {
            self.mount(pod, objects).await;
        }
        self.counts().since(&before)
    }

    /// Creates `secrets` secrets and `parameters` parameters named after
    /// `tag`; returns their SecretProviderClass objects, pinned to the
    /// versions created when `pinned`.
    pub async fn seed(&self, tag: &str, secrets: usize, parameters: usize, pinned: bool) -> String {
        let mut objects = String::new();
        for i in 0..secrets {
            let s = create_secret_string(&self.sm, &format!("{tag}/s{i:02}"), &format!("s{i}-v1"))
                .await;
            objects.push_str(&format!(
                "- {{objectName: {tag}/s{i:02}, objectType: secretsmanager{}}}\n",
                if pinned {
                    format!(", objectVersion: {}", s.version_id)
                } else {
                    String::new()
                }
            ));
        }
        for i in 0..parameters {
            let name = format!("/{tag}/p{i:02}");
            let version =
                put_parameter(&self.ssm, &name, &format!("p{i}-v1"), ParameterType::String).await;
            objects.push_str(&format!(
                "- {{objectName: {name}, objectType: ssmparameter{}}}\n",
                if pinned {
                    format!(", objectVersion: \"{version}\"")
                } else {
                    String::new()
                }
            ));
        }
        objects
    }
}

/// The Mount the driver sends for `pod`: IRSA token, no current versions.
pub fn request(pod: &Pod, objects: &str) -> MountRequest {
    let tokens = serde_json::json!({
        "sts.amazonaws.com": {"token": pod.token, "expirationTimestamp": "2099-01-01T00:00:00Z"}
    })
    .to_string();
    let attrs: BTreeMap<&str, &str> = [
        ("region", REGION),
        ("objects", objects),
        ("csi.storage.k8s.io/pod.name", pod.name.as_str()),
        ("csi.storage.k8s.io/pod.namespace", NS),
        ("csi.storage.k8s.io/pod.uid", pod.name.as_str()),
        (
            "csi.storage.k8s.io/serviceAccount.name",
            pod.service_account,
        ),
        ("csi.storage.k8s.io/ephemeral", "false"),
        ("csi.storage.k8s.io/serviceAccount.tokens", tokens.as_str()),
        ("secretProviderClass", "rotation"),
    ]
    .into_iter()
    .collect();
    MountRequest {
        attributes: serde_json::to_string(&attrs).expect("attributes"),
        secrets: "{}".into(),
        target_path: pod.target.display().to_string(),
        permission: "420".into(),
        current_object_version: vec![],
    }
}

/// A file of a pod's target.
pub fn read(pod: &Pod, file: &str) -> String {
    std::fs::read_to_string(pod.target.join(file))
        .unwrap_or_else(|e| panic!("read {file} of {}: {e}", pod.name))
}

/// One pod, `secrets` + `parameters` objects: the first mount's calls, then
/// each of `remounts` unchanged remounts' calls.
pub async fn one_pod(
    binary: &Path,
    flags: &[&str],
    secrets: usize,
    parameters: usize,
    pinned: bool,
    remounts: usize,
) -> (Counts, Vec<Counts>) {
    let node = Node::start(binary, flags).await;
    let objects = node.seed("one", secrets, parameters, pinned).await;
    let pods = node.pods(1);
    let first = node.round(&pods, &objects).await;
    let mut each = Vec::new();
    for _ in 0..remounts {
        each.push(node.round(&pods, &objects).await);
        assert_eq!(read(&pods[0], "one_s00"), "s0-v1");
    }
    (first, each)
}

/// How rotation rounds are spaced.
#[derive(Clone, Copy, Debug)]
pub enum Spacing {
    /// One after another, inside one check window (the default 60 s).
    InsideWindow,
    /// Each round starts once `window` (passed as
    /// `--rotation-check-window`) has passed since the previous one ended,
    /// so every answer of that round has expired.
    BeyondWindow(Duration),
}

impl Spacing {
    pub fn flag(self) -> Option<String> {
        match self {
            Spacing::InsideWindow => None,
            Spacing::BeyondWindow(window) => {
                Some(format!("--rotation-check-window={}ms", window.as_millis()))
            }
        }
    }

    /// Waits until the window that started no later than `ended` is over.
    async fn wait(self, ended: Instant) {
        if let Spacing::BeyondWindow(window) = self {
            // Answers are kept `window` from when they were learnt, all
            // before `ended`; the margin covers the cache's own clock.
            tokio::time::sleep_until((ended + window + Duration::from_millis(200)).into()).await;
        }
    }
}

/// What changes in AWS during a [`many_pods`] run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The first secret (`many/s00`) gets a new value.
    Secret,
    /// The first parameter (`/many/p00`) gets a new value.
    Parameter,
}

impl Change {
    /// The file that shows the change, and its value after it.
    pub fn file(self) -> (&'static str, &'static str) {
        match self {
            Change::Secret => ("many_s00", "s0-v2"),
            Change::Parameter => ("_many_p00", "p0-v2"),
        }
    }
}

/// A node of many pods mounting the same objects, remounted in rounds.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub pods: usize,
    /// IAM roles the pods alternate between (1 or 2).
    pub roles: usize,
    pub secrets: usize,
    pub parameters: usize,
    /// Rotation rounds measured (the first mounts are not one of them).
    pub rounds: usize,
    /// What changes, and before which round (1-based). Spaced runs only:
    /// the round waits out the window after the change.
    pub change: Option<(Change, usize)>,
}

impl Scenario {
    /// Issue 22's node: 20 pods, 10 secrets + 5 parameters, 5 rounds,
    /// under `roles` roles, with `change`.
    pub fn twenty_pods(roles: usize, change: Option<(Change, usize)>) -> Scenario {
        Scenario {
            pods: 20,
            roles,
            secrets: 10,
            parameters: 5,
            rounds: 5,
            change,
        }
    }
}

/// What [`many_pods`] measured.
pub struct ManyPods {
    /// The first mounts (excluded from the rounds).
    pub first: Counts,
    /// Each rotation round, the one after the change included.
    pub rounds: Vec<Counts>,
    /// Pods whose file of the changed object holds the new value right
    /// after the round following the change.
    pub updated: usize,
}

/// `scenario.pods` pods under `scenario.roles` roles, each mounting the
/// same secrets and parameters; the rounds spaced as `spacing` says, the
/// change (if any) made right after the round before it.
pub async fn many_pods(
    binary: &Path,
    flags: &[&str],
    spacing: Spacing,
    scenario: &Scenario,
) -> ManyPods {
    assert!(
        scenario.change.is_none() || matches!(spacing, Spacing::BeyondWindow(_)),
        "a change is measured in spaced runs only: waiting out the default window takes a minute"
    );
    let mut flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
    flags.extend(spacing.flag());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let node = Node::start(binary, &flags).await;
    let objects = node
        .seed("many", scenario.secrets, scenario.parameters, false)
        .await;
    let pods = node.pods_in_roles(scenario.pods, scenario.roles);
    let first = node.round(&pods, &objects).await;
    let mut ended = Instant::now();
    let mut measured = Vec::new();
    let mut updated = 0;
    for round in 1..=scenario.rounds {
        let change = scenario.change.filter(|(_, before)| *before == round);
        match change {
            Some((Change::Secret, _)) => {
                super::put_secret_string(&node.sm, "many/s00", "s0-v2", &[]).await;
            }
            Some((Change::Parameter, _)) => {
                put_parameter(&node.ssm, "/many/p00", "p0-v2", ParameterType::String).await;
            }
            None => {}
        }
        spacing.wait(ended).await;
        measured.push(node.round(&pods, &objects).await);
        ended = Instant::now();
        if let Some((change, _)) = change {
            let (file, value) = change.file();
            updated = pods.iter().filter(|pod| read(pod, file) == value).count();
        }
    }
    ManyPods {
        first,
        rounds: measured,
        updated,
    }
}

/// The sum of `counts`.
pub fn total(counts: &[Counts]) -> Counts {
    let mut sum = Counts::default();
    for c in counts {
        sum.add(c);
    }
    sum
}
