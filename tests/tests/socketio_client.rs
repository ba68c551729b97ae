//! The tokio client driver over the Socket.IO transport
//! (`lockstep-socketio-client`) against `lockstep-server` in-process:
//! pipelined chat, recovery across a server restart, a refused token, and
//! chat over `https://` through a TLS-terminating proxy whose certificate
//! comes from a test CA made at run time (refused when that CA is not
//! trusted).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../adapters/tokio/tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use common::{App, WAIT, channel, fast_config, texts};
use lockstep_core::client::{ClientEvent, ConnectionState, Outcome};
use lockstep_core::ids::ChannelId;
use lockstep_server::cli::Cli;
use lockstep_server::serve::bind_with_store;
use lockstep_socketio_client::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use lockstep_socketio_client::{SocketIoConnector, tls_config};
use lockstep_tokio::server::SharedMemStore;
use lockstep_tokio::transport::Connector;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring::default_provider;
use tokio_util::sync::CancellationToken;

struct Running {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<Result<(), lockstep_server::serve::StartError>>,
}

impl Running {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("graceful shutdown")
            .unwrap()
            .unwrap();
    }
}

async fn start(addr: &str, store: SharedMemStore) -> Running {
    let args = Cli::try_parse_from([
        "lockstep-server",
        "--dev",
        "--addr",
        addr,
        "--messages-per-sec",
        "10000",
        "--messages-burst",
        "10000",
        // Engine.IO's heartbeat, generous: a loaded 2-core machine can stall
        // a task for a second, and a missed pong would be a disconnect the
        // test did not cause. A closed server is seen at once anyway.
        "--ping-interval-ms",
        "5000",
        "--ping-timeout-ms",
        "10000",
    ])
    .unwrap()
    .serve;
    let bound = bind_with_store(args, store).await.unwrap();
    let addr = bound.local_addr();
    let stop = CancellationToken::new();
    let task = tokio::spawn(bound.run(stop.clone()));
    Running { addr, stop, task }
}

fn app(name: &'static str, seed: u64, url: &str) -> App {
    let config = fast_config(&format!("dev:{name}"), seed, 100);
    App::with_connector(name, config, SocketIoConnector::new(url).unwrap())
}

/// Connects both and joins `room` with each.
async fn join(alice: &mut App, bob: &mut App, room: &ChannelId) {
    for a in [alice, bob] {
        a.handle.connect();
        a.handle.subscribe(room.clone()).unwrap();
        a.subscribed(room).await;
    }
}

/// `n` sends from alice at once: pipelined, acked in order with contiguous
/// seqs, each resolved once, and seen by both in that order.
async fn pipelined_chat(alice: &mut App, bob: &mut App, room: &ChannelId, n: u64) {
    let sends: Vec<_> = (0..n).map(|i| alice.send(room, &format!("m{i}"))).collect();
    let (ids, seqs) = common::sent_in_order(sends).await;
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
    bob.has_messages(room, &ids).await;
    alice.has_messages(room, &ids).await;
    let expected: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    for a in [&*alice, &*bob] {
        assert_eq!(texts(&a.messages(room)), expected, "{}", a.name);
        a.assert_contiguous(room);
    }
    for id in &ids {
        assert_eq!(alice.outcomes_of(id), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_clients_chat_over_socketio_with_pipelined_sends() {
    let server = start("127.0.0.1:0", SharedMemStore::default()).await;
    let room = channel("room");
    let mut alice = app("alice", 1, &server.url());
    let mut bob = app("bob", 2, &server.url());
    join(&mut alice, &mut bob, &room).await;
    assert_eq!(alice.handle.connected().await.unwrap().as_str(), "alice");
    pipelined_chat(&mut alice, &mut bob, &room, 60).await;
    alice.handle.close().await;
    bob.handle.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_client_recovers_across_a_server_restart() {
    let store = SharedMemStore::default();
    let server = start("127.0.0.1:0", store.clone()).await;
    let addr = server.addr.to_string();
    let room = channel("room");
    let mut alice = app("alice", 3, &server.url());
    let mut bob = app("bob", 4, &server.url());
    join(&mut alice, &mut bob, &room).await;
    let first = alice.send(&room, "before");
    let first_id = first.client_msg_id().unwrap().clone();
    tokio::time::timeout(WAIT, first.outcome())
        .await
        .unwrap()
        .unwrap();
    bob.has_messages(&room, std::slice::from_ref(&first_id))
        .await;

    server.stop().await;
    alice
        .wait_for(
            "the connection to drop",
            |e| matches!(e, ClientEvent::State(s) if s.name() != "connected"),
        )
        .await;
    // Sent while the server is down: kept in the outbox, sent after.
    let offline = alice.send(&room, "while down");
    let offline_id = offline.client_msg_id().unwrap().clone();
    let server = start(&addr, store).await;
    let outcome = tokio::time::timeout(WAIT, offline.outcome())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, Outcome::Sent { .. }), "{outcome:?}");
    for a in [&mut alice, &mut bob] {
        a.has_messages(&room, &[first_id.clone(), offline_id.clone()])
            .await;
    }
    for a in [&alice, &bob] {
        assert_eq!(
            texts(&a.messages(&room)),
            ["before", "while down"],
            "{}",
            a.name
        );
        a.assert_contiguous(&room);
    }
    alice.handle.close().await;
    bob.handle.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused_for_good() {
    let server = start("127.0.0.1:0", SharedMemStore::default()).await;
    let config = fast_config("not-a-dev-token", 5, 100);
    let eve = App::with_connector(
        "eve",
        config,
        SocketIoConnector::new(&server.url()).unwrap(),
    );
    eve.refused_for_good().await;
    server.stop().await;
}

/// A test CA made at run time and a server certificate it signed for
/// `127.0.0.1` and `localhost`.
struct TestPki {
    ca: CertificateDer<'static>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

fn test_pki() -> TestPki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "lockstep test ca");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "lockstep test server");
    let server = params.signed_by(&server_key, &*ca).unwrap();
    TestPki {
        ca: ca.der().clone(),
        server_chain: vec![server.der().clone()],
        server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()).into(),
    }
}

