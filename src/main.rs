//! The `ascp` binary: parse flags, set up logging, run a command.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use ascp::config::{Cli, Command, LogFormat, ServeArgs};

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

async fn build_backend(_args: &ServeArgs) -> Result<Arc<dyn ascp::store::Backend>, String> {
    Err("ascp: the AWS identity backend is not built yet".into())
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
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
