//! In-memory stores and backend for tests of the core (mount orchestration,
//! server, output) that need no AWS behaviour. AWS behaviour is tested
//! against moto instead.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tonic::transport::Channel;

use ascp::mount::{MountConfig, Mounter};
use ascp::proto::MountRequest;
use ascp::proto::MountResponse;
use ascp::proto::csi_driver_provider_client::CsiDriverProviderClient;
use ascp::server::Provider;

use ascp::error::Error;
use ascp::secret::SecretBytes;
use ascp::store::{
    FailureKind, FetchItem, Fetched, Identity, Listed, OpenStores, PathQuery, PodCredentials,
    PodRef, Store, StoreError, Stores,
};

/// What an in-memory object answers.
#[derive(Clone)]
pub enum Answer {
    Value(&'static str, &'static str),
    /// A value given only once the gate opens.
    Gated(&'static str, &'static str, Arc<Gate>),
    Fail(FailureKind, &'static str),
    Panic,
}

/// Holds a gated answer until the test opens it, so tests order concurrent
/// mounts explicitly. Counts fetches that reached it and fetches dropped
/// while waiting (their mount was cancelled).
pub struct Gate {
    open: Semaphore,
    entered: Semaphore,
    dropped: Semaphore,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate {
            open: Semaphore::new(0),
            entered: Semaphore::new(0),
            dropped: Semaphore::new(0),
        })
    }

    /// Lets one waiting (or the next) fetch through.
    pub fn open(&self) {
        self.open.add_permits(1);
    }

    /// Waits until a fetch reached the gate.
    pub async fn entered(&self) {
        self.entered.acquire().await.unwrap().forget();
    }

    /// Waits until a fetch waiting at the gate was dropped.
    pub async fn dropped(&self) {
        self.dropped.acquire().await.unwrap().forget();
    }

    async fn pass(&self) {
        struct OnDrop<'a>(Option<&'a Semaphore>);
        impl Drop for OnDrop<'_> {
            fn drop(&mut self) {
                if let Some(dropped) = self.0 {
                    dropped.add_permits(1);
                }
            }
        }
        self.entered.add_permits(1);
        let mut signal = OnDrop(Some(&self.dropped));
        self.open.acquire().await.unwrap().forget();
        signal.0 = None;
    }
}

/// A store holding values by name, counting calls.
#[derive(Default)]
pub struct MemStore {
    objects: Mutex<HashMap<String, Answer>>,
    pub fetched: AtomicUsize,
    pub last_items: Mutex<Vec<FetchItem>>,
}

impl MemStore {
    pub fn put(&self, name: &str, answer: Answer) {
        self.objects.lock().unwrap().insert(name.to_owned(), answer);
    }
}

impl Store for MemStore {
    fn fetch(&self, items: Vec<FetchItem>) -> BoxFuture<'_, Vec<Result<Fetched, StoreError>>> {
        Box::pin(async move {
            *self.last_items.lock().unwrap() = items.clone();
            let objects = self.objects.lock().unwrap().clone();
            let mut results = Vec::with_capacity(items.len());
            for item in &items {
                let key = match (&item.version, &item.label) {
                    (Some(v), _) => format!("{}@{v}", item.name),
                    (None, Some(l)) => format!("{}#{l}", item.name),
                    _ => item.name.clone(),
                };
                let answer = objects.get(&key).or_else(|| objects.get(&item.name));
                if let Some(Answer::Gated(_, _, gate)) = answer {
                    gate.pass().await;
                }
                results.push(match answer {
                    Some(Answer::Value(value, version) | Answer::Gated(value, version, _)) => {
                        if item.mounted_version.as_deref() == Some(*version) {
                            Ok(Fetched::Unchanged {
                                version: (*version).into(),
                            })
                        } else {
                            self.fetched.fetch_add(1, Ordering::SeqCst);
                            Ok(Fetched::Value {
                                contents: SecretBytes::from(value.to_string()),
                                version: (*version).into(),
                                arn: None,
                            })
                        }
                    }
                    Some(Answer::Fail(kind, code)) => {
                        Err(StoreError::new(*kind, Some(code), "injected"))
                    }
                    Some(Answer::Panic) => panic!("store exploded"),
                    None => Err(StoreError::new(
                        FailureKind::NotFound,
                        Some("ResourceNotFoundException"),
                        "not found",
                    )),
                });
            }
            results
        })
    }

    /// Plain values under the prefix, in name order; a failing one fails
    /// the listing.
    fn list(&self, path: PathQuery) -> BoxFuture<'_, Result<Vec<Listed>, StoreError>> {
        Box::pin(async move {
            let mut objects: Vec<(String, Answer)> = self
                .objects
                .lock()
                .unwrap()
                .iter()
                .filter(|(name, _)| path.matches(name))
                .map(|(name, answer)| (name.clone(), answer.clone()))
                .collect();
            objects.sort_by(|a, b| a.0.cmp(&b.0));
            objects
                .into_iter()
                .map(|(name, answer)| match answer {
                    Answer::Value(value, version) | Answer::Gated(value, version, _) => {
                        Ok(Listed {
                            name,
                            contents: SecretBytes::from(value.to_string()),
                            version: version.into(),
                        })
                    }
                    Answer::Fail(kind, code) => Err(StoreError::new(kind, Some(code), name)),
                    Answer::Panic => panic!("store exploded"),
                })
                .collect()
        })
    }
}

