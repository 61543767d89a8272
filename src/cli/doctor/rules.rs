//! The checks: pure functions from [`Facts`] to [`Check`]s, in the order a
//! mount walks the chain (pod → driver → provider → class → identity →
//! permissions). A check whose prerequisite failed is left out: the failed
//! one already says what to change.

use serde_json::Value;

use super::Check;
use super::facts::{
    DEFAULT_PROVIDER_DIR, DRIVER_CONTAINER, DRIVER_NAME, Facts, Found, IRSA_AUDIENCE, ObjectFacts,
    POD_IDENTITY_AUDIENCE, PROVIDER_CONTAINER,
};
use crate::arn::{Arn, is_iam_role_arn};
use crate::identity::kube::{REGION_LABEL, ROLE_ARN_ANNOTATION};
use crate::spc::{MountParams, keys};

/// The driver's own default for `--provider-volume`.
const DRIVER_DEFAULT_DIR: &str = "/etc/kubernetes/secrets-store-csi-providers";

/// Every check, in order.
pub fn all(f: &Facts) -> Vec<Check> {
    let mut checks = pod(f);
    checks.extend(driver(f));
    checks.extend(provider(f));
    checks.extend(class(f));
    checks.extend(identity(f));
    checks.extend(f.objects.iter().map(|o| permissions(f, o)));
    checks
}

fn pod(f: &Facts) -> Vec<Check> {
    let (Some(found), Some(name)) = (&f.pod, &f.subject.pod) else {
        return Vec::new();
    };
    let ns = &f.subject.namespace;
    vec![match found {
        Found::Yes(p) if p.classes.is_empty() => Check::fail(
            "pod",
            format!("pod {ns}/{name} has no CSI volume of driver {DRIVER_NAME}"),
            format!(
                "add a volume with csi.driver: {DRIVER_NAME} and volumeAttributes.secretProviderClass: <class> to the pod"
            ),
        ),
        Found::Yes(p) => {
            let mut detail = format!(
                "pod {ns}/{name} runs as ServiceAccount {} on node {}, mounting class {}",
                p.service_account,
                p.node.as_deref().unwrap_or("(not scheduled)"),
                p.classes.join(", ")
            );
            if p.classes.len() > 1 {
                detail.push_str(&format!(
                    "; checking {} (--spc picks another)",
                    f.class_name.as_deref().unwrap_or("?")
                ));
            }
            Check::pass("pod", detail)
        }
        Found::Missing => Check::fail(
            "pod",
            format!("pod {ns}/{name} not found"),
            "check the pod's name and --namespace",
        ),
        Found::Error(e) => Check::fail(
            "pod",
            format!("cannot read pod {ns}/{name}: {e}"),
            "the doctor's Kubernetes identity needs get on pods",
        ),
    }]
}

/// The audiences the class's identity needs; both when the class is unknown.
fn needed_audiences(f: &Facts) -> Vec<&'static str> {
    match f.class.get() {
        Some(c) if c.uses_pod_identity() => vec![POD_IDENTITY_AUDIENCE],
        Some(_) => vec![IRSA_AUDIENCE],
        None => vec![IRSA_AUDIENCE, POD_IDENTITY_AUDIENCE],
    }
}

