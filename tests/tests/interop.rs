//! The real `socket.io-client` (npm, pinned in `tests/js/package-lock.json`)
//! against `lockstep-server`, in-process on an ephemeral port. Each test
//! runs one scenario of `tests/js/interop.mjs`, which asserts the contract
//! from the browser client's side.
//!
//! Node and the npm packages are required: without them these tests FAIL
//! with a message saying how to install them (never green without running).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use lockstep_tests::js_dir;
use std::process::Stdio;
use std::time::Duration;

use clap::Parser;
use lockstep_core::store::{FailMode, MemStore};
use lockstep_server::cli::Cli;
use lockstep_server::serve::bind_with_store;
use lockstep_tokio::server::SharedMemStore;
use tokio_util::sync::CancellationToken;

/// Longest a scenario may run.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(30);

/// Fails loudly when node or the pinned client is missing.
fn require_node() {
    lockstep_tests::require_node(&js_dir(), "socket.io-client");
}

/// Runs `scenario` against a server started with `flags` (after `--dev`)
/// and `store`.
async fn scenario_with(scenario: &str, flags: &[&str], store: SharedMemStore) {
    scenario_env(scenario, flags, store, &[]).await;
}

/// [`scenario_with`], with environment variables for the script.
async fn scenario_env(scenario: &str, flags: &[&str], store: SharedMemStore, env: &[(&str, &str)]) {
    require_node();
    let (url, stop, server) = start_server(flags, store).await;
    let child = tokio::process::Command::new("node")
        .arg(js_dir().join("interop.mjs"))
        .arg(&url)
        .arg(scenario)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn node");
    let out = tokio::time::timeout(SCENARIO_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("scenario {scenario} timed out"))
        .unwrap();
    stop_server(stop, server).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scenario {scenario} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(stdout.trim(), format!("ok {scenario}"));
}

type ServerTask = tokio::task::JoinHandle<Result<(), lockstep_server::serve::StartError>>;

/// Starts `lockstep-server` in-process on an ephemeral port (`--dev`
/// unless `flags` name a JWT secret); returns its URL.
async fn start_server(
    flags: &[&str],
    store: SharedMemStore,
) -> (String, CancellationToken, ServerTask) {
    let mut argv = vec!["lockstep-server"];
    if !flags.contains(&"--jwt-secret") {
        argv.push("--dev");
    }
    argv.extend(["--addr", "127.0.0.1:0", "--presence-grace-ms", "100"]);
    argv.extend_from_slice(flags);
    let args = Cli::try_parse_from(argv).unwrap().serve;
    let bound = bind_with_store(args, store).await.unwrap();
    let url = format!("http://{}", bound.local_addr());
    let stop = CancellationToken::new();
    let server = tokio::spawn(bound.run(stop.clone()));
    (url, stop, server)
}

async fn stop_server(stop: CancellationToken, server: ServerTask) {
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(15), server)
        .await
        .expect("graceful shutdown")
        .unwrap()
        .unwrap();
}

/// A plain HTTP/1.1 GET; returns status line and body.
async fn http_get(url: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = url.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    response
}