/// A TLS-terminating proxy in front of `backend`: what an HTTPS load
/// balancer does for a production server. Each handshake's outcome is
/// reported on `handshakes`; dropping the proxy stops it and every
/// connection through it.
struct TlsProxy {
    addr: SocketAddr,
    handshakes: mpsc::UnboundedReceiver<Result<(), String>>,
    task: JoinHandle<()>,
}

impl TlsProxy {
    async fn start(backend: SocketAddr, pki: &TestPki) -> TlsProxy {
        let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (report, handshakes) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else { continue };
                        let acceptor = acceptor.clone();
                        let report = report.clone();
                        connections.spawn(async move {
                            let mut tls = match acceptor.accept(tcp).await {
                                Ok(tls) => tls,
                                Err(e) => {
                                    let _ = report.send(Err(e.to_string()));
                                    return;
                                }
                            };
                            let _ = report.send(Ok(()));
                            let Ok(mut upstream) = TcpStream::connect(backend).await else {
                                return;
                            };
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                        });
                    }
                    Some(_) = connections.join_next() => {}
                }
            }
        });
        TlsProxy {
            addr,
            handshakes,
            task,
        }
    }

    /// The outcome of the next TLS handshake, waited for at most [`WAIT`].
    async fn next_handshake(&mut self) -> Result<(), String> {
        tokio::time::timeout(WAIT, self.handshakes.recv())
            .await
            .expect("a tls handshake within the wait")
            .expect("the proxy runs")
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_clients_chat_over_https_with_a_private_ca() {
    let server = start("127.0.0.1:0", SharedMemStore::default()).await;
    let pki = test_pki();
    let mut proxy = TlsProxy::start(server.addr, &pki).await;
    let trusted = Arc::new(tls_config([pki.ca.clone()]).unwrap());
    let room = channel("room");
    // One client per TLS scheme: `https://` and `wss://` both end up wss.
    let tls_app = |name: &'static str, seed, url: String| {
        let connector = SocketIoConnector::new(&url)
            .unwrap()
            .with_tls_config(trusted.clone());
        App::with_connector(
            name,
            fast_config(&format!("dev:{name}"), seed, 100),
            connector,
        )
    };
    let mut alice = tls_app("alice", 11, format!("https://{}", proxy.addr));
    let mut bob = tls_app("bob", 12, format!("wss://{}/", proxy.addr));
    join(&mut alice, &mut bob, &room).await;
    for _ in 0..2 {
        assert_eq!(proxy.next_handshake().await, Ok(()));
    }
    assert_eq!(alice.handle.connected().await.unwrap().as_str(), "alice");
    pipelined_chat(&mut alice, &mut bob, &room, 10).await;
    // And back: bob's reply reaches alice over her own TLS connection.
    let reply = bob.send(&room, "over tls");
    let reply_id = reply.client_msg_id().unwrap().clone();
    alice.has_messages(&room, &[reply_id]).await;
    alice.handle.close().await;
    bob.handle.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused_with_a_clear_error() {
    let server = start("127.0.0.1:0", SharedMemStore::default()).await;
    let pki = test_pki();
    let mut proxy = TlsProxy::start(server.addr, &pki).await;
    let url = format!("https://{}", proxy.addr);
    // The default roots (Mozilla's) do not include the test CA.
    let connector = SocketIoConnector::new(&url).unwrap();

    let refused = tokio::time::timeout(WAIT, connector.connect())
        .await
        .expect("the refusal is prompt");
    let Err(error) = refused else {
        panic!("connected through an untrusted certificate")
    };
    let message = error.to_string();
    assert!(
        message.contains("invalid peer certificate") && message.contains(&proxy.addr.to_string()),
        "{message}"
    );
    // The client ended the handshake, not the server.
    let handshake = proxy.next_handshake().await;
    assert!(handshake.is_err(), "{handshake:?}");

    // The driver treats it as a failed attempt: it retries with backoff and
    // never reports itself connected.
    let config = fast_config("dev:mallory", 13, 100);
    let mut mallory = App::with_connector("mallory", config, connector);
    mallory.handle.connect();
    mallory
        .wait_for("a third attempt", |e| {
            matches!(e, ClientEvent::State(ConnectionState::Reconnecting { attempt, .. }) if *attempt >= 3)
        })
        .await;
    assert!(
        !mallory
            .seen
            .iter()
            .any(|e| matches!(e, ClientEvent::State(ConnectionState::Connected { .. }))),
        "{:#?}",
        mallory.seen
    );
    for _ in 0..2 {
        assert!(proxy.next_handshake().await.is_err());
    }
    tokio::time::timeout(WAIT, mallory.handle.close())
        .await
        .expect("close is prompt");
    server.stop().await;
}
