//! Runs the real `ascp` binary on a temporary provider volume and talks to
//! it through its socket, as the CSI driver does.
//!
//! The process gets a clean environment (PATH, a temporary HOME, and what
//! the caller passes), so nothing of the developer's AWS or Kubernetes
//! setup leaks in. Its stderr is kept in a file for assertions. It is killed
//! when the value is dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ascp::proto::csi_driver_provider_client::CsiDriverProviderClient;
use ascp::proto::{MountRequest, MountResponse};
use tonic::transport::Channel;

const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longer than any mount the tests make, shorter than a hung test.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

pub struct AscpProcess {
    child: Mutex<Child>,
    socket: PathBuf,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl AscpProcess {
    /// Starts `binary` with `args` (after `--provider-volume`, and
    /// `--metrics-addr=` unless `args` set it) and `env`, and waits until it answers Version.
    pub async fn start(binary: &Path, args: &[String], env: &[(String, String)]) -> AscpProcess {
        let dir = tempfile::tempdir().expect("a temporary directory for ascp");
        let volume = dir.path().join("provider");
        std::fs::create_dir_all(&volume).expect("create the provider volume");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("create HOME");
        let log = dir.path().join("ascp.log");
        let out = File::create(&log).expect("create ascp's log");
        let err = out.try_clone().expect("clone ascp's log handle");
        let child = Command::new(binary)
            .arg(format!("--provider-volume={}", volume.display()))
            // Off unless the caller asks for it.
            .args(
                (!args.iter().any(|a| a.starts_with("--metrics-addr")))
                    .then_some("--metrics-addr="),
            )
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        let process = AscpProcess {
            child: Mutex::new(child),
            socket: volume.join("aws.sock"),
            log,
            dir,
        };
        process.wait_ready().await;
        process
    }

    async fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            let exited = self.lock().try_wait().expect("poll ascp");
            if let Some(status) = exited {
                panic!(
                    "ascp exited with {status} at start; its log:\n{}",
                    self.log()
                );
            }
            if self.socket.exists()
                && let Ok(mut client) = self.try_client().await
                && client
                    .version(ascp::proto::VersionRequest {
                        version: "v1alpha1".into(),
                    })
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "ascp did not answer on {} within {START_TIMEOUT:?}; its log:\n{}",
                self.socket.display(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn try_client(&self) -> Result<CsiDriverProviderClient<Channel>, String> {
        let channel = ascp::cli::mount::connect(&self.socket, CALL_TIMEOUT).await?;
        Ok(CsiDriverProviderClient::new(channel).max_decoding_message_size(64 << 20))
    }

    /// A client on the socket.
    pub async fn client(&self) -> CsiDriverProviderClient<Channel> {
        self.try_client()
            .await
            .unwrap_or_else(|e| panic!("connect to ascp: {e}; its log:\n{}", self.log()))
    }

    /// Sends one Mount.
    pub async fn mount(&self, request: MountRequest) -> Result<MountResponse, tonic::Status> {
        self.client()
            .await
            .mount(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A scratch directory that lives as long as the process.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the process has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM, as kubelet does when it stops the pod.
    pub fn terminate(&self) {
        let pid = self.lock().id();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Waits at most `timeout` for the process to exit; its status if it did.
    pub async fn wait_exit(&self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.lock().try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }

    /// The process's memory as the kernel reports it: resident now
    /// (`VmRSS`) and its peak so far (`VmHWM`), in KiB. Tests of hostile
    /// input assert the peak: it is an exact property of the run, unlike
    /// any duration.
    pub fn memory(&self) -> Memory {
        Memory {
            rss_kib: self.status_field("VmRSS:"),
            hwm_kib: self.status_field("VmHWM:"),
        }
    }

    /// A number of `/proc/<pid>/status` (`key` with its colon, e.g.
    /// `Threads:`; sizes in KiB).
    pub fn status_field(&self, key: &str) -> u64 {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
    }

    /// The process's open file descriptors (entries of `/proc/<pid>/fd`).
    pub fn open_fds(&self) -> u64 {
        let pid = self.pid();
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap_or_else(|e| panic!("list /proc/{pid}/fd: {e}"))
            .count() as u64
    }

    /// Asserts that the process's peak resident memory so far is at most
    /// `mib` MiB, naming `what` ran.
    pub fn assert_peak_below_mib(&self, mib: u64, what: &str) {
        let memory = self.memory();
        assert!(
            memory.hwm_kib <= mib * 1024,
            "{what}: ascp's VmHWM is {} KiB, above the bound of {mib} MiB",
            memory.hwm_kib
        );
    }

    /// The process id, for readings of `/proc/<pid>` beyond [`Self::memory`].
    pub fn pid(&self) -> u32 {
        self.lock().id()
    }

    /// Whether the process is still running.
    pub fn is_running(&self) -> bool {
        matches!(self.lock().try_wait(), Ok(None))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A reading of a process's memory, in KiB.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Drop for AscpProcess {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}
