//! The `ascp` binary: parse flags, set up logging, run a command.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use ascp::config::{Cli, Command, LogFormat, PodIdentityMode, ServeArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    install_panic_hook();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ascp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match &cli.command {
        None => runtime.block_on(serve(cli.serve.clone())),
        Some(Command::Validate(args)) => {
            ascp::cli::validate::run(args).map(|report| print!("{report}"))
        }
        Some(Command::Mount(args)) => runtime
            .block_on(ascp::cli::mount::run(args))
            .map(|report| print!("{report}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprint!("{message}");
            if !message.ends_with('\n') {
                eprintln!();
            }
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let env_region = std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty());
    let backend = build_backend(&args).await?;
    let mounter = Arc::new(ascp::mount::Mounter::new(
        backend,
        ascp::mount::MountConfig {
            driver_writes_secrets: args.driver_writes_secrets,
            env_region,
            timeout: args.mount_timeout,
        },
    ));
    let (listener, socket) = ascp::server::bind(&args.provider_volume).map_err(|e| {
        format!(
            "ascp: cannot listen on {}: {e}",
            args.provider_volume
                .join(ascp::server::SOCKET_NAME)
                .display()
        )
    })?;
    let health = ascp::health::HealthState::new(socket.path().to_owned());
    let (stop_health, health_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Ok(addr) = args.metrics_addr.parse::<std::net::SocketAddr>() {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("ascp: cannot listen on --metrics-addr {addr}: {e}"))?;
        tokio::spawn(ascp::health::serve(listener, health.clone(), async {
            let _ = health_stopped.await;
        }));
    }
    tracing::info!(
        version = ascp::VERSION,
        socket = %socket.path().display(),
        driver_writes_secrets = args.driver_writes_secrets,
        "serving; the CSIDriver must request tokens for audiences sts.amazonaws.com and pods.eks.amazonaws.com"
    );
    health.set_ready(true);
    let shutdown = {
        let health = health.clone();
        async move {
            ascp::signals::shutdown().await;
            health.set_ready(false);
        }
    };
    let result = ascp::server::run(
        listener,
        ascp::server::Provider::new(mounter),
        shutdown,
        args.shutdown_grace,
    )
    .await;
    let _ = stop_health.send(());
    drop(socket);
    result.map_err(|e| format!("ascp: server failed: {e}"))
}

