//! What `ascp doctor` knows about a pod's mount, read before any rule runs:
//! Kubernetes objects (the CSIDriver, the driver's and the provider's
//! DaemonSets and pods, the SecretProviderClass, the ServiceAccount, the
//! node) and AWS metadata (IAM roles and their trust policies, EKS Pod
//! Identity associations, each object's ARN and KMS key, and IAM's
//! simulated decisions for what the mount will do).
//!
//! Every read is a metadata call: DescribeSecret and DescribeParameters,
//! never GetSecretValue or GetParameters, so no secret value is ever read.
//! Every failed read is kept as a fact ([`Found::Error`]) for the rules to
//! report; nothing here decides PASS or FAIL.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_iam::error::ProvideErrorMetadata;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use k8s_openapi::api::storage::v1::CSIDriver;
use kube::Api;
use kube::api::{ApiResource, DynamicObject, ListParams};
use serde_json::Value;

use crate::arn::{self, Arn};
use crate::identity::kube::{REGION_LABEL, ROLE_ARN_ANNOTATION};
use crate::spc::objects::ObjectSpec;
use crate::spc::{Attributes, MountParams, keys, parse_go_bool};
use crate::store_kind::StoreKind;

/// The CSI driver's name.
pub const DRIVER_NAME: &str = "secrets-store.csi.k8s.io";
/// The audience of IRSA's token.
pub const IRSA_AUDIENCE: &str = "sts.amazonaws.com";
/// The audience of EKS Pod Identity's token.
pub const POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";
/// The provider's container, in ascp's chart and in ASCP's.
pub const PROVIDER_CONTAINER: &str = "provider-aws-installer";
/// The driver's container, in its chart.
pub const DRIVER_CONTAINER: &str = "secrets-store";
/// The driver's default provider directory.
pub const DEFAULT_PROVIDER_DIR: &str = "/var/run/secrets-store-csi-providers";
/// Longest text kept from an answer (an error message, a name).
const MAX_TEXT: usize = 300;
/// Most objects listed from one collection.
const MAX_LIST: u32 = 500;

/// The outcome of one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<T> {
    /// It exists.
    Yes(T),
    /// It does not exist (HTTP 404, NoSuchEntity, ResourceNotFound).
    Missing,
    /// The read failed; the message says why.
    Error(String),
}

impl<T> Found<T> {
    /// The value, if found.
    pub fn get(&self) -> Option<&T> {
        match self {
            Found::Yes(v) => Some(v),
            _ => None,
        }
    }
}

/// Whose mount is examined.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The namespace.
    pub namespace: String,
    /// The pod, when given.
    pub pod: Option<String>,
    /// The class, when given instead of a pod.
    pub spc: Option<String>,
    /// The ServiceAccount, when given instead of a pod.
    pub service_account: Option<String>,
    /// `--cluster-name`.
    pub cluster_name: Option<String>,
    /// `--oidc-issuer`.
    pub oidc_issuer: Option<String>,
}

/// The pod, as its spec says.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    /// `spec.nodeName`.
    pub node: Option<String>,
    /// `spec.serviceAccountName` (`default` when unset).
    pub service_account: String,
    /// The classes its CSI volumes of [`DRIVER_NAME`] name.
    pub classes: Vec<String>,
}

/// The CSIDriver object.
#[derive(Debug, Clone, Default)]
pub struct CsiDriverFacts {
    /// `spec.tokenRequests[].audience`.
    pub audiences: Vec<String>,
    /// `spec.requiresRepublish`.
    pub requires_republish: bool,
}

/// A DaemonSet and the container of interest in it.
#[derive(Debug, Clone, Default)]
pub struct DaemonSetFacts {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `spec.selector.matchLabels`.
    pub selector: BTreeMap<String, String>,
    /// The container's args.
    pub args: Vec<String>,
    /// The container's `AWS_REGION` value.
    pub env_region: Option<String>,
    /// The container's mounts: mount path → volume name.
    pub mounts: Vec<(String, String)>,
    /// The pod's hostPath volumes: volume name → host path.
    pub host_paths: BTreeMap<String, String>,
    /// `status.desiredNumberScheduled`.
    pub desired: i32,
    /// `status.numberReady`.
    pub ready: i32,
}

