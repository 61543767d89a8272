//! `ascp doctor` through the binary: a cluster on the Kubernetes stub (the
//! CSIDriver, the driver's and ascp's DaemonSets, the pod, its node, its
//! ServiceAccount and class), AWS on moto (IAM roles, secrets, parameters)
//! behind the fault proxy, which answers the two operations moto does not
//! emulate: IAM SimulatePrincipalPolicy (allowed unless the test denies the
//! action on the resource) and EKS Pod Identity associations.
//!
//! Each healthy pod passes every check; each broken link FAILs its own
//! check, with its fix, and the exit code is 1. No check reads a secret
//! value: no GetSecretValue, BatchGetSecretValue or GetParameters call
//! reaches AWS.

use crate::support;

use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use support::kube_api::percent_decode;
use support::loopback::Loopback;
use support::{Rule, TEST_ACCESS_KEY_ID, TEST_ACCOUNT, TEST_SECRET_ACCESS_KEY, sdk_config};

const NS: &str = "app";
const POD: &str = "web";
const SA: &str = "web";
const CLASS: &str = "web-secrets";
const NODE: &str = "node-1";
const REGION: &str = "us-east-1";
const ISSUER_HOST: &str = "oidc.eks.us-east-1.amazonaws.com/id/TESTCLUSTER";
const CLUSTER: &str = "test-cluster";
const PROVIDERS: &str = "/var/run/secrets-store-csi-providers";
const SECRET: &str = "db-password";
const PARAMETER: &str = "/web/config";
const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1111aaaa-22bb-33cc-44dd-555555eeeeee";

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{TEST_ACCOUNT}:role/{name}")
}

/// The loopback world, the actions IAM's simulation denies (action,
/// resource prefix), and the Pod Identity associations EKS knows
/// (namespace, ServiceAccount, role).
struct World {
    lb: Loopback,
    denied: Arc<Mutex<Vec<(String, String)>>>,
    associations: Arc<Mutex<Vec<(String, String, String)>>>,
}

