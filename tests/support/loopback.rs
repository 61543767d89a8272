//! The usual loopback world of a test that runs the real binary: moto behind
//! the counting proxy, a stub Kubernetes API that knows some service
//! accounts, and the kubeconfig that points at it ([`Loopback`]); with the
//! binary started in it, mounting for one pod through IRSA ([`World`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ascp::proto::{MountRequest, MountResponse, ObjectVersion};

use super::ascp_process::AscpProcess;
use super::kube_api::KubeApiStub;
use super::{FaultProxy, MotoServer, sdk_config};

/// moto, its proxy, the Kubernetes stub and the kubeconfig's directory.
pub struct Loopback {
    pub moto: MotoServer,
    pub proxy: FaultProxy,
    pub kube: KubeApiStub,
    dir: tempfile::TempDir,
}

impl Loopback {
    /// Starts them; each `(namespace, service account, role)` is known to the
    /// Kubernetes stub.
    pub async fn start(accounts: &[(&str, &str, &str)]) -> Loopback {
        let moto = MotoServer::start().await;
        let proxy = FaultProxy::start(&moto.endpoint()).await;
        let kube = KubeApiStub::start().await;
        for (namespace, account, role) in accounts {
            kube.add_service_account(namespace, account, Some(role));
        }
        let dir = tempfile::tempdir().expect("a temporary directory");
        kube.write_kubeconfig(&dir.path().join("kubeconfig"));
        Loopback {
            moto,
            proxy,
            kube,
            dir,
        }
    }

    /// The kubeconfig's path.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// The binary's environment: this Kubernetes API, AWS through the proxy,
    /// no instance metadata, `info` logs; then `extra`.
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        [
            (
                "KUBECONFIG".to_owned(),
                self.kubeconfig().display().to_string(),
            ),
            ("AWS_ENDPOINT_URL".to_owned(), self.proxy.endpoint()),
            ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ]
        .into_iter()
        .chain(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .collect()
    }
}

/// The pod a [`World`] mounts for, as the driver names it in a mount's
/// attributes: its namespace and service account (known to the
/// Kubernetes stub with `role`), its uid, the SecretProviderClass and the
/// service-account token the driver hands over.
#[derive(Clone, Copy, Debug)]
pub struct Pod {
    pub namespace: &'static str,
    pub service_account: &'static str,
    pub role: &'static str,
    pub uid: &'static str,
    pub class: &'static str,
    pub token: &'static str,
}

/// The region every [`World`] mounts in.
pub const REGION: &str = "us-east-1";

/// A [`Loopback`] with the real binary started in it, mounting for one
/// [`Pod`] through IRSA.
pub struct World {
    pub net: Loopback,
    pub ascp: AscpProcess,
    pub pod: Pod,
}

impl World {
    /// Starts the loopback world knowing `pod`, then `binary` with `flags`
    /// and the loopback's environment.
    pub async fn start(pod: Pod, binary: &Path, flags: &[&str]) -> World {
        let net = Loopback::start(&[(pod.namespace, pod.service_account, pod.role)]).await;
        let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        let env = net.env(&[]);
        let ascp = AscpProcess::start(binary, &flags, &env).await;
        World { net, ascp, pod }
    }

    /// A Secrets Manager client of moto itself (not through the proxy).
    pub async fn sm(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&sdk_config(&self.net.moto.endpoint(), REGION).await)
    }

    /// A Parameter Store client of moto itself (not through the proxy).
    pub async fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&sdk_config(&self.net.moto.endpoint(), REGION).await)
    }

    /// A fresh, empty target directory.
    pub fn target(&self, name: &str) -> PathBuf {
        let dir = self.ascp.dir().join("targets").join(name);
        std::fs::create_dir_all(&dir).expect("create a target directory");
        dir
    }

    /// The driver's request mounting `objects` (with `extra` parameters)
    /// into `target`, sending `current` as its `current_object_version`.
    pub fn request(
        &self,
        target: &Path,
        objects: &str,
        extra: &[(&str, &str)],
        current: Vec<ObjectVersion>,
    ) -> MountRequest {
        let tokens = serde_json::json!({
            "sts.amazonaws.com": {"token": self.pod.token, "expirationTimestamp": "2099-01-01T00:00:00Z"}
        });
        let mut attrs: BTreeMap<&str, String> = [
            ("csi.storage.k8s.io/pod.name", "app-0".to_owned()),
            (
                "csi.storage.k8s.io/pod.namespace",
                self.pod.namespace.to_owned(),
            ),
            ("csi.storage.k8s.io/pod.uid", self.pod.uid.to_owned()),
            (
                "csi.storage.k8s.io/serviceAccount.name",
                self.pod.service_account.to_owned(),
            ),
            (
                "csi.storage.k8s.io/serviceAccount.tokens",
                tokens.to_string(),
            ),
            ("secretProviderClass", self.pod.class.to_owned()),
            ("region", REGION.to_owned()),
            ("objects", objects.to_owned()),
        ]
        .into_iter()
        .collect();
        attrs.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        MountRequest {
            attributes: serde_json::to_string(&attrs).expect("attributes"),
            secrets: "{}".into(),
            target_path: target.display().to_string(),
            permission: "420".into(),
            current_object_version: current,
        }
    }

    /// Mounts `objects` (with `extra` parameters) into `target`, sending
    /// `current` as the driver's `current_object_version`.
    pub async fn mount_with(
        &self,
        target: &Path,
        objects: &str,
        extra: &[(&str, &str)],
        current: Vec<ObjectVersion>,
    ) -> Result<MountResponse, tonic::Status> {
        self.ascp
            .mount(self.request(target, objects, extra, current))
            .await
    }

    /// Mounts `objects` into `target`.
    pub async fn mount(
        &self,
        target: &Path,
        objects: &str,
    ) -> Result<MountResponse, tonic::Status> {
        self.mount_with(target, objects, &[], Vec::new()).await
    }

    /// Mounts and expects success; a failure shows the binary's log.
    pub async fn mount_ok(&self, target: &Path, objects: &str) -> MountResponse {
        match self.mount(target, objects).await {
            Ok(r) => r,
            Err(s) => panic!(
                "mount failed: {:?}: {}\nascp log:\n{}",
                s.code(),
                s.message(),
                self.ascp.log()
            ),
        }
    }

    /// Mounts and expects failure with `code` and a message holding every
    /// one of `needles`; returns the message.
    pub async fn mount_err(
        &self,
        target: &Path,
        objects: &str,
        code: tonic::Code,
        needles: &[&str],
    ) -> String {
        let message = match self.mount(target, objects).await {
            Ok(r) => panic!("mount succeeded but should fail with {code:?}: {r:?}"),
            Err(s) => {
                assert_eq!(s.code(), code, "{}", s.message());
                s.message().to_owned()
            }
        };
        for needle in needles {
            assert!(message.contains(needle), "{needle:?} not in {message}");
        }
        message
    }
}