impl DaemonSetFacts {
    /// The values of `--flag=value` or `--flag value` in the args.
    pub fn flag(&self, flag: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut args = self.args.iter();
        while let Some(arg) = args.next() {
            // Go's flag package takes -flag as --flag.
            let Some(arg) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                continue;
            };
            match arg.strip_prefix(flag) {
                Some(rest) if rest.starts_with('=') => found.push(rest[1..].to_owned()),
                Some("") => found.extend(args.next().cloned()),
                _ => {}
            }
        }
        found
    }

    /// The host directory behind `path` in the container: the hostPath of
    /// the volume mounted at the longest mount path containing it.
    pub fn host_dir(&self, path: &str) -> Option<String> {
        let path = path.trim_end_matches('/');
        self.mounts
            .iter()
            .filter_map(|(mount, volume)| {
                let mount = mount.trim_end_matches('/');
                let rest = path.strip_prefix(mount)?;
                (rest.is_empty() || rest.starts_with('/')).then_some((mount.len(), volume, rest))
            })
            .max_by_key(|(len, _, _)| *len)
            .and_then(|(_, volume, rest)| {
                self.host_paths
                    .get(volume)
                    .map(|h| format!("{}{rest}", h.trim_end_matches('/')))
            })
    }
}

/// One of the provider's pods.
#[derive(Debug, Clone)]
pub struct ProviderPod {
    /// Its name.
    pub name: String,
    /// Its node.
    pub node: Option<String>,
    /// Whether its Ready condition is True.
    pub ready: bool,
}

/// The SecretProviderClass.
#[derive(Debug, Clone, Default)]
pub struct ClassFacts {
    /// `spec.provider`.
    pub provider: String,
    /// `spec.parameters`.
    pub parameters: BTreeMap<String, String>,
}

impl ClassFacts {
    /// Whether the class asks for EKS Pod Identity (an unparsable value is
    /// the validation's to report; it counts as IRSA here).
    pub fn uses_pod_identity(&self) -> bool {
        self.parameters
            .get(keys::USE_POD_IDENTITY)
            .and_then(|v| parse_go_bool(v))
            .unwrap_or(false)
    }

    /// The class's own parameters as the mount sees them.
    pub fn attributes(&self) -> Attributes {
        Attributes::from_pairs(self.parameters.clone())
    }
}

/// An IAM role.
#[derive(Debug, Clone)]
pub struct RoleFacts {
    /// Its ARN.
    pub arn: String,
    /// Its trust policy, decoded (`Value::Null` when unreadable).
    pub trust: Value,
}

/// An object's metadata in one region.
#[derive(Debug, Clone)]
pub struct ObjectMeta {
    /// Its full ARN.
    pub arn: String,
    /// The KMS key it is encrypted with, as its store names it.
    pub kms_key: Option<String>,
}

/// One action IAM simulated on one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `secretsmanager:GetSecretValue`, ...
    pub action: String,
    /// The resource's ARN.
    pub resource: String,
    /// `allowed`, `explicitDeny` or `implicitDeny`.
    pub decision: String,
}

/// An object of the class, in one of its regions.
#[derive(Debug, Clone)]
pub struct ObjectFacts {
    /// The file it is mounted as (its objectName for a path).
    pub file: String,
    /// The name looked up.
    pub name: String,
    /// Its store.
    pub kind: StoreKind,
    /// The region.
    pub region: String,
    /// Whether this is the failover region.
    pub failover: bool,
    /// DescribeSecret or DescribeParameters (never for a path).
    pub meta: Option<Found<ObjectMeta>>,
    /// IAM's decisions for what the mount does with it.
    pub decisions: Found<Vec<Decision>>,
}