async fn scenario(name: &str) {
    scenario_with(name, &[], SharedMemStore::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_send_and_broadcast_exactly_once() {
    scenario("join_send_broadcast").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_send_and_broadcast_over_http_long_polling() {
    scenario_env(
        "join_send_broadcast",
        &[],
        SharedMemStore::default(),
        &[("LOCKSTEP_TEST_TRANSPORTS", "polling")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_client_msg_id_is_stored_once() {
    scenario("retry_is_stored_once").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_recovers_missed_events_with_epoch_and_since() {
    scenario("reconnect_recovers_missed_events").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_join_and_leave() {
    scenario("presence_join_and_leave").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_relayed_and_cleared_on_disconnect() {
    scenario("typing_is_relayed_and_cleared").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_advance_and_broadcast() {
    scenario("read_receipts").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_delete_are_authorized() {
    scenario("update_and_delete_authorization").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_code_of_the_contract() {
    scenario_with(
        "every_error_code",
        &["--messages-burst", "8", "--messages-per-sec", "1"],
        SharedMemStore::default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_tokens_name_the_user_and_bad_ones_are_unauthorized() {
    use lockstep_server::jwt::{MintClaims, Secret, mint, unix_now};
    let secret = "interop-secret-0123456789-0123456789";
    let key = Secret::load(Some(secret), None).unwrap();
    let other = Secret::load(Some("another-secret-0123456789-0123456789"), None).unwrap();
    let now = unix_now();
    let carol = |key: &Secret, exp| mint(key, "carol", &MintClaims::until(exp)).unwrap();
    let tokens = serde_json::json!({
        "valid": carol(&key, now + 600),
        "expired": carol(&key, now - 5),
        "wrongSecret": carol(&other, now + 600),
        "dev": "dev:carol",
    })
    .to_string();
    // The scenario mints its own short-lived tokens with the secret (no
    // leeway: it watches a session end when its token expires).
    scenario_env(
        "jwt_auth",
        &["--jwt-secret", secret, "--jwt-leeway-secs", "0"],
        SharedMemStore::default(),
        &[
            ("LOCKSTEP_TEST_TOKENS", &tokens),
            ("LOCKSTEP_TEST_SECRET", secret),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_past_its_connection_cap_is_refused_too_many_connections() {
    scenario_with(
        "connection_cap",
        &["--max-connections-per-user", "2"],
        SharedMemStore::default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_is_unavailable_and_retryable() {
    let store = SharedMemStore::new(MemStore::default());
    store.lock().set_fail_mode(FailMode::Always);
    scenario_with("store_failure_is_unavailable", &[], store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_packet_closes_only_that_connection() {
    scenario("oversized_packet_closes_only_that_connection").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_with_a_reason_and_recovers_its_position() {
    scenario_with(
        "slow_consumer_is_cut_off_and_recovers",
        &[
            "--socket-buffer",
            "16",
            "--conn-queue",
            "64",
            "--messages-per-sec",
            "1000000",
            "--messages-burst",
            "1000000",
        ],
        SharedMemStore::default(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_prometheus_metrics_are_served() {
    require_node();
    let (url, stop, server) = start_server(&[], SharedMemStore::default()).await;
    let health = http_get(&url, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        health.ends_with(r#"{"mode":"dev","reasons":[],"status":"ok"}"#),
        "{health}"
    );
    let out = tokio::process::Command::new("node")
        .arg(js_dir().join("interop.mjs"))
        .args([url.as_str(), "join_send_broadcast"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metrics = http_get(&url, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    for name in [
        "lockstep_connections_open",
        "lockstep_delivery_latency_seconds_bucket",
        "lockstep_store_latency_seconds_bucket{command=\"append\"",
        "lockstep_dev_mode 1",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
    // Every series exists from startup (at zero): these counted the scenario.
    for series in [
        "lockstep_handshakes_total{outcome=\"accepted\"}",
        "lockstep_replies_total{kind=\"send\",outcome=\"ok\"}",
        "lockstep_replies_total{kind=\"join\",outcome=\"ok\"}",
        "lockstep_joins_total{outcome=\"latest\",from=\"start\"}",
        "lockstep_deliveries_total{event=\"message:new\"}",
        "lockstep_events_stored_total",
    ] {
        let value = metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok());
        assert!(
            value.is_some_and(|v| v > 0.0),
            "{series} is {value:?} in\n{metrics}"
        );
    }
    stop_server(stop, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_flood_is_answered_or_cut_off_never_dropped_silently() {
    scenario_with(
        "flood_is_answered_or_cut_off_never_silent",
        &["--request-queue", "1", "--pending-requests", "64"],
        SharedMemStore::default(),
    )
    .await;
}
