//! What the examples that drive the real `ascp` binary share.

use std::path::{Path, PathBuf};

/// The provider binary: `given`, else `ascp` in the target directory above
/// the running example's (`target/<profile>/examples/..`). Panics, naming
/// `build` (the cargo command that makes it), when there is none.
pub fn provider_binary(given: Option<PathBuf>, build: &str) -> PathBuf {
    let binary = given.unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("this program's path");
        exe.parent()
            .and_then(Path::parent)
            .expect("target/<profile>/examples")
            .join("ascp")
    });
    assert!(
        binary.exists(),
        "no provider binary at {} ({build}, or --ascp PATH)",
        binary.display()
    );
    binary
}