/// Everything the rules read.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Whose mount.
    pub subject: Subject,
    /// The pod (pod mode only).
    pub pod: Option<Found<PodFacts>>,
    /// The class's name (given, or the pod's first).
    pub class_name: Option<String>,
    /// The ServiceAccount's name (given, or the pod's).
    pub service_account: Option<String>,
    /// The CSIDriver.
    pub csi_driver: Found<CsiDriverFacts>,
    /// The driver's DaemonSet.
    pub driver: Found<DaemonSetFacts>,
    /// ascp's DaemonSet.
    pub provider: Found<DaemonSetFacts>,
    /// ascp's pods.
    pub provider_pods: Found<Vec<ProviderPod>>,
    /// The class in the namespace.
    pub class: Found<ClassFacts>,
    /// Other namespaces holding a class of that name (when it is missing).
    pub class_elsewhere: Vec<String>,
    /// The node's region label (when the pod's node is known).
    pub node_region: Option<Found<Option<String>>>,
    /// The ServiceAccount's role annotation.
    pub role_annotation: Found<Option<String>>,
    /// The cluster's OIDC issuer URL (IRSA only).
    pub issuer: Option<Found<String>>,
    /// EKS Pod Identity associations' roles (Pod Identity only).
    pub associations: Option<Found<Vec<String>>>,
    /// The pod's role: from the annotation or the association.
    pub role: Option<Found<RoleFacts>>,
    /// `assumeRoleArn`'s role.
    pub chained_role: Option<Found<RoleFacts>>,
    /// The role the stores' calls are made as.
    pub acting_role: Option<String>,
    /// Each object in each region.
    pub objects: Vec<ObjectFacts>,
}

impl Facts {
    /// The primary region the mount would use: the class's, else the
    /// provider's `AWS_REGION`, else the node's label.
    pub fn region(&self) -> Option<String> {
        let class = self.class.get()?;
        if let Some(r) = class.parameters.get(keys::REGION).filter(|r| !r.is_empty()) {
            return Some(r.clone());
        }
        if let Some(r) = self.provider.get().and_then(|p| p.env_region.clone()) {
            return Some(r);
        }
        match &self.node_region {
            Some(Found::Yes(Some(r))) if !r.is_empty() => Some(r.clone()),
            _ => None,
        }
    }

    /// The class's checked parameters, when it is valid.
    pub fn params(&self) -> Option<MountParams> {
        let class = self.class.get()?;
        MountParams::check(&class.attributes(), self.region().as_deref()).ok()
    }
}

/// Reads every fact.
pub async fn gather(subject: Subject, client: kube::Client, aws: &SdkConfig) -> Facts {
    let ns = subject.namespace.clone();
    let pod = match &subject.pod {
        Some(name) => Some(pod_facts(&client, &ns, name).await),
        None => None,
    };
    let pod_ok = pod.as_ref().and_then(|p| p.get().cloned());
    let class_name = subject
        .spc
        .clone()
        .or_else(|| pod_ok.as_ref().and_then(|p| p.classes.first().cloned()));
    let service_account = subject
        .service_account
        .clone()
        .or_else(|| pod_ok.as_ref().map(|p| p.service_account.clone()));
    let node = pod_ok.as_ref().and_then(|p| p.node.clone());

    let csi_driver = csi_driver_facts(&client).await;
    let (driver, provider) = daemonsets(&client).await;
    let provider_pods = match &provider {
        Found::Yes(p) => provider_pods(&client, p).await,
        Found::Missing => Found::Missing,
        Found::Error(e) => Found::Error(e.clone()),
    };
    let (class, class_elsewhere) = match &class_name {
        Some(name) => class_facts(&client, &ns, name).await,
        None => (Found::Missing, Vec::new()),
    };
    let node_region = match &node {
        Some(node) => Some(node_region(&client, node).await),
        None => None,
    };
    let role_annotation = match &service_account {
        Some(sa) => role_annotation(&client, &ns, sa).await,
        None => Found::Missing,
    };
    let batch = provider.get().is_some_and(|p| {
        p.flag("batch-get-secret-value")
            .last()
            .is_some_and(|v| parse_go_bool(v) == Some(true))
    });
    let mut facts = Facts {
        subject,
        pod,
        class_name,
        service_account,
        csi_driver,
        driver,
        provider,
        provider_pods,
        class,
        class_elsewhere,
        node_region,
        role_annotation,
        issuer: None,
        associations: None,
        role: None,
        chained_role: None,
        acting_role: None,
        objects: Vec::new(),
    };
    let Some(class) = facts.class.get().cloned() else {
        return facts;
    };
    let region = facts.region();
    let aws_region = region.clone().unwrap_or_else(|| "us-east-1".to_owned());
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(aws)
            .region(aws_types::region::Region::new(aws_region.clone()))
            .build(),
    );

    // The pod's role.
    let first_role = if class.uses_pod_identity() {
        let found = associations(&facts, aws, &aws_region).await;
        let role = found.get().and_then(|r| r.first().cloned());
        facts.associations = Some(found);
        role
    } else {
        facts.issuer = Some(match &facts.subject.oidc_issuer {
            Some(i) => Found::Yes(i.clone()),
            None => issuer(&client).await,
        });
        match &facts.role_annotation {
            Found::Yes(Some(arn)) => Some(arn.trim().to_owned()),
            _ => None,
        }
    };
    if let Some(arn) = &first_role {
        facts.role = Some(get_role(&iam, arn).await);
    }
    let chained = class
        .parameters
        .get(keys::ASSUME_ROLE_ARN)
        .filter(|a| !a.is_empty())
        .cloned();
    if let Some(arn) = &chained {
        facts.chained_role = Some(get_role(&iam, arn).await);
    }
    facts.acting_role = match (&chained, &facts.role) {
        (Some(arn), _) => Some(arn.clone()),
        (None, Some(Found::Yes(role))) => Some(role.arn.clone()),
        _ => None,
    };

    // Each object, as the acting role.
    let (Some(params), Some(region), Some(role)) =
        (facts.params(), region, facts.acting_role.clone())
    else {
        return facts;
    };
    for spec in params.objects.iter() {
        let mut places = vec![(spec.name.clone(), region.clone(), false)];
        if let Some(failover) = &params.failover_region {
            let name = spec
                .failover
                .as_ref()
                .map_or(spec.name.clone(), |f| f.name.clone());
            places.push((name, failover.clone(), true));
        }
        for (name, region, failover) in places {
            let object = object_facts(aws, &iam, &role, spec, name, region, failover, batch).await;
            facts.objects.push(object);
        }
    }
    facts
}

