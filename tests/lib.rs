//! Cross-crate integration and interop tests for lockstep; the tests live
//! in `tests/`, the Node scripts in `js/` (install them with
//! `scripts/js-setup`).

use std::path::{Path, PathBuf};

/// `tests/js`: the interop scripts and their pinned `socket.io-client`.
#[must_use]
pub fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// `benches/node`: the plain Node chat server and its pinned `socket.io`.
#[must_use]
pub fn node_server_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../benches/node")
}

/// Fails the calling test, loudly and saying how to fix it, when node is
/// not on PATH or `package` is not installed in `dir` (a test that needs
/// them must never pass by skipping).
///
/// # Panics
///
/// When either is missing.
pub fn require_node(dir: &Path, package: &str) {
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|out| out.status.success()),
        "node is required but was not found on PATH; install Node.js 18+ and run scripts/js-setup"
    );
    assert!(
        dir.join("node_modules")
            .join(package)
            .join("package.json")
            .exists(),
        "{package} is not installed in {}; run scripts/js-setup",
        dir.display()
    );
}