/// The production backend: the base AWS config from the standard AWS
/// environment, the Kubernetes client (KUBECONFIG when set, else the
/// in-cluster service account), and the Pod Identity source of
/// `--pod-identity-mode`. Everything read from the environment is read here.
async fn build_backend(args: &ServeArgs) -> Result<Arc<dyn ascp::store::Backend>, String> {
    use ascp::identity::{self, IdentityBackend, PodIdentitySource};

    let version = if args.eks_addon_version.is_empty() {
        ascp::VERSION
    } else {
        args.eks_addon_version.as_str()
    };
    let app_id = format!("{}-{version}", ascp::PROGRAM);
    let base = ascp::aws::load_base_config(&app_id)
        .await
        .map_err(|e| format!("ascp: {e}"))?;
    let factory = ascp::aws::StoreFactory::new(
        &base,
        ascp::aws::FetchOptions {
            max_concurrent_per_mount: args.max_concurrent_fetches_per_mount as usize,
            max_concurrent_global: args.max_concurrent_fetches as usize,
            batch_get_secret_value: args.batch_get_secret_value,
        },
    );

    let kubeconfig = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty());
    let mut kube_config = match &kubeconfig {
        Some(_) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| format!("ascp: cannot load the Kubernetes configuration from KUBECONFIG: {e}"))?,
        None => kube::Config::incluster().map_err(|e| {
            format!("ascp: cannot configure the Kubernetes client (not in a cluster and KUBECONFIG is not set): {e}")
        })?,
    };
    // The defaults suit watches (minutes); our calls are single GETs.
    kube_config.connect_timeout = Some(Duration::from_secs(5));
    kube_config.read_timeout = Some(identity::kube::DEFAULT_CALL_TIMEOUT);
    // kube retries 429/503/504 with a backoff longer than our per-call
    // deadline, which would turn a clear "503" into a timeout; the driver
    // retries an Unavailable mount anyway.
    kube_config.default_retry = false;
    let cluster_url = kube_config.cluster_url.to_string();
    let kube_client = kube::Client::try_from(kube_config)
        .map_err(|e| format!("ascp: cannot build the Kubernetes client: {e}"))?;
    let lookups = identity::kube::KubeLookups::new(
        kube_client,
        args.qps,
        args.burst,
        identity::kube::DEFAULT_CALL_TIMEOUT,
    );

    let pod_identity = match args.pod_identity_mode {
        PodIdentityMode::Agent => {
            let defaults = identity::pod_identity::AgentConfig::default();
            let attempt_timeout = match args.pod_identity_http_timeout {
                // Go's http.Client reads 0 as "no timeout": the budget bounds it.
                Some(t) if t.is_zero() => args.pod_identity_retry_budget,
                Some(t) => t,
                None => identity::pod_identity::AgentConfig::DEFAULT_ATTEMPT_TIMEOUT,
            };
            let agent =
                identity::pod_identity::AgentClient::new(identity::pod_identity::AgentConfig {
                    ipv4_endpoint: args.pod_identity_endpoint_ipv4.clone(),
                    ipv6_endpoint: args.pod_identity_endpoint_ipv6.clone(),
                    attempt_timeout,
                    retry_budget: args.pod_identity_retry_budget,
                    ..defaults
                })
                .map_err(|e| format!("ascp: invalid Pod Identity Agent endpoint: {e}"))?;
            PodIdentitySource::Agent(agent)
        }
        PodIdentityMode::EksAuth => {
            let cluster = args
                .cluster_name
                .as_deref()
                .filter(|c| !c.is_empty())
                .ok_or("ascp: --pod-identity-mode=eks-auth needs --cluster-name")?;
            PodIdentitySource::EksAuth(identity::eks_auth::EksAuth::new(&base, cluster))
        }
    };
    tracing::info!(
        kubernetes = %cluster_url,
        kubeconfig = kubeconfig.is_some(),
        pod_identity_mode = ?args.pod_identity_mode,
        credential_cache_size = args.credential_cache_size,
        "identity backend ready"
    );
    Ok(Arc::new(IdentityBackend::new(
        factory,
        &base,
        lookups,
        pod_identity,
        args.credential_cache_size,
    )))
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::prelude::*;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry =
        tracing_subscriber::registry()
            .with(filter)
            .with(tracing_subscriber::filter::filter_fn(|meta| {
                !is_dependency_trace(meta)
            }));
    match format {
        LogFormat::Text => registry.with(layer).init(),
        LogFormat::Json => registry
            .with(
                layer
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            )
            .init(),
    }
}

/// Trace events of the AWS SDK and the HTTP stack, which no RUST_LOG may
/// enable: at trace level they print whole requests, and request bodies and
/// headers carry web identity tokens (STS AssumeRoleWithWebIdentity, EKS
/// Auth), session tokens and signatures. Their debug level and above stay
/// available.
fn is_dependency_trace(meta: &tracing::Metadata<'_>) -> bool {
    const TARGETS: [&str; 8] = [
        "aws_",
        "hyper",
        "h2",
        "tonic",
        "tower",
        "kube",
        "rustls",
        "http_body",
    ];
    *meta.level() == tracing::Level::TRACE && TARGETS.iter().any(|t| meta.target().starts_with(t))
}

/// Panics are logged with their location only: a payload could carry
/// anything, and this process holds every pod's secrets.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(%location, "panic (payload withheld)");
    }));
}