/// What a mount does with an object, as IAM actions per resource ARN; the
/// KMS key's decrypt when the object is encrypted with a customer key.
pub fn planned_actions(
    spec: &ObjectSpec,
    arn: &str,
    kms_key: Option<&str>,
    batch: bool,
) -> Vec<(String, Vec<&'static str>)> {
    let mut plan = Vec::new();
    match (spec.kind, spec.path.is_some()) {
        (StoreKind::SecretsManager, false) => {
            plan.push((
                arn.to_owned(),
                vec![
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:DescribeSecret",
                ],
            ));
            if batch && spec.version.is_none() && spec.label.is_none() {
                plan.push(("*".to_owned(), vec!["secretsmanager:BatchGetSecretValue"]));
            }
        }
        (StoreKind::SecretsManager, true) => {
            plan.push(("*".to_owned(), vec!["secretsmanager:ListSecrets"]));
            plan.push((
                format!("{arn}*"),
                vec![
                    "secretsmanager:GetSecretValue",
                    "secretsmanager:DescribeSecret",
                ],
            ));
        }
        (StoreKind::ParameterStore, false) => {
            plan.push((arn.to_owned(), vec!["ssm:GetParameters"]));
        }
        (StoreKind::ParameterStore, true) => {
            plan.push((arn.to_owned(), vec!["ssm:GetParametersByPath"]));
        }
    }
    if let Some(key) = kms_key.and_then(|k| customer_key_arn(k, arn)) {
        plan.push((key, vec!["kms:Decrypt"]));
    }
    plan
}

/// The ARN of a customer-managed KMS key named by `key` for the object
/// `object_arn`; `None` for the AWS-managed key (unset, or `alias/aws/...`).
/// An alias other than AWS's is kept as its alias ARN (IAM then judges the
/// alias, not the key).
pub fn customer_key_arn(key: &str, object_arn: &str) -> Option<String> {
    let key = key.trim();
    if key.is_empty() || key.starts_with("alias/aws/") || key.contains(":alias/aws/") {
        return None;
    }
    if arn::is_arn(key) {
        return Some(key.to_owned());
    }
    let Arn {
        partition,
        region,
        account,
        ..
    } = Arn::parse(object_arn)?;
    let resource = if key.starts_with("alias/") {
        key.to_owned()
    } else {
        format!("key/{key}")
    };
    Some(format!("arn:{partition}:kms:{region}:{account}:{resource}"))
}

