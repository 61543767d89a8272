//! The provider's gRPC server on its unix socket.
//!
//! [`bind`] prepares `<provider-volume>/aws.sock` (parent created, stale
//! socket removed, mode 0600: only root, as the driver runs, may call us) and
//! removes it again when dropped. [`run`] serves the driver's
//! `v1alpha1.CSIDriverProvider` API on an already-bound listener until the
//! shutdown future completes; then it stops accepting, gives in-flight mounts
//! a bounded grace period, and returns. The same socket serves the standard
//! gRPC health service (`grpc.health.v1`), which the liveness probe asks
//! ([`crate::health`]) and which turns to not-serving when shutdown begins.
//!
//! Each Mount runs in a task of its own, so a panic inside one request is
//! turned into an `INTERNAL` answer for that request (without the panic's
//! payload) and the server keeps serving. When the caller gives up on a
//! request, its mount is told so and stops (see [`crate::mount`]).
//!
//! Every accepted connection holds a slot of the connection limit
//! ([`intake::Admitted`]) and goes through [`authority::AuthorityRewrite`],
//! so that drivers sending the socket path as `:authority` are served; both
//! wrap the connection with [`wrapped::Wrapped`], which forwards the I/O
//! they do not change.
//!
//! What a client can make the server hold is bounded: connections, streams,
//! header lists and request bytes in flight ([`intake`]), the size of one
//! request ([`MAX_REQUEST_BYTES`]) and the entries it may carry, counted on
//! the wire before decoding ([`codec`]).

pub mod authority;
pub(crate) mod codec;
mod intake;
mod wrapped;

use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use tracing::{error, info, warn};

use crate::mount::Mounter;
use crate::proto::csi_driver_provider_server::{CsiDriverProvider, CsiDriverProviderServer};
use crate::proto::{MountRequest, MountResponse, VersionRequest, VersionResponse};

/// The socket's file name inside the provider volume, as the driver expects
/// for `provider: aws`.
pub const SOCKET_NAME: &str = "aws.sock";

/// Largest request accepted: gRPC's default. Real requests are far smaller
/// (a SecretProviderClass is at most 1.5 MiB in etcd); a bound above
/// [`crate::spc::MAX_ATTRIBUTES_BYTES`] lets oversized attributes reach
/// that check and get a clear `InvalidArgument` instead of a transport
/// error, and it stays well below [`intake::REQUEST_BYTES_IN_FLIGHT`].
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// The API version this provider speaks.
pub const API_VERSION: &str = "v1alpha1";

/// Removes the socket from the file system when dropped.
#[derive(Debug)]
pub struct SocketGuard {
    path: PathBuf,
}

impl SocketGuard {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Binds `<provider_volume>/aws.sock`; the guard removes it again.
pub fn bind(provider_volume: &Path) -> io::Result<(UnixListener, SocketGuard)> {
    std::fs::create_dir_all(provider_volume)?;
    let path = provider_volume.join(SOCKET_NAME);
    match std::fs::symlink_metadata(&path) {
        // A socket left by a previous run: remove it, as the driver expects
        // a fresh one. Anything else at that name is not ours to delete.
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            std::fs::remove_file(&path)?
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&path)?;
    let guard = SocketGuard { path };
    std::fs::set_permissions(&guard.path, std::fs::Permissions::from_mode(0o600))?;
    Ok((listener, guard))
}

/// Connects a gRPC channel to a provider socket: the driver's side of
/// [`bind`], used by the liveness probe and `ascp mount`.
pub async fn connect(socket: &Path, timeout: Duration) -> Result<Channel, String> {
    let socket: PathBuf = socket.to_owned();
    // The URI is required by tonic but unused: the connector dials the socket.
    Endpoint::try_from("http://[::1]:50051")
        .map_err(|e| e.to_string())?
        .timeout(timeout)
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move { UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|e| format!("cannot connect to the provider: {e}"))
}

/// The gRPC service.
pub struct Provider {
    mounter: Arc<Mounter>,
}

impl Provider {
    /// A service answering mounts with `mounter`.
    pub fn new(mounter: Arc<Mounter>) -> Self {
        Self { mounter }
    }

