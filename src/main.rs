//! The `ascp` binary: parse flags, set up logging, run a command.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use ascp::config::{Cli, Command, ServeArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rust_log = std::env::var("RUST_LOG").ok();
    let colour = ascp::telemetry::use_colour(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    ascp::telemetry::init_tracing(cli.log_format, rust_log.as_deref(), colour);
    ascp::telemetry::install_panic_hook();
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
        Some(Command::Doctor(args)) => runtime.block_on(doctor(args)),
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
    let (identity, stores) = build_backend(&args).await?;
    let mounter = Arc::new(
        ascp::mount::Mounter::new(
            identity,
            stores,
            ascp::mount::MountConfig {
                driver_writes_secrets: args.driver_writes_secrets,
                env_region,
                timeout: args.mount_timeout,
            },
        )
        .with_budgets(args.max_mount_bytes, args.max_inflight_bytes),
    );
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

/// The production identity and AWS store factory. Everything read from the
/// environment is read here: the standard AWS settings (by the SDK's loader)
/// and KUBECONFIG (else the in-cluster service account); the rest is built
/// from flags.
async fn build_backend(
    args: &ServeArgs,
) -> Result<
    (
        Arc<dyn ascp::store::Identity>,
        Arc<dyn ascp::store::OpenStores>,
    ),
    String,
> {
    let settings = args.identity_settings()?;
    let version = if args.eks_addon_version.is_empty() {
        ascp::VERSION
    } else {
        args.eks_addon_version.as_str()
    };
    let app_id = format!("{}-{version}", ascp::PROGRAM);
    let own = settings.pod_identity.own_credentials();
    let base = ascp::aws::load_base_config(&app_id, &args.fetch_options(), own)
        .await
        .map_err(|e| format!("ascp: {e}"))?;
    let kube_config = load_kube_config().await?;
    let stores = ascp::aws::StoreFactory::new(&base, args.fetch_options());
    // One bound on AWS calls in flight for the stores and the identity.
    let identity =
        ascp::identity::setup::backend(&settings, &base, kube_config, stores.call_bound())?;
    Ok((Arc::new(identity), Arc::new(stores)))
}

/// KUBECONFIG's current context, else the in-cluster service account.
async fn load_kube_config() -> Result<kube::Config, String> {
    match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(_) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| format!("ascp: cannot load the Kubernetes configuration from KUBECONFIG: {e}")),
        None => kube::Config::incluster().map_err(|e| {
            format!("ascp: cannot configure the Kubernetes client (not in a cluster and KUBECONFIG is not set): {e}")
        }),
    }
}

/// `ascp doctor`: the Kubernetes configuration and the operator's AWS
/// settings (the SDK's default chain) are read here; the checks run below.
async fn doctor(args: &ascp::config::DoctorArgs) -> Result<(), String> {
    let kube_config = load_kube_config().await?;
    let app_id = format!("{}-{}", ascp::PROGRAM, ascp::VERSION);
    let aws = ascp::aws::load_base_config(
        &app_id,
        &ascp::aws::FetchOptions::default(),
        ascp::aws::OwnCredentials::DefaultChain,
    )
    .await
    .map_err(|e| format!("ascp: {e}"))?;
    let report = ascp::cli::doctor::run(args, kube_config, &aws).await?;
    print!("{}", report.text);
    match report.failed {
        0 => Ok(()),
        n => Err(format!("ascp doctor: {n} check(s) failed")),
    }
}