fn driver(f: &Facts) -> Vec<Check> {
    let d = match &f.csi_driver {
        Found::Yes(d) => d,
        Found::Missing => {
            return vec![Check::fail(
                "driver",
                format!(
                    "no CSIDriver {DRIVER_NAME}: the Secrets Store CSI driver is not installed"
                ),
                "install it: helm install csi-secrets-store secrets-store-csi-driver/secrets-store-csi-driver -n kube-system, or ascp's chart with secrets-store-csi-driver.install=true",
            )];
        }
        Found::Error(e) => {
            return vec![Check::fail(
                "driver",
                format!("cannot read CSIDriver {DRIVER_NAME}: {e}"),
                "the doctor's Kubernetes identity needs get on csidrivers (storage.k8s.io)",
            )];
        }
    };
    let mut checks = vec![Check::pass(
        "driver",
        format!("CSIDriver {DRIVER_NAME} exists"),
    )];
    let missing: Vec<&str> = needed_audiences(f)
        .into_iter()
        .filter(|a| !d.audiences.iter().any(|have| have == a))
        .collect();
    checks.push(if missing.is_empty() {
        Check::pass(
            "driver.audience",
            format!("tokenRequests carry {}", d.audiences.join(", ")),
        )
    } else {
        let mut all: Vec<String> = d.audiences.clone();
        all.extend(missing.iter().map(|a| (*a).to_owned()));
        let requests = all
            .iter()
            .map(|a| format!("{{\"audience\":\"{a}\"}}"))
            .collect::<Vec<_>>()
            .join(",");
        Check::fail(
            "driver.audience",
            format!(
                "the CSIDriver's tokenRequests lack the audience {}: the driver passes no token for it and the mount fails",
                missing.join(" and ")
            ),
            format!(
                "kubectl patch csidriver {DRIVER_NAME} --type merge -p '{{\"spec\":{{\"tokenRequests\":[{requests}]}}}}' (driver chart: tokenRequests)"
            ),
        )
    });
    checks.push(if d.requires_republish {
        Check::pass("driver.republish", "requiresRepublish is set (rotation)")
    } else {
        Check::warn(
            "driver.republish",
            "requiresRepublish is not set: mounted secrets are never refreshed (no rotation)",
            format!(
                "kubectl patch csidriver {DRIVER_NAME} --type merge -p '{{\"spec\":{{\"requiresRepublish\":true}}}}' (driver chart: enableSecretRotation=true)"
            ),
        )
    });
    checks
}

fn provider(f: &Facts) -> Vec<Check> {
    let p = match &f.provider {
        Found::Yes(p) => p,
        Found::Missing => {
            return vec![Check::fail(
                "provider",
                format!(
                    "no DaemonSet runs a container named {PROVIDER_CONTAINER}: the driver answers \"provider not found\""
                ),
                "install ascp: helm install ascp deploy/helm/ascp -n kube-system",
            )];
        }
        Found::Error(e) => {
            return vec![Check::fail(
                "provider",
                format!("cannot list DaemonSets: {e}"),
                "the doctor's Kubernetes identity needs list on daemonsets (apps)",
            )];
        }
    };
    let mut checks = vec![Check::pass(
        "provider",
        format!("DaemonSet {}/{} runs ascp", p.namespace, p.name),
    )];
    checks.push(provider_pod(f, p));
    checks.push(socket(f, p));
    checks
}

fn provider_pod(f: &Facts, p: &super::facts::DaemonSetFacts) -> Check {
    let node = f
        .pod
        .as_ref()
        .and_then(|p| p.get())
        .and_then(|p| p.node.clone());
    let pods = match &f.provider_pods {
        Found::Yes(pods) => pods,
        Found::Missing => {
            return Check::fail(
                "provider.pod",
                "no provider pods",
                "see the DaemonSet's events",
            );
        }
        Found::Error(e) => {
            return Check::fail(
                "provider.pod",
                format!("cannot list the provider's pods: {e}"),
                "the doctor's Kubernetes identity needs list on pods in the provider's namespace",
            );
        }
    };
    let describe = format!("kubectl -n {} describe daemonset {}", p.namespace, p.name);
    match node {
        Some(node) => match pods.iter().find(|pod| pod.node.as_deref() == Some(&node)) {
            Some(pod) if pod.ready => Check::pass(
                "provider.pod",
                format!("provider pod {} is ready on node {node}", pod.name),
            ),
            Some(pod) => Check::fail(
                "provider.pod",
                format!("provider pod {} on node {node} is not ready", pod.name),
                format!(
                    "kubectl -n {} logs {} and kubectl -n {} describe pod {}",
                    p.namespace, pod.name, p.namespace, pod.name
                ),
            ),
            None => Check::fail(
                "provider.pod",
                format!(
                    "no provider pod runs on node {node}: the driver there answers \"provider not found\""
                ),
                format!(
                    "let the DaemonSet's nodeSelector, tolerations and affinity admit node {node} ({describe})"
                ),
            ),
        },
        None => {
            let ready = pods.iter().filter(|pod| pod.ready).count();
            if ready == 0 {
                Check::fail("provider.pod", "no provider pod is ready", describe)
            } else if ready < pods.len() || (p.desired > 0 && p.ready < p.desired) {
                Check::warn(
                    "provider.pod",
                    format!(
                        "{ready} of {} provider pods are ready",
                        pods.len().max(p.desired as usize)
                    ),
                    describe,
                )
            } else {
                Check::pass("provider.pod", format!("{ready} provider pod(s) ready"))
            }
        }
    }
}

