//! Logging and the panic hook, set up once by `main`.
//!
//! Logs go to stderr as text or one JSON object per line; the level comes
//! from `RUST_LOG` (default `info`). Text is coloured with ANSI escapes only
//! when `main` says so: stderr is a terminal and `NO_COLOR` is unset or
//! empty (<https://no-color.org>), so `kubectl logs` and log collectors get
//! plain text. Trace events of the AWS SDK and the
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

/// Installs the global subscriber; `directives` is `RUST_LOG`'s value,
/// `colour` whether text lines may carry ANSI colour escapes.
pub fn init_tracing(format: LogFormat, directives: Option<&str>, colour: bool) {
    use tracing_subscriber::prelude::*;

    let filter = directives
        .filter(|d| !d.trim().is_empty())
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour);
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

/// Whether text logs may be coloured: only on a terminal, and never when
/// `no_color` (the `NO_COLOR` variable) is set to a non-empty value.
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::use_colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some(OsStr::new("1"))));
    }
}