#[allow(clippy::too_many_arguments)]
async fn object_facts(
    aws: &SdkConfig,
    iam: &aws_sdk_iam::Client,
    role: &str,
    spec: &ObjectSpec,
    name: String,
    region: String,
    failover: bool,
    batch: bool,
) -> ObjectFacts {
    let regional = aws
        .to_builder()
        .region(aws_types::region::Region::new(region.clone()))
        .build();
    let (partition, account) = arn_account(role);
    let meta = match (&spec.path, spec.kind) {
        (Some(_), _) => None,
        (None, StoreKind::SecretsManager) => Some(describe_secret(&regional, &name).await),
        (None, StoreKind::ParameterStore) => Some(describe_parameter(&regional, &name).await),
    };
    let arn = match (&spec.path, &meta) {
        (_, Some(Found::Yes(m))) => Some(m.arn.clone()),
        (Some(path), _) => Some(path_arn(
            spec.kind,
            &partition,
            &region,
            &account,
            &path.prefix,
        )),
        _ => None,
    };
    let decisions = match arn {
        Some(arn) => {
            let key = meta
                .as_ref()
                .and_then(|m| m.get())
                .and_then(|m| m.kms_key.clone());
            simulate(
                iam,
                role,
                &planned_actions(spec, &arn, key.as_deref(), batch),
            )
            .await
        }
        None => Found::Missing,
    };
    ObjectFacts {
        file: spec
            .path
            .as_ref()
            .map_or(spec.file.clone(), |_| name.clone()),
        name,
        kind: spec.kind,
        region,
        failover,
        meta,
        decisions,
    }
}

/// The partition and account of an ARN (`aws`, `""` when it is not one).
fn arn_account(arn: &str) -> (String, String) {
    Arn::parse(arn).map_or(("aws".to_owned(), String::new()), |a| {
        (a.partition.to_owned(), a.account.to_owned())
    })
}

/// The ARN every match of a path starts with.
fn path_arn(kind: StoreKind, partition: &str, region: &str, account: &str, prefix: &str) -> String {
    match kind {
        StoreKind::SecretsManager => {
            format!("arn:{partition}:secretsmanager:{region}:{account}:secret:{prefix}")
        }
        StoreKind::ParameterStore => format!(
            "arn:{partition}:ssm:{region}:{account}:parameter/{}",
            prefix.trim_start_matches('/').trim_end_matches('/')
        ),
    }
}

async fn pod_facts(client: &kube::Client, ns: &str, name: &str) -> Found<PodFacts> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await {
        Ok(Some(pod)) => {
            let spec = pod.spec.unwrap_or_default();
            let classes = spec
                .volumes
                .unwrap_or_default()
                .into_iter()
                .filter_map(|v| v.csi)
                .filter(|csi| csi.driver == DRIVER_NAME)
                .filter_map(|csi| {
                    csi.volume_attributes
                        .and_then(|mut a| a.remove("secretProviderClass"))
                })
                .collect();
            Found::Yes(PodFacts {
                node: spec.node_name.filter(|n| !n.is_empty()),
                service_account: spec
                    .service_account_name
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "default".to_owned()),
                classes,
            })
        }
        Ok(None) => Found::Missing,
        Err(e) => Found::Error(kube_error(&e)),
    }
}

async fn csi_driver_facts(client: &kube::Client) -> Found<CsiDriverFacts> {
    let api: Api<CSIDriver> = Api::all(client.clone());
    match api.get_opt(DRIVER_NAME).await {
        Ok(Some(d)) => Found::Yes(CsiDriverFacts {
            audiences: d
                .spec
                .token_requests
                .unwrap_or_default()
                .into_iter()
                .map(|t| t.audience)
                .collect(),
            requires_republish: d.spec.requires_republish.unwrap_or(false),
        }),
        Ok(None) => Found::Missing,
        Err(e) => Found::Error(kube_error(&e)),
    }
}

/// The driver's and ascp's DaemonSets, by their containers' names.
async fn daemonsets(client: &kube::Client) -> (Found<DaemonSetFacts>, Found<DaemonSetFacts>) {
    let api: Api<DaemonSet> = Api::all(client.clone());
    let list = match api.list(&ListParams::default().limit(MAX_LIST)).await {
        Ok(list) => list,
        Err(e) => {
            let e = kube_error(&e);
            return (Found::Error(e.clone()), Found::Error(e));
        }
    };
    let find = |container: &str| {
        list.items
            .iter()
            .find_map(|ds| daemonset_facts(ds, container))
            .map_or(Found::Missing, Found::Yes)
    };
    (find(DRIVER_CONTAINER), find(PROVIDER_CONTAINER))
}

