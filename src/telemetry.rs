//! Logging and the panic hook, set up once by `main`.
//!
//! Logs go to stderr as text or one JSON object per line; the level comes
//! from `RUST_LOG` (default `info`). Trace events of the AWS SDK and the
//! HTTP stack are dropped whatever `RUST_LOG` says, because at trace level
//! they print whole requests, whose bodies and headers carry web identity
//! tokens, session tokens and signatures.

use tracing_subscriber::EnvFilter;

/// Log output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber; `directives` is `RUST_LOG`'s value.
pub fn init_tracing(format: LogFormat, directives: Option<&str>) {
    use tracing_subscriber::prelude::*;

    let filter = directives
        .filter(|d| !d.trim().is_empty())
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
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
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(%location, "panic (payload withheld)");
    }));
}
