//! The process's shutdown signals.

/// Completes on the first SIGTERM (kubelet stopping the pod) or SIGINT
/// (Ctrl-C when run by hand).
pub async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    // Registration fails only if the runtime has no signal driver, which ours
    // always has; without it, we would simply never stop by signal.
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    tokio::select! {
        _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
        _ = async { match int.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
}