/// A region's Secrets Manager and Parameter Store.
pub type RegionStores = (Arc<MemStore>, Arc<MemStore>);

/// One secrets store and one parameter store per region.
#[derive(Default)]
pub struct MemBackend {
    pub regions: Mutex<HashMap<String, RegionStores>>,
    pub node_region: Option<String>,
}

impl MemBackend {
    pub fn sm(&self, region: &str) -> Arc<MemStore> {
        self.regions
            .lock()
            .unwrap()
            .entry(region.into())
            .or_default()
            .0
            .clone()
    }
    pub fn ssm(&self, region: &str) -> Arc<MemStore> {
        self.regions
            .lock()
            .unwrap()
            .entry(region.into())
            .or_default()
            .1
            .clone()
    }
}

/// Credentials that name the region they were made for, so a test can see
/// which region's identity a store was opened with.
fn credentials_for(region: &str) -> PodCredentials {
    PodCredentials {
        credentials: aws_credential_types::Credentials::new(
            format!("AKIDMEMORY{region}"),
            "memory-secret",
            None,
            None,
            "memory",
        ),
        principal: format!("memory-{region}"),
    }
}

impl Identity for MemBackend {
    fn default_region<'a>(&'a self, _pod: &'a PodRef) -> BoxFuture<'a, Result<String, Error>> {
        Box::pin(async move {
            self.node_region.clone().ok_or(Error::Region {
                reason: "the node has no region label".into(),
            })
        })
    }

    fn pod_credentials<'a>(
        &'a self,
        _pod: &'a PodRef,
    ) -> BoxFuture<'a, Result<Option<PodCredentials>, Error>> {
        Box::pin(async { Ok(None) })
    }

    fn region_credentials<'a>(
        &'a self,
        _pod: &'a PodRef,
        region: &'a str,
        _shared: Option<&'a PodCredentials>,
    ) -> BoxFuture<'a, Result<PodCredentials, Error>> {
        Box::pin(async move { Ok(credentials_for(region)) })
    }
}

impl OpenStores for MemBackend {
    fn open(&self, region: &str, _credentials: &PodCredentials) -> Stores {
        Stores {
            secrets_manager: self.sm(region),
            parameter_store: self.ssm(region),
        }
    }
}

/// A provider serving on a real unix socket in a temp dir, with a client.
pub struct Harness {
    pub backend: Arc<MemBackend>,
    pub client: CsiDriverProviderClient<Channel>,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    pub async fn start(driver_writes: bool) -> Self {
        Self::start_with(MemBackend::default(), driver_writes).await
    }

    pub async fn start_with(backend: MemBackend, driver_writes: bool) -> Self {
        let backend = Arc::new(backend);
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("providers");
        let (listener, guard) = ascp::server::bind(&volume).unwrap();
        let socket = guard.path().to_owned();
        let mounter = Arc::new(Mounter::new(
            backend.clone(),
            backend.clone(),
            MountConfig {
                driver_writes_secrets: driver_writes,
                env_region: None,
                timeout: Duration::from_secs(10),
            },
        ));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let _guard = guard;
            ascp::server::run(
                listener,
                Provider::new(mounter),
                async {
                    let _ = rx.await;
                },
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        });
        let channel = ascp::cli::mount::connect(&socket, Duration::from_secs(10))
            .await
            .unwrap();
        Self {
            backend,
            client: CsiDriverProviderClient::new(channel),
            socket,
            _dir: dir,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub async fn mount(&mut self, req: MountRequest) -> Result<MountResponse, tonic::Status> {
        self.client.mount(req).await.map(|r| r.into_inner())
    }

    /// A mount of one secret whose store panics ("store exploded"): the
    /// status it answers.
    pub async fn mount_a_panicking_store(&mut self) -> tonic::Status {
        self.backend.sm("us-east-1").put("boom", Answer::Panic);
        let target = tempfile::tempdir().expect("a temporary directory");
        self.mount(request(
            target.path(),
            "- objectName: boom\n  objectType: secretsmanager\n",
            &[],
        ))
        .await
        .expect_err("a panicking store fails the mount")
    }

    pub async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        self.server.take().unwrap().await.unwrap();
        assert!(!self.socket.exists(), "socket removed at shutdown");
    }
}

/// Attributes as the driver sends them, plus `extra`.
pub fn attributes(objects: &str, extra: &[(&str, &str)]) -> String {
    let mut map = serde_json::Map::new();
    for (k, v) in [
        ("csi.storage.k8s.io/pod.name", "web-0"),
        ("csi.storage.k8s.io/pod.namespace", "shop"),
        ("csi.storage.k8s.io/serviceAccount.name", "web"),
        ("secretProviderClass", "web-secrets"),
        ("region", "us-east-1"),
        ("objects", objects),
    ] {
        map.insert(k.into(), v.into());
    }
    for (k, v) in extra {
        map.insert((*k).into(), (*v).into());
    }
    serde_json::Value::Object(map).to_string()
}

/// A mount request for `objects` into `target`.
pub fn request(target: &Path, objects: &str, extra: &[(&str, &str)]) -> MountRequest {
    MountRequest {
        attributes: attributes(objects, extra),
        secrets: "{}".into(),
        target_path: target.display().to_string(),
        permission: "420".into(),
        current_object_version: vec![],
    }
}