    /// The tonic service, with this provider's message limits.
    pub fn into_service(self) -> CsiDriverProviderServer<Self> {
        CsiDriverProviderServer::new(self).max_decoding_message_size(MAX_REQUEST_BYTES)
    }
}

#[tonic::async_trait]
impl CsiDriverProvider for Provider {
    async fn version(
        &self,
        _request: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: API_VERSION.into(),
            runtime_name: crate::PROGRAM.into(),
            runtime_version: crate::VERSION.into(),
        }))
    }

    async fn mount(
        &self,
        request: Request<MountRequest>,
    ) -> Result<Response<MountResponse>, Status> {
        let mounter = self.mounter.clone();
        let request = request.into_inner();
        // Dropped with this future when the caller gives up (tonic drops a
        // handler whose request is reset), which tells the mount to stop.
        let (_caller_waits, caller_gone) = tokio::sync::oneshot::channel::<()>();
        let gone = async move {
            let _ = caller_gone.await;
        };
        match tokio::spawn(async move { mounter.handle_until(request, gone).await }).await {
            Ok(Ok(response)) => {
                let size = prost::Message::encoded_len(&response);
                let mut response = Response::new(response);
                response.extensions_mut().insert(intake::AnswerBytes(size));
                Ok(response)
            }
            Ok(Err(e)) => Err(e.to_status()),
            Err(join) => {
                // The panic hook logged where; the payload may hold anything,
                // so it is never echoed to the caller.
                error!(panicked = join.is_panic(), "mount task failed");
                Err(Status::internal(
                    "internal error: the mount failed unexpectedly; see the provider's logs",
                ))
            }
        }
    }
}

/// The accepted connections, at most [`intake::MAX_CONNECTIONS`] at once,
/// each behind the `:authority` rewrite.
fn incoming(
    listener: UnixListener,
) -> impl tokio_stream::Stream<
    Item = io::Result<authority::AuthorityRewrite<intake::Admitted<tokio::net::UnixStream>>>,
> {
    intake::admitted(listener, intake::MAX_CONNECTIONS)
        .map(|accepted| accepted.map(authority::AuthorityRewrite::new))
}

/// Serves `provider` on `listener` until `shutdown` completes, then waits at
/// most `grace` for in-flight requests.
pub async fn run(
    listener: UnixListener,
    provider: Provider,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Result<(), tonic::transport::Error> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // grpc.health.v1 on the same socket: liveness probes ask it, so they
    // prove the socket really answers.
    let (health, health_service) = tonic_health::server::health_reporter();
    let mount_timeout = provider.mounter.config().timeout;
    let serve = tonic::transport::Server::builder()
        .max_concurrent_streams(intake::MAX_STREAMS_PER_CONNECTION)
        .http2_max_header_list_size(intake::MAX_HEADER_LIST_BYTES)
        .initial_stream_window_size(intake::STREAM_WINDOW)
        .initial_connection_window_size(intake::CONNECTION_WINDOW)
        .max_connection_age(intake::MAX_CONNECTION_AGE)
        .max_connection_age_grace(intake::request_timeout(mount_timeout))
        .timeout(intake::request_timeout(mount_timeout))
        .layer(intake::RequestBytesLayer::new(
            intake::REQUEST_BYTES_IN_FLIGHT,
        ))
        .add_service(health_service)
        .add_service(provider.into_service())
        .serve_with_incoming_shutdown(incoming(listener), async {
            let _ = stop_rx.await;
        });
    tokio::pin!(serve);
    tokio::select! {
        result = &mut serve => return result,
        () = shutdown => {}
    }
    info!(
        grace_secs = grace.as_secs_f64(),
        "shutting down: no new connections; waiting for in-flight mounts"
    );
    health
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let _ = stop_tx.send(());
    match tokio::time::timeout(grace, serve).await {
        Ok(result) => result,
        Err(_) => {
            warn!("in-flight requests did not finish within the grace period; exiting anyway");
            Ok(())
        }
    }
}
