//! The usual loopback world of a test that runs the real binary: moto behind
//! the counting proxy, a stub Kubernetes API that knows some service
//! accounts, and the kubeconfig that points at it.

use std::path::PathBuf;

use super::kube_api::KubeApiStub;
use super::{FaultProxy, MotoServer};

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