/// The driver dials `<dir>/aws.sock` for each provider directory it is
/// given; ascp must listen in one of them, on the host.
fn socket(f: &Facts, p: &super::facts::DaemonSetFacts) -> Check {
    let d = match &f.driver {
        Found::Yes(d) => d,
        _ => {
            return Check::warn(
                "provider.socket",
                format!(
                    "no DaemonSet with a container named {DRIVER_CONTAINER} (the driver's): its socket directory is not compared"
                ),
                "compare the driver DaemonSet's --provider-volume with ascp's providerVolume by hand",
            );
        }
    };
    let ascp_flag = p
        .flag("provider-volume")
        .pop()
        .unwrap_or_else(|| DEFAULT_PROVIDER_DIR.to_owned());
    let Some(ascp_dir) = p.host_dir(&ascp_flag) else {
        return Check::fail(
            "provider.socket",
            format!(
                "ascp's --provider-volume {ascp_flag} is not on a hostPath volume: the driver cannot reach its socket"
            ),
            "mount a hostPath volume at the --provider-volume directory (the chart's providerVolume does)",
        );
    };
    let mut driver_flags = d.flag("provider-volume");
    if driver_flags.is_empty() {
        driver_flags.push(DRIVER_DEFAULT_DIR.to_owned());
    }
    for extra in d.flag("additional-provider-volume-paths") {
        driver_flags.extend(
            extra
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
    }
    let driver_dirs: Vec<String> = driver_flags
        .iter()
        .filter_map(|d2| d.host_dir(d2))
        .collect();
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    if driver_dirs.iter().any(|dir| same(dir, &ascp_dir)) {
        Check::pass(
            "provider.socket",
            format!("the driver and ascp meet at {ascp_dir}/aws.sock on the host"),
        )
    } else {
        Check::fail(
            "provider.socket",
            format!(
                "ascp listens in {ascp_dir} on the host; driver DaemonSet {}/{} looks in {}: the driver answers \"provider not found\"",
                d.namespace,
                d.name,
                if driver_dirs.is_empty() {
                    "no hostPath directory".to_owned()
                } else {
                    driver_dirs.join(", ")
                }
            ),
            format!(
                "set ascp's Helm value providerVolume to {} (or the driver's linux.providersDir to {ascp_dir})",
                driver_dirs
                    .first()
                    .map_or(DEFAULT_PROVIDER_DIR, String::as_str)
            ),
        )
    }
}

fn class(f: &Facts) -> Vec<Check> {
    let Some(name) = &f.class_name else {
        return Vec::new();
    };
    let ns = &f.subject.namespace;
    let c = match &f.class {
        Found::Yes(c) => c,
        Found::Missing => {
            let (detail, fix) = if f.class_elsewhere.is_empty() {
                (
                    format!("SecretProviderClass {name} not found in namespace {ns}"),
                    format!(
                        "create SecretProviderClass {name} in namespace {ns}, or name an existing one in the volume's secretProviderClass"
                    ),
                )
            } else {
                (
                    format!(
                        "SecretProviderClass {name} not found in namespace {ns}, but it exists in namespace {}: a class must be in the pod's namespace",
                        f.class_elsewhere.join(", ")
                    ),
                    format!(
                        "create SecretProviderClass {name} in namespace {ns} (a copy of the one in {})",
                        f.class_elsewhere[0]
                    ),
                )
            };
            return vec![Check::fail("class", detail, fix)];
        }
        Found::Error(e) => {
            return vec![Check::fail(
                "class",
                format!("cannot read SecretProviderClass {ns}/{name}: {e}"),
                "the doctor's Kubernetes identity needs get and list on secretproviderclasses (secrets-store.csi.x-k8s.io)",
            )];
        }
    };
    let mut checks = vec![Check::pass(
        "class",
        format!("SecretProviderClass {ns}/{name} exists"),
    )];
    if c.provider != "aws" {
        checks.push(Check::fail(
            "class.provider",
            format!(
                "spec.provider is {:?}: no provider of that name answers",
                c.provider
            ),
            "set spec.provider: aws",
        ));
    }
    let region = f.region();
    checks.push(match MountParams::check(&c.attributes(), region.as_deref()) {
        Ok(params) => {
            let mut detail = format!("{} object(s), valid", params.objects.len());
            for w in &params.warnings {
                detail.push_str(&format!("; warning: {w}"));
            }
            Check::pass("class.valid", detail)
        }
        Err(problems) => Check::fail(
            "class.valid",
            format!(
                "{} problem(s): {}",
                problems.len(),
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            "correct the class's parameters as listed (ascp validate FILE shows the same offline)",
        ),
    });
    let node = f
        .pod
        .as_ref()
        .and_then(|p| p.get())
        .and_then(|p| p.node.clone());
    checks.push(match region {
        Some(r) => {
            let from = if c.parameters.get(keys::REGION).is_some_and(|r| !r.is_empty()) {
                "the class".to_owned()
            } else if f.provider.get().and_then(|p| p.env_region.clone()).is_some() {
                "the provider's AWS_REGION".to_owned()
            } else {
                format!("node {}'s {REGION_LABEL} label", node.as_deref().unwrap_or("?"))
            };
            Check::pass("class.region", format!("region {r}, from {from}"))
        }
        None => Check::fail(
            "class.region",
            match &node {
                Some(n) => format!(
                    "no region: the class names none, the provider has no AWS_REGION, node {n} has no {REGION_LABEL} label"
                ),
                None => "no region: the class names none, the provider has no AWS_REGION, and the pod's node is not known".to_owned(),
            },
            format!(
                "set parameters.region in the class (or awsRegion in ascp's Helm values, or label the node {REGION_LABEL})"
            ),
        ),
    });
    checks
}

fn identity(f: &Facts) -> Vec<Check> {
    let Some(c) = f.class.get() else {
        return Vec::new();
    };
    let ns = &f.subject.namespace;
    let sa = f.service_account.as_deref().unwrap_or("default");
    let mut checks = Vec::new();
    if c.uses_pod_identity() {
        let association = match &f.associations {
            Some(Found::Yes(roles)) => Check::pass(
                "identity.association",
                format!(
                    "EKS Pod Identity association for {ns}/{sa}: role {}",
                    roles.join(", ")
                ),
            ),
            Some(Found::Missing) => Check::fail(
                "identity.association",
                format!(
                    "no EKS Pod Identity association for ServiceAccount {sa} in namespace {ns} of cluster {}",
                    f.subject.cluster_name.as_deref().unwrap_or("?")
                ),
                format!(
                    "aws eks create-pod-identity-association --cluster-name {} --namespace {ns} --service-account {sa} --role-arn <role>",
                    f.subject.cluster_name.as_deref().unwrap_or("<cluster>")
                ),
            ),
            Some(Found::Error(e)) => Check::fail(
                "identity.association",
                format!("cannot list EKS Pod Identity associations: {e}"),
                "pass --cluster-name; the doctor's AWS identity needs eks:ListPodIdentityAssociations and eks:DescribePodIdentityAssociation",
            ),
            None => return checks,
        };
        checks.push(association);
    } else {
        checks.push(match &f.role_annotation {
            Found::Yes(Some(arn)) if is_iam_role_arn(arn.trim()) => Check::pass(
                "identity.annotation",
                format!("ServiceAccount {ns}/{sa} is annotated with role {}", arn.trim()),
            ),
            Found::Yes(Some(arn)) => Check::fail(
                "identity.annotation",
                format!("ServiceAccount {ns}/{sa}: {ROLE_ARN_ANNOTATION} {arn:?} is not an IAM role ARN"),
                format!("kubectl annotate --overwrite serviceaccount -n {ns} {sa} {ROLE_ARN_ANNOTATION}=arn:aws:iam::<account>:role/<role>"),
            ),
            Found::Yes(None) => Check::fail(
                "identity.annotation",
                format!("ServiceAccount {ns}/{sa} has no {ROLE_ARN_ANNOTATION} annotation (IRSA)"),
                format!(
                    "kubectl annotate serviceaccount -n {ns} {sa} {ROLE_ARN_ANNOTATION}=arn:aws:iam::<account>:role/<role>, or set usePodIdentity: \"true\" in the class for EKS Pod Identity"
                ),
            ),
            Found::Missing => Check::fail(
                "identity.annotation",
                format!("ServiceAccount {ns}/{sa} not found"),
                format!("create ServiceAccount {sa} in namespace {ns}"),
            ),
            Found::Error(e) => Check::fail(
                "identity.annotation",
                format!("cannot read ServiceAccount {ns}/{sa}: {e}"),
                "the doctor's Kubernetes identity needs get on serviceaccounts",
            ),
        });
    }
    let Some(role) = &f.role else {
        return checks;
    };
    let role = match role {
        Found::Yes(r) => r,
        Found::Missing => {
            checks.push(Check::fail(
                "identity.role",
                "the IAM role does not exist",
                "create the role, or correct the role ARN",
            ));
            return checks;
        }
        Found::Error(e) => {
            checks.push(Check::fail(
                "identity.role",
                format!("cannot read the IAM role: {e}"),
                "the doctor's AWS identity needs iam:GetRole",
            ));
            return checks;
        }
    };
    checks.push(Check::pass(
        "identity.role",
        format!("IAM role {} exists", role.arn),
    ));
    if c.uses_pod_identity() {
        checks.push(match pod_identity_trust(&role.trust) {
            Ok(()) => Check::pass(
                "identity.trust",
                format!("{} trusts {POD_IDENTITY_AUDIENCE}", role.arn),
            ),
            Err(why) => Check::fail(
                "identity.trust",
                format!("{}'s trust policy {why}", role.arn),
                format!(
                    "add to its trust policy: {{\"Effect\":\"Allow\",\"Principal\":{{\"Service\":\"{POD_IDENTITY_AUDIENCE}\"}},\"Action\":[\"sts:AssumeRole\",\"sts:TagSession\"]}}"
                ),
            ),
        });
    } else {
        checks.push(match &f.issuer {
            Some(Found::Yes(issuer)) => match web_identity_trust(&role.trust, issuer, ns, sa) {
                Ok(note) => Check::pass(
                    "identity.trust",
                    format!("{} trusts system:serviceaccount:{ns}:{sa} through {issuer}{note}", role.arn),
                ),
                Err(why) => {
                    let host = issuer_host(issuer);
                    Check::fail(
                        "identity.trust",
                        format!("{}'s trust policy {why}", role.arn),
                        format!(
                            "add to its trust policy: {{\"Effect\":\"Allow\",\"Principal\":{{\"Federated\":\"arn:aws:iam::<account>:oidc-provider/{host}\"}},\"Action\":\"sts:AssumeRoleWithWebIdentity\",\"Condition\":{{\"StringEquals\":{{\"{host}:sub\":\"system:serviceaccount:{ns}:{sa}\",\"{host}:aud\":\"{IRSA_AUDIENCE}\"}}}}}}"
                        ),
                    )
                }
            },
            Some(Found::Error(e)) => Check::warn(
                "identity.trust",
                format!("the cluster's OIDC issuer is not known ({e}): the trust policy is not checked"),
                "pass --oidc-issuer (aws eks describe-cluster --query cluster.identity.oidc.issuer)",
            ),
            _ => Check::warn(
                "identity.trust",
                "the cluster's OIDC issuer is not known: the trust policy is not checked",
                "pass --oidc-issuer (aws eks describe-cluster --query cluster.identity.oidc.issuer)",
            ),
        });
    }
    if let Some(chained) = &f.chained_role {
        checks.push(match chained {
            Found::Yes(target) => match role_trust(&target.trust, &role.arn) {
                Ok(()) => Check::pass(
                    "identity.chain",
                    format!("{} trusts {} (assumeRoleArn)", target.arn, role.arn),
                ),
                Err(why) => Check::fail(
                    "identity.chain",
                    format!("assumeRoleArn {}'s trust policy {why}", target.arn),
                    format!(
                        "add to its trust policy: {{\"Effect\":\"Allow\",\"Principal\":{{\"AWS\":\"{}\"}},\"Action\":\"sts:AssumeRole\"}}",
                        role.arn
                    ),
                ),
            },
            Found::Missing => Check::fail(
                "identity.chain",
                "the assumeRoleArn role does not exist",
                "create it, or correct assumeRoleArn in the class",
            ),
            Found::Error(e) => Check::fail(
                "identity.chain",
                format!("cannot read the assumeRoleArn role: {e}"),
                "the doctor's AWS identity needs iam:GetRole",
            ),
        });
    }
    checks
}

/// `https://oidc.eks.REGION.amazonaws.com/id/X` → `oidc.eks.REGION.amazonaws.com/id/X`.
pub fn issuer_host(issuer: &str) -> &str {
    issuer
        .strip_prefix("https://")
        .unwrap_or(issuer)
        .trim_end_matches('/')
}

/// A string or a list of strings, as policies write them.
fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The policy's Allow statements.
fn allows(doc: &Value) -> Vec<&Value> {
    let statements = match &doc["Statement"] {
        Value::Array(a) => a.iter().collect(),
        s @ Value::Object(_) => vec![s],
        _ => Vec::new(),
    };
    statements
        .into_iter()
        .filter(|s| s["Effect"].as_str() == Some("Allow"))
        .collect()
}

/// Whether a statement's actions include `action` (`*` and `sts:*` too).
fn has_action(statement: &Value, action: &str) -> bool {
    let service = action.split(':').next().unwrap_or("");
    strings(&statement["Action"])
        .iter()
        .any(|a| a.eq_ignore_ascii_case(action) || *a == "*" || *a == format!("{service}:*"))
}

/// IAM's StringLike: `*` any run, `?` one character.
pub fn string_like(pattern: &str, value: &str) -> bool {
    let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
    // Iterative matching with backtracking to the last `*`: linear space,
    // at most |p|·|v| steps.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < v.len() {
        if i < p.len() && (p[i] == '?' || p[i] == v[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// Whether an IRSA trust policy admits `system:serviceaccount:NS:SA`
/// through `issuer`: an Allow of `sts:AssumeRoleWithWebIdentity` for the
/// Federated principal `…:oidc-provider/<issuer>`, whose conditions on
/// `<issuer>:sub` (StringEquals or StringLike) match the ServiceAccount and
/// on `<issuer>:aud`, when present, admit `sts.amazonaws.com`. `Ok` carries a
/// note (e.g. when no `sub` condition narrows it).
pub fn web_identity_trust(doc: &Value, issuer: &str, ns: &str, sa: &str) -> Result<String, String> {
    let host = issuer_host(issuer);
    let subject = format!("system:serviceaccount:{ns}:{sa}");
    let provider_suffix = format!(":oidc-provider/{host}");
    let mut reasons = Vec::new();
    for s in allows(doc) {
        let federated = strings(&s["Principal"]["Federated"]);
        if !federated.iter().any(|p| p.ends_with(&provider_suffix)) {
            continue;
        }
        if !has_action(s, "sts:AssumeRoleWithWebIdentity") {
            reasons
                .push("allows the OIDC provider but not sts:AssumeRoleWithWebIdentity".to_owned());
            continue;
        }
        let mut sub_seen = false;
        let mut ok = true;
        if let Value::Object(conditions) = &s["Condition"] {
            for (operator, entries) in conditions {
                let like = match operator.as_str() {
                    "StringEquals" => false,
                    "StringLike" => true,
                    _ => continue,
                };
                for (key, want) in entries.as_object().into_iter().flatten() {
                    let (value, what) = if key == &format!("{host}:sub") {
                        sub_seen = true;
                        (subject.as_str(), "sub")
                    } else if key == &format!("{host}:aud") {
                        (IRSA_AUDIENCE, "aud")
                    } else {
                        continue;
                    };
                    let wanted = strings(want);
                    let matched = wanted.iter().any(|w| {
                        if like {
                            string_like(w, value)
                        } else {
                            *w == value
                        }
                    });
                    if !matched {
                        ok = false;
                        reasons.push(format!(
                            "requires {operator} {host}:{what} to be {}, not {value}",
                            wanted.join(" or ")
                        ));
                    }
                }
            }
        }
        if ok {
            return Ok(if sub_seen {
                String::new()
            } else {
                " (no sub condition: any ServiceAccount of the cluster may assume it)".to_owned()
            });
        }
    }
    if reasons.is_empty() {
        Err(format!(
            "has no Allow of sts:AssumeRoleWithWebIdentity for the OIDC provider {host}"
        ))
    } else {
        Err(reasons.join("; "))
    }
}

/// Whether a trust policy lets EKS Pod Identity assume the role.
pub fn pod_identity_trust(doc: &Value) -> Result<(), String> {
    let ok = allows(doc).into_iter().any(|s| {
        strings(&s["Principal"]["Service"]).contains(&POD_IDENTITY_AUDIENCE)
            && has_action(s, "sts:AssumeRole")
            && has_action(s, "sts:TagSession")
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "does not allow {POD_IDENTITY_AUDIENCE} sts:AssumeRole and sts:TagSession"
        ))
    }
}

/// Whether a trust policy lets role `from` assume it: an Allow of
/// `sts:AssumeRole` for the AWS principal `from`, its account's root, its
/// account id, or `*`.
pub fn role_trust(doc: &Value, from: &str) -> Result<(), String> {
    let (partition, account) = Arn::parse(from).map_or(("aws", ""), |a| (a.partition, a.account));
    let root = format!("arn:{partition}:iam::{account}:root");
    let ok = allows(doc).into_iter().any(|s| {
        let principals = match &s["Principal"] {
            Value::String(p) => vec![p.as_str()],
            p => strings(&p["AWS"]),
        };
        has_action(s, "sts:AssumeRole")
            && principals
                .iter()
                .any(|p| *p == from || *p == root || *p == account || *p == "*")
    });
    if ok {
        Ok(())
    } else {
        Err(format!("does not allow {from} to sts:AssumeRole"))
    }
}

fn permissions(f: &Facts, o: &ObjectFacts) -> Check {
    let name = format!(
        "permissions[{}{}]",
        o.file,
        if o.failover { " failover" } else { "" }
    );
    let store = o.kind.as_str();
    let role = f.acting_role.as_deref().unwrap_or("the role");
    let what = format!("{store} {} in {}", o.name, o.region);
    match &o.meta {
        Some(Found::Missing) => {
            return Check::fail(
                name,
                format!("{what}: not found"),
                format!(
                    "create it in {}, or correct objectName / the region",
                    o.region
                ),
            );
        }
        Some(Found::Error(e)) => {
            return Check::warn(
                name,
                format!("{what}: cannot describe it: {e}"),
                "the doctor's AWS identity needs secretsmanager:DescribeSecret / ssm:DescribeParameters",
            );
        }
        _ => {}
    }
    let decisions = match &o.decisions {
        Found::Yes(d) => d,
        Found::Missing => {
            return Check::warn(
                name,
                format!("{what}: not simulated"),
                "see the checks above",
            );
        }
        Found::Error(e) => {
            return Check::warn(
                name,
                format!("{what}: cannot simulate {role}'s policies: {e}"),
                "the doctor's AWS identity needs iam:SimulatePrincipalPolicy",
            );
        }
    };
    let denied: Vec<_> = decisions
        .iter()
        .filter(|d| d.decision != "allowed")
        .collect();
    if denied.is_empty() {
        let actions: Vec<&str> = decisions.iter().map(|d| d.action.as_str()).collect();
        return Check::pass(name, format!("{what}: {role} may {}", actions.join(", ")));
    }
    let detail = denied
        .iter()
        .map(|d| format!("{} on {}: {}", d.action, d.resource, d.decision))
        .collect::<Vec<_>>()
        .join("; ");
    let mut fixes: Vec<String> = denied
        .iter()
        .map(|d| {
            let verb = if d.decision == "explicitDeny" {
                "remove the Deny of"
            } else {
                "allow"
            };
            let mut fix = format!("{verb} {} on {} in {role}'s policies", d.action, d.resource);
            if d.action.starts_with("kms:") {
                fix.push_str(" and in the key's policy");
            }
            fix
        })
        .collect();
    fixes.dedup();
    Check::fail(
        name,
        format!("{what}: {role} is denied {detail}"),
        fixes.join("; "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISSUER: &str = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC";

    fn irsa_trust(condition: Value) -> Value {
        json!({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": "arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition,
        }]})
    }

    #[test]
    fn web_identity_trust_matches_sub_and_aud() {
        let doc = irsa_trust(json!({"StringEquals": {
            "oidc.eks.eu-west-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:app:web",
            "oidc.eks.eu-west-1.amazonaws.com/id/ABC:aud": "sts.amazonaws.com"
        }}));
        assert_eq!(
            web_identity_trust(&doc, ISSUER, "app", "web"),
            Ok(String::new())
        );
        let err = web_identity_trust(&doc, ISSUER, "app", "other").unwrap_err();
        assert!(err.contains("system:serviceaccount:app:web"), "{err}");
        let like = irsa_trust(json!({"StringLike": {
            "oidc.eks.eu-west-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:app:*"
        }}));
        assert!(web_identity_trust(&like, ISSUER, "app", "other").is_ok());
        assert!(web_identity_trust(&like, ISSUER, "ops", "web").is_err());
        let open = irsa_trust(Value::Null);
        assert!(
            web_identity_trust(&open, ISSUER, "a", "b")
                .unwrap()
                .contains("no sub")
        );
        let other = irsa_trust(Value::Null);
        assert!(web_identity_trust(&other, "https://oidc.example/id/Z", "a", "b").is_err());
    }

    #[test]
    fn string_like_wildcards() {
        assert!(string_like("a*c", "abbbc"));
        assert!(string_like("a?c", "abc"));
        assert!(!string_like("a?c", "abbc"));
        assert!(string_like("*", ""));
        assert!(!string_like("abc", "ab"));
        assert!(string_like("*:*:web", "system:serviceaccount:app:web"));
    }

    #[test]
    fn role_chain_and_pod_identity_trust() {
        let first = "arn:aws:iam::111122223333:role/first";
        let doc = json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": first}, "Action": "sts:AssumeRole"}});
        assert!(role_trust(&doc, first).is_ok());
        assert!(role_trust(&doc, "arn:aws:iam::111122223333:role/other").is_err());
        let root = json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": ["sts:*"]}]});
        assert!(role_trust(&root, first).is_ok());
        let pi = json!({"Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]});
        assert!(pod_identity_trust(&pi).is_ok());
        assert!(pod_identity_trust(&doc).is_err());
    }
}
