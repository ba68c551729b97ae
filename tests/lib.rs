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

/// The PostgreSQL server to test against: `LOCKSTEP_TEST_POSTGRES_URL`
/// (`scripts/postgres start` starts a throwaway one and prints it;
/// `scripts/test` does so for CI). `None`, after a loud notice, only when
/// it is unset and neither `CI` nor `LOCKSTEP_REQUIRE_POSTGRES` is set: a
/// developer without PostgreSQL can still run the rest by hand, and CI
/// always runs these tests.
///
/// # Panics
///
/// When it is unset and CI requires it.
#[must_use]
pub fn postgres_url() -> Option<String> {
    postgres_env("LOCKSTEP_TEST_POSTGRES_URL")
}

/// The test server's `pg_ctl` (`scripts/postgres` writes one that runs as
/// the cluster's owner), under the same rule as [`postgres_url`].
///
/// # Panics
///
/// When it is unset and CI requires it.
#[must_use]
pub fn postgres_ctl() -> Option<String> {
    postgres_env("LOCKSTEP_TEST_POSTGRES_CTL")
}

fn postgres_env(name: &str) -> Option<String> {
    if let Ok(value) = std::env::var(name)
        && !value.is_empty()
    {
        return Some(value);
    }
    let required = ["CI", "LOCKSTEP_REQUIRE_POSTGRES"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    assert!(
        !required,
        "{name} is not set, and CI (or LOCKSTEP_REQUIRE_POSTGRES) requires the PostgreSQL \
         tests: start a server with `eval \"$(scripts/postgres start DIR)\"`"
    );
    // Straight to stderr, past the test harness's capture: loud even when
    // the test passes.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!(
            "\n!!!!! SKIPPED: a PostgreSQL test did not run: {name} is not set \
             (eval \"$(scripts/postgres start /tmp/pg)\" starts a server) !!!!!\n"
        )
        .as_bytes(),
    );
    None
}

/// A PostgreSQL schema name no other store of any test process uses.
#[must_use]
pub fn fresh_postgres_schema() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "lockstep_test_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