fn daemonset_facts(ds: &DaemonSet, container: &str) -> Option<DaemonSetFacts> {
    let spec = ds.spec.as_ref()?;
    let pod = spec.template.spec.as_ref()?;
    let c = pod.containers.iter().find(|c| c.name == container)?;
    let status = ds.status.as_ref();
    Some(DaemonSetFacts {
        namespace: ds.metadata.namespace.clone().unwrap_or_default(),
        name: ds.metadata.name.clone().unwrap_or_default(),
        selector: spec.selector.match_labels.clone().unwrap_or_default(),
        args: c.args.clone().unwrap_or_default(),
        env_region: c
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "AWS_REGION")
            .and_then(|e| e.value.clone())
            .filter(|v| !v.is_empty()),
        mounts: c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.mount_path.clone(), m.name.clone()))
            .collect(),
        host_paths: pod
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| Some((v.name.clone(), v.host_path.as_ref()?.path.clone())))
            .collect(),
        desired: status.map_or(0, |s| s.desired_number_scheduled),
        ready: status.map_or(0, |s| s.number_ready),
    })
}

async fn provider_pods(client: &kube::Client, ds: &DaemonSetFacts) -> Found<Vec<ProviderPod>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &ds.namespace);
    let selector = ds
        .selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    match api
        .list(&ListParams::default().labels(&selector).limit(MAX_LIST))
        .await
    {
        Ok(list) => Found::Yes(
            list.items
                .into_iter()
                .map(|p| ProviderPod {
                    name: p.metadata.name.unwrap_or_default(),
                    node: p.spec.and_then(|s| s.node_name),
                    ready: p
                        .status
                        .and_then(|s| s.conditions)
                        .unwrap_or_default()
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True"),
                })
                .collect(),
        ),
        Err(e) => Found::Error(kube_error(&e)),
    }
}

fn spc_resource() -> ApiResource {
    ApiResource {
        group: "secrets-store.csi.x-k8s.io".into(),
        version: "v1".into(),
        api_version: "secrets-store.csi.x-k8s.io/v1".into(),
        kind: "SecretProviderClass".into(),
        plural: "secretproviderclasses".into(),
    }
}

async fn class_facts(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> (Found<ClassFacts>, Vec<String>) {
    let resource = spc_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    match api.get_opt(name).await {
        Ok(Some(spc)) => (Found::Yes(class_of(&spc.data)), Vec::new()),
        Ok(None) => {
            let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            let elsewhere = match all.list(&ListParams::default().limit(MAX_LIST)).await {
                Ok(list) => list
                    .items
                    .into_iter()
                    .filter(|o| o.metadata.name.as_deref() == Some(name))
                    .filter_map(|o| o.metadata.namespace)
                    .collect(),
                Err(_) => Vec::new(),
            };
            (Found::Missing, elsewhere)
        }
        Err(e) => (Found::Error(kube_error(&e)), Vec::new()),
    }
}

/// `spec.provider` and `spec.parameters`, every scalar as its text.
fn class_of(data: &Value) -> ClassFacts {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let spec = &data["spec"];
    ClassFacts {
        provider: text(&spec["provider"]),
        parameters: spec["parameters"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
            .unwrap_or_default(),
    }
}

async fn node_region(client: &kube::Client, node: &str) -> Found<Option<String>> {
    let api: Api<Node> = Api::all(client.clone());
    match api.get_opt(node).await {
        Ok(Some(n)) => Found::Yes(n.metadata.labels.and_then(|mut l| l.remove(REGION_LABEL))),
        Ok(None) => Found::Missing,
        Err(e) => Found::Error(kube_error(&e)),
    }
}

async fn role_annotation(client: &kube::Client, ns: &str, sa: &str) -> Found<Option<String>> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    match api.get_opt(sa).await {
        Ok(Some(sa)) => Found::Yes(
            sa.metadata
                .annotations
                .and_then(|mut a| a.remove(ROLE_ARN_ANNOTATION)),
        ),
        Ok(None) => Found::Missing,
        Err(e) => Found::Error(kube_error(&e)),
    }
}

/// The API server's service-account issuer, from its OIDC discovery
/// document.
async fn issuer(client: &kube::Client) -> Found<String> {
    let request =
        match hyper::http::Request::get("/.well-known/openid-configuration").body(Vec::new()) {
            Ok(r) => r,
            Err(e) => return Found::Error(e.to_string()),
        };
    match client.request::<Value>(request).await {
        Ok(doc) => match doc["issuer"].as_str() {
            Some(i) if !i.is_empty() => Found::Yes(bounded(i)),
            _ => Found::Error("the discovery document names no issuer".into()),
        },
        Err(e) => Found::Error(kube_error(&e)),
    }
}

/// The roles of the EKS Pod Identity associations of the ServiceAccount.
async fn associations(facts: &Facts, aws: &SdkConfig, region: &str) -> Found<Vec<String>> {
    let (Some(cluster), Some(sa)) = (&facts.subject.cluster_name, &facts.service_account) else {
        return Found::Error(
            "--cluster-name is needed to look up EKS Pod Identity associations".into(),
        );
    };
    let eks = aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::config::Builder::from(aws)
            .region(aws_types::region::Region::new(region.to_owned()))
            .build(),
    );
    let list = match eks
        .list_pod_identity_associations()
        .cluster_name(cluster)
        .namespace(&facts.subject.namespace)
        .service_account(sa)
        .send()
        .await
    {
        Ok(list) => list,
        Err(e) => return aws_failure(&e),
    };
    let mut roles = Vec::new();
    for summary in list.associations() {
        let Some(id) = summary.association_id() else {
            continue;
        };
        match eks
            .describe_pod_identity_association()
            .cluster_name(cluster)
            .association_id(id)
            .send()
            .await
        {
            Ok(found) => roles.extend(
                found
                    .association()
                    .and_then(|a| a.role_arn())
                    .map(str::to_owned),
            ),
            Err(e) => return aws_failure(&e),
        }
    }
    if roles.is_empty() {
        Found::Missing
    } else {
        Found::Yes(roles)
    }
}

