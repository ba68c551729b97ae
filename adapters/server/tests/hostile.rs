//! One user with a valid token against the real `lockstep-server` binary:
//! bodies built to be dear in memory, then dozens of joins and history
//! reads from seq 0 at once, on several connections. Every request must be
//! answered (cut replies allowed, and expected: they say so), and the
//! server's resident memory must stay within a bounded budget.
//!
//! Needs node and `scripts/js-setup` (the test fails, loudly, without them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use lockstep_tests::js_dir;
use tokio::process::{Child, Command};

/// Bodies stored (about 62 KB each): a full reply of them would weigh far
/// more than the 1 MiB a reply may.
const BODIES: usize = 100;
/// Connections of the hostile user; each asks 20 joins and 20 history
/// pages from seq 0 at once.
const CONNECTIONS: usize = 2;
/// What the whole ordeal may add to the server's resident memory.
const RSS_BUDGET_BYTES: u64 = 256 << 20;
const STEP_TIMEOUT: Duration = Duration::from_secs(300);

fn require_node() {
    lockstep_tests::require_node(&js_dir(), "socket.io-client");
}

/// Starts the server on a SQLite file with default limits but a message
/// rate high enough to store the bodies quickly; returns it and its URL.
async fn start_server(db: &Path) -> (Child, String) {
    let db = db.display().to_string();
    common::start_server([
        "--db",
        &db,
        "--messages-per-sec",
        "10000",
        "--messages-burst",
        "10000",
    ])
    .await
}

/// A field of `/proc/<pid>/status` in bytes (`VmRSS`, `VmHWM`).
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    kib * 1_024
}

/// Runs `hostile.mjs <mode> <url> <arg>`; returns its `result` JSON.
async fn hostile(mode: &str, url: &str, arg: usize) -> serde_json::Value {
    let out = Command::new("node")
        .arg(js_dir().join("hostile.mjs"))
        .args([mode, url, &arg.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(STEP_TIMEOUT, out)
        .await
        .unwrap_or_else(|_| panic!("hostile {mode} timed out"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "hostile {mode} failed: {stdout}");
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("result "))
        .unwrap_or_else(|| panic!("no result from hostile {mode}: {stdout}"));
    serde_json::from_str(line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dear_bodies_and_replies_from_seq_0_stay_within_a_memory_budget() {
    require_node();
    let dir = std::env::temp_dir().join(format!("lockstep-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut server, url) = start_server(&dir.join("db")).await;
    let pid = server.id().unwrap();
    let before = memory(pid, "VmRSS");

    let stored = hostile("store", &url, BODIES).await;
    assert_eq!(stored["stored"], BODIES);
    let replies = hostile("replies", &url, CONNECTIONS).await;
    let peak = memory(pid, "VmHWM");

    let asked = CONNECTIONS * 40;
    assert_eq!(replies["asked"], asked);
    assert_eq!(replies["answered"], asked, "every request is answered");
    // Each full reply would carry 100 bodies of 62 KB: every one is cut to
    // the reply byte budget, and says so.
    assert_eq!(replies["cut"], asked, "{replies}");
    assert_eq!(replies["recovered"], 0);
    let per_reply = replies["replyEvents"].as_u64().unwrap() / asked as u64;
    assert!(
        (1..=17).contains(&per_reply),
        "about 1 MiB of 62 KB bodies a reply: {per_reply} events"
    );
    let grew = peak.saturating_sub(before);
    eprintln!(
        "server memory: {} MiB before, {} MiB at peak (+{} MiB)",
        before >> 20,
        peak >> 20,
        grew >> 20
    );
    assert!(
        grew < RSS_BUDGET_BYTES,
        "resident memory grew by {} MiB (budget {} MiB)",
        grew >> 20,
        RSS_BUDGET_BYTES >> 20
    );
    server.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