impl World {
    /// A healthy cluster whose pod `app/web` mounts `web-secrets` with IRSA
    /// (or Pod Identity), one secret and one parameter; its region comes
    /// from its node.
    async fn healthy(pod_identity: bool) -> World {
        let lb = Loopback::start(&[]).await;
        let world = World {
            lb,
            denied: Arc::default(),
            associations: Arc::default(),
        };
        world.stub_simulation();
        world.stub_eks();
        let kube = &world.lb.kube;
        kube.add_object(
            "/apis/storage.k8s.io/v1/csidrivers/secrets-store.csi.k8s.io",
            csi_driver(&["sts.amazonaws.com", "pods.eks.amazonaws.com"]),
        );
        kube.add_object(
            "/apis/apps/v1/namespaces/kube-system/daemonsets/csi-secrets-store",
            driver_daemonset(),
        );
        world.set_provider_volume(PROVIDERS, PROVIDERS);
        kube.add_object(
            "/api/v1/namespaces/kube-system/pods/ascp-abcde",
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "ascp-abcde", "namespace": "kube-system", "labels": {"app": "ascp"}},
                "spec": {"nodeName": NODE, "containers": [{"name": "provider-aws-installer", "image": "ascp"}]},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        kube.add_node(NODE, Some(REGION));
        kube.add_object(
            &format!("/api/v1/namespaces/{NS}/pods/{POD}"),
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": POD, "namespace": NS},
                "spec": {"nodeName": NODE, "serviceAccountName": SA,
                    "containers": [{"name": "app", "image": "app"}],
                    "volumes": [{"name": "secrets", "csi": {"driver": "secrets-store.csi.k8s.io",
                        "readOnly": true, "volumeAttributes": {"secretProviderClass": CLASS}}}]}}),
        );
        kube.add_object(
            "/.well-known/openid-configuration",
            json!({"issuer": format!("https://{ISSUER_HOST}"), "jwks_uri": "https://example.invalid/keys"}),
        );
        let objects = format!(
            "- objectName: {SECRET}\n  objectType: secretsmanager\n- objectName: {PARAMETER}\n  objectType: ssmparameter\n"
        );
        let mut parameters = json!({"objects": objects});
        let config = sdk_config(&world.lb.proxy.endpoint(), REGION).await;
        let iam = aws_sdk_iam::Client::new(&config);
        if pod_identity {
            parameters["usePodIdentity"] = json!("true");
            kube.add_service_account(NS, SA, None);
            create_role(&iam, "pi-role", &pod_identity_trust()).await;
            world.associations.lock().unwrap().push((
                NS.to_owned(),
                SA.to_owned(),
                role_arn("pi-role"),
            ));
        } else {
            kube.add_service_account(NS, SA, Some(&role_arn("web-role")));
            create_role(&iam, "web-role", &irsa_trust(NS, SA)).await;
        }
        world.add_class(NS, parameters);
        let secrets = aws_sdk_secretsmanager::Client::new(&config);
        support::create_secret_string(&secrets, SECRET, "s3cr3t-value").await;
        let ssm = aws_sdk_ssm::Client::new(&config);
        support::put_parameter(
            &ssm,
            PARAMETER,
            "config-value",
            aws_sdk_ssm::types::ParameterType::String,
        )
        .await;
        world
    }

    fn add_class(&self, namespace: &str, parameters: Value) {
        self.lb.kube.add_object(
            &format!(
                "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/{namespace}/secretproviderclasses/{CLASS}"
            ),
            json!({"apiVersion": "secrets-store.csi.x-k8s.io/v1", "kind": "SecretProviderClass",
                "metadata": {"name": CLASS, "namespace": namespace},
                "spec": {"provider": "aws", "parameters": parameters}}),
        );
    }

    /// ascp's DaemonSet with `--provider-volume=flag` on a hostPath `host`.
    fn set_provider_volume(&self, flag: &str, host: &str) {
        self.lb.kube.add_object(
            "/apis/apps/v1/namespaces/kube-system/daemonsets/ascp",
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "ascp", "namespace": "kube-system"},
                "spec": {"selector": {"matchLabels": {"app": "ascp"}},
                    "template": {"metadata": {"labels": {"app": "ascp"}}, "spec": {
                        "containers": [{"name": "provider-aws-installer", "image": "ascp",
                            "args": [format!("--provider-volume={flag}")],
                            "volumeMounts": [{"name": "providervol", "mountPath": flag}]}],
                        "volumes": [{"name": "providervol", "hostPath": {"path": host, "type": "DirectoryOrCreate"}}]}}},
                "status": {"currentNumberScheduled": 1, "desiredNumberScheduled": 1,
                    "numberMisscheduled": 0, "numberReady": 1}}),
        );
    }

    /// SimulatePrincipalPolicy: every (action, resource) allowed unless
    /// denied by the test.
    fn stub_simulation(&self) {
        let denied = self.denied.clone();
        self.lb.proxy.add_rule(
            Rule::new()
                .operation("SimulatePrincipalPolicy")
                .answer(move |_, body| {
                    let form: Vec<(String, String)> = body
                        .split('&')
                        .filter_map(|p| p.split_once('='))
                        .map(|(k, v)| (k.to_owned(), percent_decode(v)))
                        .collect();
                    let values = |prefix: &str| -> Vec<String> {
                        form.iter()
                            .filter(|(k, _)| k.starts_with(prefix))
                            .map(|(_, v)| v.clone())
                            .collect()
                    };
                    let denied = denied.lock().unwrap();
                    let mut members = String::new();
                    for resource in values("ResourceArns.member.") {
                        for action in values("ActionNames.member.") {
                            let decision = if denied
                                .iter()
                                .any(|(a, r)| *a == action && resource.starts_with(r.as_str()))
                            {
                                "implicitDeny"
                            } else {
                                "allowed"
                            };
                            members.push_str(&format!(
                                "<member><EvalActionName>{action}</EvalActionName><EvalResourceName>{resource}</EvalResourceName><EvalDecision>{decision}</EvalDecision></member>"
                            ));
                        }
                    }
                    (
                        200,
                        "text/xml".to_owned(),
                        format!(
                            "<SimulatePrincipalPolicyResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults>{members}</EvaluationResults></SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata></SimulatePrincipalPolicyResponse>"
                        ),
                    )
                }),
        );
    }

    /// EKS ListPodIdentityAssociations and DescribePodIdentityAssociation
    /// from the test's associations (ids `a-<index>`).
    fn stub_eks(&self) {
        let associations = self.associations.clone();
        self.lb.proxy.add_rule(Rule::new().service("eks").answer(move |parts, _| {
            let path = parts.uri.path().to_owned();
            let query = percent_decode(parts.uri.query().unwrap_or(""));
            let field = |key: &str| {
                query
                    .split('&')
                    .filter_map(|p| p.split_once('='))
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| v.to_owned())
            };
            let all = associations.lock().unwrap();
            let item = |i: usize, (ns, sa, role): &(String, String, String)| {
                json!({"clusterName": CLUSTER, "namespace": ns, "serviceAccount": sa, "roleArn": role,
                    "associationId": format!("a-{i}"),
                    "associationArn": format!("arn:aws:eks:{REGION}:{TEST_ACCOUNT}:podidentityassociation/{CLUSTER}/a-{i}")})
            };
            let list_path = format!("/clusters/{CLUSTER}/pod-identity-associations");
            let body = if path == list_path {
                let items: Vec<Value> = all
                    .iter()
                    .enumerate()
                    .filter(|(_, (ns, sa, _))| {
                        field("namespace").is_none_or(|n| &n == ns)
                            && field("serviceAccount").is_none_or(|s| &s == sa)
                    })
                    .map(|(i, a)| item(i, a))
                    .collect();
                json!({"associations": items})
            } else if let Some(id) = path.strip_prefix(&format!("{list_path}/a-")) {
                match id.parse::<usize>().ok().and_then(|i| all.get(i).map(|a| item(i, a))) {
                    Some(a) => json!({"association": a}),
                    None => {
                        return (
                            404,
                            "application/json".to_owned(),
                            json!({"message": "no such association"}).to_string(),
                        );
                    }
                }
            } else {
                return (
                    404,
                    "application/json".to_owned(),
                    json!({"message": format!("the stub does not serve {path}")}).to_string(),
                );
            };
            (200, "application/json".to_owned(), body.to_string())
        }));
    }

    fn deny(&self, action: &str, resource_prefix: &str) {
        self.denied
            .lock()
            .unwrap()
            .push((action.to_owned(), resource_prefix.to_owned()));
    }

    /// Runs `ascp doctor ARGS --output json`: exit code and report.
    fn doctor_json(&self, args: &[&str]) -> (i32, Value) {
        let (code, stdout, stderr) = self.doctor(&[args, &["--output", "json"]].concat());
        let report: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\nstderr:\n{stderr}"));
        (code, report)
    }

    /// Runs `ascp doctor ARGS`: exit code, stdout, stderr.
    fn doctor(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_ascp"))
            .arg("doctor")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.lb.kubeconfig().parent().unwrap())
            .envs(self.lb.env(&[
                ("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID),
                ("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY),
                ("AWS_REGION", REGION),
                ("RUST_LOG", "warn"),
            ]))
            .output()
            .expect("run ascp doctor");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// No call that reads a value reached AWS.
    fn assert_no_value_read(&self) {
        for op in [
            "GetSecretValue",
            "BatchGetSecretValue",
            "GetParameters",
            "GetParameter",
        ] {
            assert_eq!(self.lb.proxy.calls(op), 0, "{op} must never be called");
        }
    }
}

fn csi_driver(audiences: &[&str]) -> Value {
    let requests: Vec<Value> = audiences.iter().map(|a| json!({"audience": a})).collect();
    json!({"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
        "metadata": {"name": "secrets-store.csi.k8s.io"},
        "spec": {"attachRequired": false, "podInfoOnMount": true, "requiresRepublish": true,
            "tokenRequests": requests, "volumeLifecycleModes": ["Ephemeral"]}})
}

/// The driver chart's DaemonSet, as far as the provider directories go.
fn driver_daemonset() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "csi-secrets-store", "namespace": "kube-system"},
        "spec": {"selector": {"matchLabels": {"app": "secrets-store-csi-driver"}},
            "template": {"metadata": {"labels": {"app": "secrets-store-csi-driver"}}, "spec": {
                "containers": [{"name": "secrets-store", "image": "registry.k8s.io/csi-secrets-store/driver:v1.5.5",
                    "args": ["--endpoint=$(CSI_ENDPOINT)", "--nodeid=$(KUBE_NODE_NAME)",
                        "--provider-volume=/var/run/secrets-store-csi-providers",
                        "--additional-provider-volume-paths=/etc/kubernetes/secrets-store-csi-providers"],
                    "volumeMounts": [
                        {"name": "providers-dir", "mountPath": "/var/run/secrets-store-csi-providers"},
                        {"name": "providers-dir-0", "mountPath": "/etc/kubernetes/secrets-store-csi-providers"}]}],
                "volumes": [
                    {"name": "providers-dir", "hostPath": {"path": "/var/run/secrets-store-csi-providers", "type": "DirectoryOrCreate"}},
                    {"name": "providers-dir-0", "hostPath": {"path": "/etc/kubernetes/secrets-store-csi-providers", "type": "DirectoryOrCreate"}}]}}}})
}

