//! A moto server (the AWS emulator from PyPI) per test, and SDK configs that
//! point at it.
//!
//! moto is installed into `<repo>/.venv` by `scripts/install-moto.sh`, which
//! the first test to need it runs ([`super::venv`]); set `ASCP_MOTO_SERVER` to
//! use another `moto_server` executable. A moto that is missing and cannot be
//! installed is a test failure, never a silent skip.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_sdk_sts::config::Credentials;
use aws_sdk_sts::config::SharedHttpClient;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// The account moto puts everything in unless the caller's access key was
/// issued for another account (by STS AssumeRole, say).
pub const TEST_ACCOUNT: &str = "123456789012";
/// Static credentials for the default account. moto checks no signature.
pub const TEST_ACCESS_KEY_ID: &str = "AKIDTEST";
pub const TEST_SECRET_ACCESS_KEY: &str = "secret";

/// A cold start (first run after install, compiling Python bytecode) takes a
/// few seconds; a warm one under a second. This bounds a broken install.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a port lost to a race with another process is retried.
const START_ATTEMPTS: usize = 3;

/// Runs moto_server in the background and ties its life to ours.
///
/// moto is started under a small `sh` watchdog that kills it when its stdin
/// reaches end of file. We hold the only write end of that pipe, so moto goes
/// away when this value is dropped, but also when the test process dies
/// without running destructors (killed, `process::exit`, a server kept in a
/// `static`), instead of living on as an orphan holding a port.
const WATCHDOG: &str = r#"
exec 3<&0
"$@" 3<&- &
pid=$!
{ read -r _ <&3; kill "$pid" 2>/dev/null; } &
wait "$pid"
"#;

pub struct MotoServer {
    endpoint: String,
    /// The watchdog shell; it exits when moto does.
    child: Child,
    /// Closing this tells the watchdog to kill moto.
    stdin: Option<ChildStdin>,
    log: PathBuf,
    startup: Duration,
    _dir: tempfile::TempDir,
}

impl MotoServer {
    /// Starts moto on a free loopback port and waits until it answers HTTP.
    ///
    /// Panics if moto is not installed, does not start, or does not answer
    /// within 30 s; the message includes moto's output.
    pub async fn start() -> MotoServer {
        let binary = moto_binary();
        let started = Instant::now();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let dir = tempfile::tempdir().expect("create a temporary directory for moto's log");
            let log = dir.path().join("moto.log");
            let out = File::create(&log).expect("create moto's log file");
            let err = out.try_clone().expect("clone moto's log file handle");
            let mut child = Command::new("/bin/sh")
                .arg("-c")
                .arg(WATCHDOG)
                .arg("sh")
                .arg(&binary)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                // It would override the account of every request.
                .env_remove("MOTO_ACCOUNT_ID")
                .stdin(Stdio::piped())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let stdin = child.stdin.take();
            let endpoint = format!("http://127.0.0.1:{port}");
            let mut server = MotoServer {
                endpoint,
                child,
                stdin,
                log,
                startup: Duration::ZERO,
                _dir: dir,
            };
            match server.wait_ready(started).await {
                Ok(()) => {
                    server.startup = started.elapsed();
                    return server;
                }
                Err(Retry::PortTaken) if attempt < START_ATTEMPTS => continue,
                Err(Retry::PortTaken) => panic!(
                    "moto could not bind a port in {START_ATTEMPTS} attempts; its log:\n{}",
                    server.log()
                ),
                Err(Retry::Fatal(why)) => panic!(
                    "moto_server ({}) did not start: {why}; its log:\n{}",
                    binary.display(),
                    server.log()
                ),
            }
        }
        unreachable!("every attempt either returns or panics")
    }

    async fn wait_ready(&mut self, started: Instant) -> Result<(), Retry> {
        loop {
            if let Some(status) = self.child.try_wait().expect("poll moto_server") {
                if self.log().contains("Address already in use") {
                    return Err(Retry::PortTaken);
                }
                return Err(Retry::Fatal(format!("it exited with {status}")));
            }
            let probe =
                super::http::simple("GET", &self.endpoint, "/moto-api/", Duration::from_secs(2))
                    .await;
            if probe.is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(Retry::Fatal(format!(
                    "no HTTP answer on {} within {START_TIMEOUT:?}",
                    self.endpoint
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        self.endpoint.clone()
    }

    /// How long `start` took, until moto answered.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Everything moto has printed so far (one line per request, and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Forgets every resource in every account and region, so a server can be
    /// shared by tests that run one after another.
    pub async fn reset(&self) {
        let response =
            super::http::simple("POST", &self.endpoint, "/moto-api/reset", START_TIMEOUT)
                .await
                .unwrap_or_else(|e| panic!("reset moto at {}: {e}", self.endpoint));
        assert!(
            response.status().is_success(),
            "reset moto: HTTP {}",
            response.status()
        );
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // End of file on the watchdog's stdin makes it kill moto; it exits
        // once moto has. Give that a moment, then stop waiting politely.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Retry {
    PortTaken,
    Fatal(String),
}

/// The moto_server executable: `$ASCP_MOTO_SERVER`, else the project's venv
/// (installed there first if it is not). Panics, saying how to install moto,
/// if it is not there.
pub fn moto_binary() -> PathBuf {
    match std::env::var_os("ASCP_MOTO_SERVER") {
        Some(path) => moto_binary_at(Path::new(&path), "$ASCP_MOTO_SERVER"),
        None => {
            super::venv::ensure(super::venv::Tools::Moto);
            moto_binary_at(
                &Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server"),
                "the project's virtualenv",
            )
        }
    }
}

/// `path`, if it is a file; `origin` says where the path came from.
pub fn moto_binary_at(path: &Path, origin: &str) -> PathBuf {
    assert!(
        path.is_file(),
        "moto_server not found at {} ({origin}). These tests run against the moto AWS \
         emulator: install it with `bash scripts/install-moto.sh` (creates .venv/ in the \
         repository root), or point ASCP_MOTO_SERVER at a moto_server executable.",
        path.display()
    );
    path.to_owned()
}

/// A port nobody listens on right now. Another process may take it before
/// moto binds it; `start` retries when that happens.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind an ephemeral loopback port")
        .port()
}

/// The test account's credentials.
pub fn test_credentials() -> Credentials {
    Credentials::new(
        TEST_ACCESS_KEY_ID,
        TEST_SECRET_ACCESS_KEY,
        None,
        None,
        "test",
    )
}

/// A config loader aimed at `endpoint` in `region` with the test account's
/// credentials; add `.retry_config(..)`, `.timeout_config(..)` or other
/// credentials before `.load().await`.
pub fn config_loader(endpoint: &str, region: &str) -> ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        // aws-config is built without its default HTTP client (see the
        // dev-dependencies in Cargo.toml), so name one.
        .http_client(http_client())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(test_credentials())
}

/// An SDK config aimed at `endpoint` in `region` as the test account.
pub async fn sdk_config(endpoint: &str, region: &str) -> SdkConfig {
    config_loader(endpoint, region).load().await
}

/// An SDK config aimed at `endpoint` in `region` acting with `credentials`.
pub async fn sdk_config_with_credentials(
    endpoint: &str,
    region: &str,
    credentials: Credentials,
) -> SdkConfig {
    config_loader(endpoint, region)
        .credentials_provider(credentials)
        .load()
        .await
}

/// The SDK's rustls client; it speaks plain HTTP to moto and the proxy too.
fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .build_https()
}