async fn get_role(iam: &aws_sdk_iam::Client, arn: &str) -> Found<RoleFacts> {
    let name = arn.rsplit('/').next().unwrap_or(arn);
    match iam.get_role().role_name(name).send().await {
        Ok(out) => {
            let Some(role) = out.role() else {
                return Found::Missing;
            };
            let trust = role
                .assume_role_policy_document()
                .map(decode_policy)
                .unwrap_or(Value::Null);
            Found::Yes(RoleFacts {
                arn: role.arn().to_owned(),
                trust,
            })
        }
        Err(e) => aws_failure(&e),
    }
}

/// A policy document as IAM returns it: JSON, URL-encoded by the real
/// service (not by every emulator).
pub fn decode_policy(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| {
        let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
        serde_json::from_str(&decoded).unwrap_or(Value::Null)
    })
}

async fn describe_secret(config: &SdkConfig, name: &str) -> Found<ObjectMeta> {
    let client = aws_sdk_secretsmanager::Client::new(config);
    match client.describe_secret().secret_id(name).send().await {
        Ok(out) => Found::Yes(ObjectMeta {
            arn: out.arn().unwrap_or(name).to_owned(),
            kms_key: out.kms_key_id().map(str::to_owned),
        }),
        Err(e) => aws_failure(&e),
    }
}

async fn describe_parameter(config: &SdkConfig, name: &str) -> Found<ObjectMeta> {
    let client = aws_sdk_ssm::Client::new(config);
    // A name carrying a selector (name:3, name:label) is described by name.
    let plain = if arn::is_arn(name) {
        // parameter/a/b names /a/b; parameter/a names a.
        let rest = Arn::parse(name)
            .and_then(|a| a.resource.strip_prefix("parameter"))
            .unwrap_or(name);
        match rest.matches('/').count() {
            1 => rest.trim_start_matches('/').to_owned(),
            _ => rest.to_owned(),
        }
    } else {
        name.split(':').next().unwrap_or(name).to_owned()
    };
    let filter = match aws_sdk_ssm::types::ParameterStringFilter::builder()
        .key("Name")
        .option("Equals")
        .values(plain.clone())
        .build()
    {
        Ok(f) => f,
        Err(e) => return Found::Error(e.to_string()),
    };
    match client
        .describe_parameters()
        .parameter_filters(filter)
        .send()
        .await
    {
        Ok(out) => match out.parameters().first() {
            Some(p) => Found::Yes(ObjectMeta {
                arn: p.arn().map(str::to_owned).unwrap_or_else(|| {
                    let region = config.region().map(|r| r.to_string()).unwrap_or_default();
                    format!(
                        "arn:aws:ssm:{region}::parameter/{}",
                        p.name().unwrap_or(&plain).trim_start_matches('/')
                    )
                }),
                kms_key: p.key_id().map(str::to_owned),
            }),
            None => Found::Missing,
        },
        Err(e) => aws_failure(&e),
    }
}