fn irsa_trust(ns: &str, sa: &str) -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Federated": format!("arn:aws:iam::{TEST_ACCOUNT}:oidc-provider/{ISSUER_HOST}")},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            format!("{ISSUER_HOST}:sub"): format!("system:serviceaccount:{ns}:{sa}"),
            format!("{ISSUER_HOST}:aud"): "sts.amazonaws.com"}}}]})
}

fn pod_identity_trust() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "pods.eks.amazonaws.com"},
        "Action": ["sts:AssumeRole", "sts:TagSession"]}]})
}

async fn create_role(iam: &aws_sdk_iam::Client, name: &str, trust: &Value) {
    iam.create_role()
        .role_name(name)
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("create role {name} in moto: {e:?}"));
}

/// The check named `name` of a JSON report.
fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

/// The names of the checks that FAILed.
fn failed(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["outcome"] == "FAIL")
        .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn assert_fails(report: &Value, name: &str, detail: &str, fix: &str) {
    let c = check(report, name);
    assert_eq!(c["outcome"], "FAIL", "{c:#}");
    let d = c["detail"].as_str().unwrap_or_default();
    let f = c["fix"].as_str().unwrap_or_default();
    assert!(d.contains(detail), "detail of {name} lacks {detail:?}: {d}");
    assert!(f.contains(fix), "fix of {name} lacks {fix:?}: {f}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_irsa_pod_passes_every_check() {
    let world = World::healthy(false).await;
    let (code, report) = world.doctor_json(&["--namespace", NS, "--pod", POD]);
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "pod",
            "driver",
            "driver.audience",
            "driver.republish",
            "provider",
            "provider.pod",
            "provider.socket",
            "class",
            "class.valid",
            "class.region",
            "identity.annotation",
            "identity.role",
            "identity.trust",
            &format!("permissions[{SECRET}]"),
            "permissions[_web_config]",
        ],
        "{report:#}"
    );
    for c in report["checks"].as_array().unwrap() {
        assert_eq!(c["outcome"], "PASS", "{c:#}");
        assert!(c.get("fix").is_none(), "{c:#}");
    }
    assert_eq!(report["summary"], json!({"pass": 15, "warn": 0, "fail": 0}));
    assert_eq!(report["subject"], json!({"namespace": NS, "pod": POD}));
    assert_eq!(code, 0);
    assert!(
        check(&report, "class.region")["detail"]
            .as_str()
            .unwrap()
            .contains("node node-1"),
        "{report:#}"
    );
    // One simulation per resource: the secret's ARN (GetSecretValue and
    // DescribeSecret), the parameter's.
    assert_eq!(world.lb.proxy.calls("SimulatePrincipalPolicy"), 2);
    assert_eq!(world.lb.proxy.calls("DescribeSecret"), 1);
    assert_eq!(world.lb.proxy.calls("DescribeParameters"), 1);
    assert_eq!(world.lb.proxy.calls("GetRole"), 1);
    world.assert_no_value_read();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_pod_identity_pod_passes_every_check() {
    let world = World::healthy(true).await;
    let (code, out, err) =
        world.doctor(&["--namespace", NS, "--pod", POD, "--cluster-name", CLUSTER]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("PASS  identity.association"), "{out}");
    assert!(out.contains(&role_arn("pi-role")), "{out}");
    assert!(
        out.ends_with("15 check(s): 15 PASS, 0 WARN, 0 FAIL\n"),
        "{out}"
    );
    assert!(!out.contains("FAIL  ") && !out.contains("WARN  "), "{out}");
    // One list, one describe: the association's role.
    assert_eq!(world.lb.proxy.calls_in(REGION, support::UNKNOWN), 2);
    world.assert_no_value_read();
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_identity_without_an_association_fails() {
    let world = World::healthy(true).await;
    world.associations.lock().unwrap().clear();
    let (code, report) =
        world.doctor_json(&["--namespace", NS, "--pod", POD, "--cluster-name", CLUSTER]);
    assert_eq!(code, 1);
    assert_eq!(failed(&report), ["identity.association"]);
    assert_fails(
        &report,
        "identity.association",
        "no EKS Pod Identity association for ServiceAccount web in namespace app",
        "aws eks create-pod-identity-association --cluster-name test-cluster --namespace app --service-account web",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_audience_fails_the_driver_check() {
    let world = World::healthy(false).await;
    world.lb.kube.add_object(
        "/apis/storage.k8s.io/v1/csidrivers/secrets-store.csi.k8s.io",
        csi_driver(&["pods.eks.amazonaws.com"]),
    );
    let (code, report) = world.doctor_json(&["--namespace", NS, "--pod", POD]);
    assert_eq!(code, 1);
    assert_eq!(failed(&report), ["driver.audience"]);
    assert_fails(
        &report,
        "driver.audience",
        "lack the audience sts.amazonaws.com",
        r#"kubectl patch csidriver secrets-store.csi.k8s.io --type merge -p '{"spec":{"tokenRequests":[{"audience":"pods.eks.amazonaws.com"},{"audience":"sts.amazonaws.com"}]}}'"#,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_without_the_role_annotation_fails() {
    let world = World::healthy(false).await;
    world.lb.kube.add_service_account(NS, SA, None);
    let (code, report) = world.doctor_json(&["--namespace", NS, "--pod", POD]);
    assert_eq!(code, 1);
    assert_eq!(failed(&report), ["identity.annotation"]);
    assert_fails(
        &report,
        "identity.annotation",
        "ServiceAccount app/web has no eks.amazonaws.com/role-arn annotation",
        "kubectl annotate serviceaccount -n app web eks.amazonaws.com/role-arn=arn:aws:iam::<account>:role/<role>",
    );
    // Nothing to simulate without a role.
    assert_eq!(world.lb.proxy.calls("SimulatePrincipalPolicy"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_socket_directory_fails_the_provider_check() {
    let world = World::healthy(false).await;
    world.set_provider_volume("/provider", "/opt/providers");
    let (code, report) = world.doctor_json(&["--namespace", NS, "--pod", POD]);
    assert_eq!(code, 1);
    assert_eq!(failed(&report), ["provider.socket"]);
    assert_fails(
        &report,
        "provider.socket",
        "ascp listens in /opt/providers on the host; driver DaemonSet kube-system/csi-secrets-store looks in /var/run/secrets-store-csi-providers, /etc/kubernetes/secrets-store-csi-providers",
        "set ascp's Helm value providerVolume to /var/run/secrets-store-csi-providers",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_class_in_another_namespace_fails() {
    let world = World::healthy(false).await;
    world.lb.kube.remove_object(&format!(
        "/apis/secrets-store.csi.x-k8s.io/v1/namespaces/{NS}/secretproviderclasses/{CLASS}"
    ));
    world.add_class(
        "shared",
        json!({"objects": "- objectName: db-password\n  objectType: secretsmanager\n"}),
    );
    let (code, report) = world.doctor_json(&["--namespace", NS, "--pod", POD]);
    assert_eq!(code, 1);
    assert_eq!(failed(&report), ["class"]);
    assert_fails(
        &report,
        "class",
        "SecretProviderClass web-secrets not found in namespace app, but it exists in namespace shared",
        "create SecretProviderClass web-secrets in namespace app",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_object_fails_its_permissions_check() {
    let world = World::healthy(false).await;
    let secret_arn_prefix =
        format!("arn:aws:secretsmanager:{REGION}:{TEST_ACCOUNT}:secret:{SECRET}");
    world.deny("secretsmanager:GetSecretValue", &secret_arn_prefix);
    let (code, report) = world.doctor_json(&["--namespace", NS, "--pod", POD]);
    assert_eq!(code, 1);
    assert_eq!(failed(&report), [format!("permissions[{SECRET}]")]);
    assert_fails(
        &report,
        &format!("permissions[{SECRET}]"),
        &format!(
            "{} is denied secretsmanager:GetSecretValue on {secret_arn_prefix}",
            role_arn("web-role")
        ),
        &format!("allow secretsmanager:GetSecretValue on {secret_arn_prefix}"),
    );
    world.assert_no_value_read();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kms_denial_fails_its_permissions_check() {
    let world = World::healthy(false).await;
    let config = sdk_config(&world.lb.proxy.endpoint(), REGION).await;
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name("api-key")
        .secret_string("k3y")
        .kms_key_id(KMS_KEY)
        .send()
        .await
        .expect("create a secret under a customer key");
    world.add_class(
        NS,
        json!({"objects": "- objectName: api-key\n  objectType: secretsmanager\n"}),
    );
    world.deny("kms:Decrypt", KMS_KEY);
    let (code, report) = world.doctor_json(&["--namespace", NS, "--pod", POD]);
    assert_eq!(code, 1);
    assert_eq!(failed(&report), ["permissions[api-key]"]);
    assert_fails(
        &report,
        "permissions[api-key]",
        &format!("is denied kms:Decrypt on {KMS_KEY}: implicitDeny"),
        &format!(
            "allow kms:Decrypt on {KMS_KEY} in {}'s policies and in the key's policy",
            role_arn("web-role")
        ),
    );
    // The secret's ARN, then its key.
    assert_eq!(world.lb.proxy.calls("SimulatePrincipalPolicy"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_class_and_service_account_are_checked_without_a_pod() {
    let world = World::healthy(false).await;
    // Without a pod there is no node: the class names its region.
    world.add_class(
        NS,
        json!({"region": REGION, "objects": format!("- objectName: {SECRET}\n  objectType: secretsmanager\n")}),
    );
    let (code, report) =
        world.doctor_json(&["--namespace", NS, "--spc", CLASS, "--service-account", SA]);
    assert_eq!(failed(&report), Vec::<String>::new(), "{report:#}");
    assert_eq!(code, 0);
    assert_eq!(
        check(&report, "class.region")["detail"],
        "region us-east-1, from the class"
    );
    assert_eq!(
        check(&report, "provider.pod")["detail"],
        "1 provider pod(s) ready"
    );
    assert_eq!(
        report["subject"],
        json!({"namespace": NS, "spc": CLASS, "service_account": SA})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_missing_in_the_failover_region_fails() {
    let world = World::healthy(false).await;
    world.add_class(
        NS,
        json!({"region": REGION, "failoverRegion": "us-west-2",
            "objects": format!("- objectName: {SECRET}\n  objectType: secretsmanager\n  objectAlias: db\n")}),
    );
    let (code, report) = world.doctor_json(&["--namespace", NS, "--pod", POD]);
    assert_eq!(code, 1);
    assert_eq!(failed(&report), ["permissions[db failover]"]);
    assert_eq!(check(&report, "permissions[db]")["outcome"], "PASS");
    assert_fails(
        &report,
        "permissions[db failover]",
        "secretsmanager db-password in us-west-2: not found",
        "create it in us-west-2, or correct objectName / the region",
    );
    assert_eq!(world.lb.proxy.calls_in(REGION, "DescribeSecret"), 1);
    assert_eq!(world.lb.proxy.calls_in("us-west-2", "DescribeSecret"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chained_role_that_does_not_trust_the_pods_role_fails() {
    let world = World::healthy(false).await;
    let config = sdk_config(&world.lb.proxy.endpoint(), REGION).await;
    let iam = aws_sdk_iam::Client::new(&config);
    let trust_other = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": role_arn("someone-else")}, "Action": "sts:AssumeRole"}]});
    create_role(&iam, "reader", &trust_other).await;
    world.add_class(
        NS,
        json!({"assumeRoleArn": role_arn("reader"),
            "objects": format!("- objectName: {SECRET}\n  objectType: secretsmanager\n")}),
    );
    let (code, report) = world.doctor_json(&["--namespace", NS, "--pod", POD]);
    assert_eq!(code, 1);
    assert_eq!(failed(&report), ["identity.chain"]);
    assert_fails(
        &report,
        "identity.chain",
        &format!(
            "assumeRoleArn {}'s trust policy does not allow {} to sts:AssumeRole",
            role_arn("reader"),
            role_arn("web-role")
        ),
        &format!(
            "{{\"Effect\":\"Allow\",\"Principal\":{{\"AWS\":\"{}\"}},\"Action\":\"sts:AssumeRole\"}}",
            role_arn("web-role")
        ),
    );
    // The objects are simulated as the chained role, which reads them.
    let simulated = world.lb.proxy.bodies("SimulatePrincipalPolicy");
    assert_eq!(simulated.len(), 1);
    assert!(
        simulated[0].contains("PolicySourceArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Freader"),
        "{}",
        simulated[0]
    );
}
