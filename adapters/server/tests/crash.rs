//! The crash test: `lockstep-server` on a SQLite file (or a PostgreSQL
//! schema) is loaded by the real `socket.io-client`, killed with SIGKILL
//! mid-load, and restarted on the same store. Every acknowledged message
//! must be there, at its acknowledged seq, in send order, with no
//! duplicate; resending every message with the same `clientMsgId`
//! afterwards stores none twice.
//!
//! Needs node and `scripts/js-setup` (the test fails, loudly, without them);
//! the PostgreSQL run needs `LOCKSTEP_TEST_POSTGRES_URL` (see
//! `lockstep_tests::postgres_url`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use lockstep_tests::js_dir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Messages the load sends; the server is killed after `KILL_AFTER` acks.
const MESSAGES: usize = 1_500;
const KILL_AFTER: usize = 300;
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

fn require_node() {
    lockstep_tests::require_node(&js_dir(), "socket.io-client");
}

/// Starts the server on the store `store` (its flags); returns it and its
/// URL.
async fn start_server(store: &[String]) -> (Child, String) {
    let rate = [
        "--messages-per-sec",
        "1000000",
        "--messages-burst",
        "1000000",
    ];
    let args = store.iter().map(String::as_str).chain(rate);
    common::start_server(args).await
}

fn node(mode: &str, url: &str) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(js_dir().join("crash.mjs"))
        .args([mode, url, &MESSAGES.to_string(), &KILL_AFTER.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

type Entry = (String, u64, String);

fn parse_list(line: &str, prefix: &str) -> Vec<Entry> {
    let json = line.strip_prefix(prefix).expect(prefix);
    serde_json::from_str(json).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_sigkill() {
    sqlite("full").await;
}

/// `synchronous = NORMAL` in WAL mode loses nothing on a process crash
/// (only on a power loss): the same test holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_sigkill_with_normal_sync() {
    sqlite("normal").await;
}

/// On PostgreSQL (`--postgres`), a schema of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_message_survives_sigkill_on_postgres() {
    let Some(url) = lockstep_tests::postgres_url() else {
        return;
    };
    let store = [
        "--postgres".to_owned(),
        url,
        "--postgres-schema".to_owned(),
        lockstep_tests::fresh_postgres_schema(),
    ];
    crash_and_restart("postgres", &store).await;
}

async fn sqlite(sync: &str) {
    let dir = std::env::temp_dir().join(format!("lockstep-crash-{sync}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("crash.db");
    let store = [
        "--sqlite-sync".to_owned(),
        sync.to_owned(),
        "--db".to_owned(),
        db.display().to_string(),
    ];
    crash_and_restart(sync, &store).await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn crash_and_restart(label: &str, store: &[String]) {
    require_node();
    // Load, and SIGKILL the server mid-load.
    let (mut server, url) = start_server(store).await;
    let mut load = node("load", &url).spawn().unwrap();
    let mut lines = BufReader::new(load.stdout.take().unwrap()).lines();
    let mut acked: Vec<Entry> = Vec::new();
    let mut killed = false;
    loop {
        let line = tokio::time::timeout(STEP_TIMEOUT, lines.next_line())
            .await
            .expect("load stalled")
            .unwrap();
        let Some(line) = line else { break };
        if let Some(rest) = line.strip_prefix("ack ") {
            let mut parts = rest.split(' ');
            let id = parts.next().unwrap().to_owned();
            let seq = parts.next().unwrap().parse().unwrap();
            let mid = parts.next().unwrap().to_owned();
            acked.push((id, seq, mid));
            if acked.len() == KILL_AFTER && !killed {
                server.start_kill().unwrap(); // SIGKILL
                killed = true;
            }
        }
    }
    assert!(load.wait().await.unwrap().success());
    let _ = server.wait().await;
    assert!(killed, "the load finished before the kill");
    assert!(acked.len() >= KILL_AFTER && acked.len() < MESSAGES);

    // Restart on the same store and read the log.
    let (mut server, url) = start_server(store).await;
    let out = tokio::time::timeout(STEP_TIMEOUT, node("verify", &url).output())
        .await
        .expect("verify timed out")
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut it = stdout.lines();
    let history = parse_list(it.next().unwrap(), "history ");
    let retry_acks = parse_list(it.next().unwrap(), "acks ");
    let after = parse_list(it.next().unwrap(), "after ");

    // Every acknowledged message is there, at its acknowledged seq.
    let stored: BTreeMap<&str, (u64, &str)> = history
        .iter()
        .map(|(id, seq, mid)| (id.as_str(), (*seq, mid.as_str())))
        .collect();
    assert_eq!(stored.len(), history.len(), "no clientMsgId stored twice");
    for (id, seq, mid) in &acked {
        assert_eq!(
            stored.get(id.as_str()),
            Some(&(*seq, mid.as_str())),
            "acked {id} lost or moved"
        );
    }
    // In order, contiguous, no gap: the stored log is c0.. in send order.
    for (i, (id, seq, _)) in history.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1);
        assert_eq!(id, &format!("c{i}"));
    }
    assert!(history.len() >= acked.len());

    // Resending everything with the same ids stores nothing twice, and
    // each retry of a stored message gets its original answer.
    assert_eq!(retry_acks.len(), MESSAGES);
    for (id, seq, mid) in &retry_acks {
        match stored.get(id.as_str()) {
            Some(original) => assert_eq!((*seq, mid.as_str()), *original, "retry of {id}"),
            None => assert!(*seq > history.len() as u64, "{id} was new: appended after"),
        }
    }
    for (i, (id, seq, _)) in after.iter().enumerate() {
        assert_eq!(
            (id.as_str(), *seq),
            (format!("c{i}").as_str(), i as u64 + 1)
        );
    }
    assert_eq!(after.len(), MESSAGES);
    assert_eq!(&after[..history.len()], &history[..]);
    eprintln!(
        "crash test ({label}): {} acked before SIGKILL, {} stored (committed, ack lost in flight: {})",
        acked.len(),
        history.len(),
        history.len() - acked.len()
    );

    // SIGTERM: a graceful stop, exit status 0.
    let pid = server.id().unwrap().to_string();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(term.success());
    let status = tokio::time::timeout(STEP_TIMEOUT, server.wait())
        .await
        .expect("graceful shutdown on SIGTERM")
        .unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}");
}
