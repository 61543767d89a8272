//! The project's Python virtualenv (`<repo>/.venv`), installed on first use.
//!
//! A Rust developer's first command is `cargo test`, not `scripts/test.sh`,
//! so the tests that need moto or the independent Python clients install them
//! themselves, through the same pinned, idempotent scripts CI runs
//! (`scripts/install-moto.sh`, `scripts/install-clients.sh`). When everything
//! is installed the scripts return at once without touching the network.
//!
//! Several test processes may get here at once (nextest, two `cargo test`
//! runs, an editor's own target directory), and many threads of one process
//! do: each process runs the scripts once, and processes take turns through
//! an exclusive lock on `<repo>/.venv.lock` (the venv belongs to the
//! repository, not to a target directory), so one installs and the others
//! then find it done.
//!
//! A failed install (no network, no python3) fails the test with the script's
//! output and what to install by hand; nothing is skipped. Set
//! `ASCP_TEST_NO_INSTALL=1` to never run the scripts: a missing tool then
//! fails with the caller's own message.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// What a test needs from the virtualenv.
#[derive(Clone, Copy, Debug)]
pub enum Tools {
    /// `moto_server`.
    Moto,
    /// moto and the Python gRPC and HTTP/2 clients of tests/clients/.
    Clients,
}

impl Tools {
    fn scripts(self) -> &'static [&'static str] {
        match self {
            Tools::Moto => &["scripts/install-moto.sh"],
            // install-clients.sh puts them into the venv install-moto.sh makes.
            Tools::Clients => &["scripts/install-moto.sh", "scripts/install-clients.sh"],
        }
    }

    /// A file whose absence means a first install is coming.
    fn marker(self) -> PathBuf {
        match self {
            Tools::Moto => venv().join("bin/moto_server"),
            Tools::Clients => venv().join("bin/python"),
        }
    }
}

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `<repo>/.venv`.
pub fn venv() -> PathBuf {
    repo().join(".venv")
}

/// Installs `tools` into the venv unless they are there; once per process.
/// Panics, saying what to install, when that fails.
pub fn ensure(tools: Tools) {
    static MOTO: OnceLock<Result<(), String>> = OnceLock::new();
    static CLIENTS: OnceLock<Result<(), String>> = OnceLock::new();
    let once = match tools {
        Tools::Moto => &MOTO,
        Tools::Clients => &CLIENTS,
    };
    // Threads of this process wait here for the first one's answer, and every
    // test gets the same failure instead of running the install again.
    if let Err(why) = once.get_or_init(|| install(tools)) {
        panic!("{why}");
    }
}

fn install(tools: Tools) -> Result<(), String> {
    if std::env::var_os("ASCP_TEST_NO_INSTALL").is_some() {
        return Ok(());
    }
    if !tools.marker().exists() {
        // Straight to stderr, past the test harness's capture: a first install
        // takes a few minutes, and the developer should know why.
        let _ = writeln!(
            std::io::stderr(),
            "ascp tests: installing the test tools into {} ({}; once)",
            venv().display(),
            tools.scripts().join(", ")
        );
    }
    run_scripts(repo(), tools.scripts())
}

/// Runs each of `scripts` (paths below `repo`) with bash, in `repo`, holding
/// the exclusive lock on `repo/.venv.lock`; the first failure, with its
/// output and what to install by hand.
pub fn run_scripts(repo: &Path, scripts: &[&str]) -> Result<(), String> {
    let lock_path = repo.join(".venv.lock");
    let lock = File::options()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    // Released when `lock` is dropped, or when the process dies.
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    for script in scripts {
        let output = Command::new("bash")
            .arg(repo.join(script))
            .current_dir(repo)
            .output()
            .map_err(|e| failure(repo, script, &format!("bash could not run it: {e}")))?;
        if !output.status.success() {
            let said = format!(
                "it exited with {}:\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            return Err(failure(repo, script, &said));
        }
    }
    Ok(())
}

fn failure(repo: &Path, script: &str, said: &str) -> String {
    format!(
        "these tests need moto and the Python test clients in {venv}, and `bash {script}` \
         could not install them; {said}\n\
         Install them by hand: python3 (3.10 or newer, with venv and pip) and network access \
         to PyPI, then `bash scripts/install-moto.sh && bash scripts/install-clients.sh` (or \
         `scripts/test.sh`, which runs them). ASCP_MOTO_SERVER may point at a moto_server \
         installed elsewhere.",
        venv = repo.join(".venv").display()
    )
}