/// IAM SimulatePrincipalPolicy for each (resource, actions) of `plan`.
async fn simulate(
    iam: &aws_sdk_iam::Client,
    role: &str,
    plan: &[(String, Vec<&'static str>)],
) -> Found<Vec<Decision>> {
    let mut decisions = Vec::new();
    for (resource, actions) in plan {
        let mut call = iam
            .simulate_principal_policy()
            .policy_source_arn(role)
            .resource_arns(resource);
        for a in actions {
            call = call.action_names(*a);
        }
        match call.send().await {
            Ok(out) => decisions.extend(out.evaluation_results().iter().map(|r| Decision {
                action: r.eval_action_name().to_owned(),
                resource: r.eval_resource_name().unwrap_or(resource).to_owned(),
                decision: r.eval_decision().as_str().to_owned(),
            })),
            Err(e) => return aws_failure(&e),
        }
    }
    Found::Yes(decisions)
}

/// A failed AWS call as a fact: not found, or the error's code and message.
fn aws_failure<T, E, R>(e: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> Found<T>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (e.code(), e.message()) {
        (Some("NoSuchEntity" | "ResourceNotFoundException" | "ParameterNotFound"), _) => {
            Found::Missing
        }
        (Some(code), message) => Found::Error(bounded(&format!(
            "{code}: {}",
            message.unwrap_or("no message")
        ))),
        (None, _) => Found::Error(bounded(
            &aws_smithy_types::error::display::DisplayErrorContext(e).to_string(),
        )),
    }
}

fn kube_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => bounded(&format!(
            "HTTP {} {}: {}",
            status.code, status.reason, status.message
        )),
        other => bounded(&other.to_string()),
    }
}

fn bounded(text: &str) -> String {
    crate::bounded_text::truncate(text, MAX_TEXT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_in_both_forms() {
        let ds = DaemonSetFacts {
            args: vec![
                "--provider-volume=/a".into(),
                "-provider-volume".into(),
                "/b".into(),
                "--provider-volume-x=/c".into(),
            ],
            ..Default::default()
        };
        assert_eq!(ds.flag("provider-volume"), vec!["/a", "/b"]);
    }

    #[test]
    fn host_dir_follows_the_longest_mount() {
        let ds = DaemonSetFacts {
            mounts: vec![
                ("/var/run".into(), "run".into()),
                ("/var/run/providers/".into(), "providers".into()),
            ],
            host_paths: [
                ("run".to_owned(), "/host/run".to_owned()),
                ("providers".to_owned(), "/etc/kubernetes/p".to_owned()),
            ]
            .into(),
            ..Default::default()
        };
        assert_eq!(
            ds.host_dir("/var/run/providers").as_deref(),
            Some("/etc/kubernetes/p")
        );
        assert_eq!(ds.host_dir("/var/run/x").as_deref(), Some("/host/run/x"));
        assert_eq!(ds.host_dir("/opt"), None);
    }

    #[test]
    fn customer_keys_only() {
        let secret = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:db-AbCdEf";
        assert_eq!(customer_key_arn("", secret), None);
        assert_eq!(customer_key_arn("alias/aws/secretsmanager", secret), None);
        assert_eq!(
            customer_key_arn("1234abcd-12ab", secret).as_deref(),
            Some("arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab")
        );
        assert_eq!(
            customer_key_arn("alias/app", secret).as_deref(),
            Some("arn:aws:kms:eu-west-1:111122223333:alias/app")
        );
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/k";
        assert_eq!(customer_key_arn(arn, secret).as_deref(), Some(arn));
    }

    #[test]
    fn policies_plain_or_url_encoded() {
        let doc = r#"{"Version":"2012-10-17"}"#;
        assert_eq!(decode_policy(doc)["Version"], "2012-10-17");
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%7D";
        assert_eq!(decode_policy(encoded)["Version"], "2012-10-17");
        assert_eq!(decode_policy("%%%"), Value::Null);
    }
}
